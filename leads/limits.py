"""Input limits of the lead resource: the one place they are defined (docs/security.md, "Input limits").

The input serializers (REST, web UI, MCP and CSV import all validate through them) enforce these,
so a value past a limit is a 400 `validation_error` naming the field, never a database error. The
string caps equal the columns' `max_length` (a test keeps them equal): PostgreSQL refuses a longer
value, SQLite would silently store it, and both must answer the same.
"""

from __future__ import annotations

import re

# Text columns of Lead: the serializer's max_length and the column's are the same number.
LEAD_TEXT_MAX_LENGTHS: dict[str, int] = {
    "email": 254,  # RFC 5321's path limit, as Django's EmailField
    "first_name": 100,
    "last_name": 100,
    "company": 200,
    "job_title": 200,
    "website": 500,
    "city": 100,
    "phone": 40,
    "country": 2,
    "source": 100,
    "external_id": 200,
}

# Tags: at most this many per lead (and per add_tags / remove_tags list), each at most this long.
MAX_TAGS = 100
MAX_TAG_LENGTH = 50

# custom_fields: a flat object of scalars (§4.1), so its size is bounded by these three numbers.
MAX_CUSTOM_FIELDS = 100
MAX_CUSTOM_KEY_LENGTH = 64
MAX_CUSTOM_VALUE_LENGTH = 2000
CUSTOM_KEY = re.compile(rf"^[A-Za-z0-9_\-]{{1,{MAX_CUSTOM_KEY_LENGTH}}}$")
# Numbers are kept within what every JSON client reads exactly (I-JSON, RFC 7493 §2.2: an IEEE 754
# double's exact integer range); a larger integer could not even be rendered back (the JSON writer
# stops at 64 bits), and nobody keeps a lead attribute past 9e15.
MAX_SAFE_INTEGER = 2**53 - 1

# A note's body (§4.13 `add_note`, POST /leads/{id}/notes).
NOTE_MAX_LENGTH = 10_000

# Batch endpoints (§4.5): more items is 413 `batch_too_large`.
MAX_BATCH_ITEMS = 500
