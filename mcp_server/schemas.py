"""JSON schemas of the MCP tools: written for a model that reads nothing else.

The filter schema is generated from LeadFilterSet itself, so the tools and the REST list cannot drift.
"""

from __future__ import annotations

from typing import Any

import django_filters as df

from leads.filtersets import CUSTOM_FIELD_PARAM, LeadFilterSet
from leads.models import LeadStatus
from leads.selectors import LEAD_SORTS

STATUSES = [choice for choice, _ in LeadStatus.choices]

FIELD_MEANINGS = {
    "email": "the lead's email address (stored lower-cased)",
    "status": f"the pipeline status, one of {', '.join(STATUSES)}",
    "source": "where the lead came from, free text such as web_form, import, partner:acme",
    "country": "ISO 3166-1 alpha-2 country code, e.g. DE, US",
    "company": "the company name",
    "job_title": "the job title",
    "external_id": "the lead's id in another system",
    "owner": "user id of the account member who owns the lead",
    "score": "the lead score, an integer 0-100 computed by the account's scoring rules",
    "created_at": "when the lead was created (RFC 3339 date-time, e.g. 2026-01-31T00:00:00Z)",
    "updated_at": "when the lead was last changed (RFC 3339 date-time)",
    "scored_at": "when the lead was last scored (RFC 3339 date-time)",
}
LOOKUP_MEANINGS = {
    "": "equals",
    "in": "is any of these values",
    "icontains": "contains this text (case-insensitive)",
    "isnull": "true: is empty; false: has a value",
    "gte": "is greater than or equal to",
    "gt": "is greater than",
    "lte": "is less than or equal to",
    "lt": "is less than",
}
SPECIAL = {
    "tag": {
        "type": "array",
        "items": {"type": "string"},
        "description": 'Leads carrying ALL of these tags (tags are lower-case), e.g. ["hot", "webinar"].',
    },
    "tags": {"type": "string", "description": "Comma-separated tags: leads carrying ALL of them."},
    "tags__in": {
        "type": "array",
        "items": {"type": "string"},
        "description": "Leads carrying ANY of these tags.",
    },
    "tags__isnull": {"type": "boolean", "description": "true: leads without tags; false: leads with at least one."},
    "q": {"type": "string", "description": "Search words; every word must appear in the name, email or company."},
    "segment": {
        "type": "integer",
        "description": "Id of a saved segment (see the leadbase://segments resource): its saved filters apply too.",
    },
}


def _filter_property(name: str, flt: df.Filter) -> dict[str, Any]:
    if name in SPECIAL:
        return dict(SPECIAL[name])
    field, _, lookup = name.partition("__")
    meaning = FIELD_MEANINGS.get(field, field.replace("_", " "))
    description = f"Leads whose {field} ({meaning}) {LOOKUP_MEANINGS.get(lookup, lookup)}"
    if isinstance(flt, df.BooleanFilter):
        schema: dict[str, Any] = {"type": "boolean"}
    elif isinstance(flt, df.IsoDateTimeFilter):
        schema = {"type": "string", "format": "date-time"}
    elif isinstance(flt, df.NumberFilter):
        schema = {"type": "integer"}
    else:
        schema = {"type": "string"}
    if lookup == "in":
        schema = {"type": "array", "items": schema, "minItems": 1}
    elif isinstance(flt, df.ChoiceFilter):
        schema["enum"] = STATUSES
    schema["description"] = description + "."
    return schema


def filters_schema() -> dict[str, Any]:
    """Every LeadFilterSet filter as a property, plus `custom_fields.<key>`; unknown names are refused."""
    properties = {name: _filter_property(name, flt) for name, flt in LeadFilterSet.base_filters.items()}
    return {
        "type": "object",
        "description": (
            "Filters, all of which must match (AND). Keys are filter names: `<field>` equals, `<field>__in` any of a "
            "list, `<field>__icontains` text contains, `<field>__isnull` empty or not, `<field>__gte|gt|lte|lt` "
            "ranges for score and dates, `tag` all of these tags, `custom_fields.<key>` a custom field equals the "
            "value. An unknown filter or a malformed value is an error, never ignored. "
            'Example: {"status__in": ["new", "contacted"], "score__gte": 50, "tag": ["hot"], "country": "DE"}.'
        ),
        "properties": properties,
        "patternProperties": {
            CUSTOM_FIELD_PARAM.pattern: {
                "type": ["string", "number", "boolean", "null"],
                "description": "custom_fields.<key>: leads whose custom field <key> equals this value.",
            }
        },
        "additionalProperties": False,
    }


NULLABLE_STRING = {"type": ["string", "null"]}

LEAD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "A lead as the REST API renders it.",
    "properties": {
        "id": {"type": "string", "description": "UUID."},
        "email": NULLABLE_STRING,
        "first_name": {"type": "string"},
        "last_name": {"type": "string"},
        "company": {"type": "string"},
        "job_title": {"type": "string"},
        "website": {"type": "string"},
        "city": {"type": "string"},
        "phone": {"type": "string", "description": "E.164 where it parses."},
        "country": {"type": "string"},
        "source": {"type": "string"},
        "status": {"type": "string", "enum": STATUSES},
        "score": {"type": "integer"},
        "score_breakdown": {"type": "array"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "owner": {"type": ["integer", "null"]},
        "external_id": NULLABLE_STRING,
        "custom_fields": {"type": "object"},
        "possible_duplicate_of": NULLABLE_STRING,
        "created_at": {"type": "string"},
        "updated_at": {"type": "string"},
        "scored_at": NULLABLE_STRING,
    },
    "required": ["id", "status", "score", "tags"],
}

_TEXT = {"type": "string"}
LEAD_INPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": (
        "Lead fields. A lead needs at least one of email, phone, external_id. Unknown fields and the read-only "
        "ones (id, score, score_breakdown, created_at, updated_at, scored_at, possible_duplicate_of) are errors."
    ),
    "properties": {
        "email": {"type": ["string", "null"], "description": "Email; unique per account (the lead's identity)."},
        "first_name": _TEXT,
        "last_name": _TEXT,
        "company": _TEXT,
        "job_title": _TEXT,
        "website": _TEXT,
        "city": _TEXT,
        "phone": {"type": "string", "description": "Phone number; normalized to E.164 using the country."},
        "country": {"type": "string", "description": "ISO 3166-1 alpha-2 code, e.g. DE."},
        "source": {"type": "string", "description": "Where the lead came from, e.g. web_form, import, partner:acme."},
        "status": {"type": "string", "enum": STATUSES, "description": "Pipeline status; new by default."},
        "tags": {
            "type": "array",
            "items": {"type": "string"},
            "description": "Tags (lower-cased, unique). Replaces the lead's tags; use tag_leads to add or remove.",
        },
        "owner": {"type": ["integer", "null"], "description": "User id of an account member, or null."},
        "external_id": {"type": ["string", "null"], "description": "The lead's id in another system; unique."},
        "custom_fields": {
            "type": "object",
            "description": "String keys; string, number, boolean or null values.",
            "additionalProperties": {"type": ["string", "number", "boolean", "null"]},
        },
    },
    "additionalProperties": False,
}

SORT_DESCRIPTION = (
    f"Comma-separated sort fields of {', '.join(LEAD_SORTS)}; prefix '-' for descending. Default -created_at "
    "(newest first). Example: -score,created_at."
)

ID_SCHEMA = {"type": "string", "description": "A lead id (UUID), as returned by search_leads or create_lead."}
ERROR_FREE_NOTE = "Errors come back as a tool error with a stable code (e.g. not_found, validation_error)."
