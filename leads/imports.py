"""CSV import (§4.11): parse an uploaded file, guess a column mapping, and create the leads through
`leads_batch_create` — the function POST /api/v1/leads/batch runs — in batches of at most 500, so
an import deduplicates, caps and validates exactly like the API, with the API's messages.

The file and its report live in the default storage under `imports/<account id>/<import id>/`
(never in process memory: the upload, the mapping and the report may each be served by a
different gunicorn process). The import id is a random UUID and every path is built from the
caller's account, so another account's import cannot be named, let alone read.

The stored report holds no personal data: a row keeps its number, outcome, lead id and error code
and message (never a message quoting the row's cells); the lead's label is read from the lead when
the report is shown, so erasing a lead (§4.12) leaves nothing of it in the report. An import runs
once: `import_run_claim` takes an atomic claim in the shared cache before the run.
"""

from __future__ import annotations

import contextlib
import csv
import datetime
import io
import json
import os
import re
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone

from accounts import selectors as account_selectors
from accounts.actor import Actor
from accounts.models import Account
from core.errors import ERROR_CODES, ApplicationError, NotFound, ValidationFailed

from .api.batch import validate_items
from .api.serializers import LeadInputSerializer
from .batch import MAX_BATCH_ITEMS, leads_batch_create
from .models import Lead

ON_DUPLICATE_CHOICES = ("error", "skip", "update")
IGNORE = "ignore"
TAGS = "tags"
CUSTOM_PREFIX = "custom_fields."
# The lead fields a column can fill, in the order the mapping page offers them.
IMPORT_FIELDS: dict[str, str] = {
    "email": "Email",
    "first_name": "First name",
    "last_name": "Last name",
    "company": "Company",
    "job_title": "Job title",
    "website": "Website",
    "city": "City",
    "phone": "Phone",
    "country": "Country",
    "source": "Source",
    "status": "Status",
    "owner": "Owner (member's email or user id)",
    "external_id": "External id",
    TAGS: "Tags (split on , or ;)",
}
IDENTITY_FIELDS = ("email", "phone", "external_id")
# Header spellings seen in CRM and spreadsheet exports, after _header_key().
HEADER_ALIASES: dict[str, str] = {
    **{k: k for k in IMPORT_FIELDS},
    "e_mail": "email",
    "email_address": "email",
    "mail": "email",
    "firstname": "first_name",
    "first": "first_name",
    "given_name": "first_name",
    "forename": "first_name",
    "lastname": "last_name",
    "last": "last_name",
    "surname": "last_name",
    "family_name": "last_name",
    "company_name": "company",
    "organization": "company",
    "organisation": "company",
    "org": "company",
    "employer": "company",
    "title": "job_title",
    "jobtitle": "job_title",
    "position": "job_title",
    "url": "website",
    "web": "website",
    "homepage": "website",
    "site": "website",
    "town": "city",
    "phone_number": "phone",
    "telephone": "phone",
    "tel": "phone",
    "mobile": "phone",
    "country_code": "country",
    "lead_source": "source",
    "lead_status": "status",
    "tag": TAGS,
    "labels": TAGS,
    "owner_email": "owner",
    "externalid": "external_id",
    "external_ref": "external_id",
    "crm_id": "external_id",
    "id": "external_id",
}
TAG_SPLIT = re.compile(r"[;,]")
SNIFF_BYTES = 64 * 1024
# A stored message that quotes one of its row's cells this long or longer (any email is) is replaced:
# the report outlives the row's lead, which an erasure deletes, and must not keep what the row said.
QUOTED_CELL_MIN_LENGTH = 3
QUOTED_CELL_FIELD_MESSAGES = {"invalid_choice": "Not one of the allowed values."}
QUOTED_CELL_FIELD_MESSAGE = "Not a valid value."
# How long a run's claim lasts: past any request gunicorn lets finish (10,000 rows take ~10 s), so a
# run the claim still covers is a run in progress; a process killed mid-run frees it when it expires.
IMPORT_RUN_CLAIM_SECONDS = 10 * 60
# Lead ids per query when a report is shown: the default row cap (10,000) is one query, and any cap
# stays below SQLite's and PostgreSQL's bind-parameter limits.
LABEL_QUERY_CHUNK = 10_000


def max_bytes() -> int:
    return settings.LEADBASE_IMPORT_MAX_BYTES


def max_rows() -> int:
    return settings.LEADBASE_IMPORT_MAX_ROWS


def _file_error(message: str, code: str = "invalid") -> ValidationFailed:
    return ValidationFailed(message, errors=[{"field": "file", "code": code, "message": message}])


# --- Parsing ----------------------------------------------------------------------------------------


@dataclass
class CsvFile:
    """A parsed upload: the header and the data rows with their row numbers (the header is row 1,
    as in a spreadsheet; blank lines keep their number but carry no lead)."""

    headers: list[str]
    rows: list[tuple[int, list[str]]]
    delimiter: str


def _sniff_delimiter(text: str) -> str:
    try:
        return csv.Sniffer().sniff(text[:SNIFF_BYTES], delimiters=",;").delimiter
    except csv.Error:
        # One column, or too little text to tell: the header line decides, comma when in doubt.
        first = text.split("\n", 1)[0]
        return ";" if first.count(";") > first.count(",") else ","


def csv_parse(raw: bytes) -> CsvFile:
    """Decode (UTF-8, a BOM tolerated), sniff `,` or `;`, and read the header and rows.
    Raises ValidationFailed (field `file`) with a message a person can act on."""
    if len(raw) > max_bytes():
        raise ApplicationError(
            f"The file is {human_size(len(raw))}; an import takes at most {human_size(max_bytes())}.",
            code="payload_too_large",
            status=413,
            errors=[{"field": "file", "code": "too_large", "message": f"At most {human_size(max_bytes())}."}],
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _file_error(
            f"The file is not UTF-8 text (byte {exc.start + 1} is not valid UTF-8). "
            "Save it as “CSV UTF-8” and upload it again."
        ) from None
    if not text.strip():
        raise _file_error("The file is empty.")
    if "\x00" in text:
        raise _file_error("The file holds NUL characters: it is not a CSV text file.")
    delimiter = _sniff_delimiter(text)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        headers: list[str] | None = None
        rows: list[tuple[int, list[str]]] = []
        for number, record in enumerate(reader, start=1):
            if headers is None:
                if not any(cell.strip() for cell in record):
                    raise _file_error("The first row must be a header naming the columns; it is empty.")
                headers = [cell.strip() for cell in record]
                continue
            if any(cell.strip() for cell in record):
                rows.append((number, record))
                if len(rows) > max_rows():
                    raise ApplicationError(
                        f"The file has more than {max_rows():,} rows; split it into files of at most {max_rows():,}.",
                        code="payload_too_large",
                        status=413,
                        errors=[{"field": "file", "code": "too_many_rows", "message": f"At most {max_rows():,} rows."}],
                    )
    except csv.Error as exc:
        raise _file_error(f"The file is not valid CSV near row {reader.line_num}: {exc}.") from None
    if headers is None:
        raise _file_error("The file is empty.")
    if not rows:
        raise _file_error("The file has a header but no rows of data.")
    if len(headers) > 200:
        raise _file_error(f"The file has {len(headers)} columns; an import takes at most 200.")
    return CsvFile(headers=headers, rows=rows, delimiter=delimiter)


def human_size(n: int) -> str:
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):.1f} MB".replace(".0 MB", " MB")
    if n >= 1024:
        return f"{n / 1024:.0f} kB"
    return f"{n} bytes"


# --- Mapping ----------------------------------------------------------------------------------------


def _header_key(header: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", header.strip().lower()).strip("_")


def custom_field_key(header: str, index: int) -> str:
    """The custom field key a column fills: its header, lower-cased, in the API's key alphabet
    (letters, digits, `_`, `-`; no `__`; at most 64), or `column_<n>` for a header with nothing usable."""
    key = re.sub(r"[^a-z0-9_\-]+", "_", header.strip().lower())
    key = re.sub(r"_{2,}", "_", key).strip("_-")[:64]
    return key or f"column_{index + 1}"


def column_choices(headers: list[str], index: int) -> list[tuple[str, str]]:
    """What one column can map to: ignore, a lead field, tags, or its own custom field."""
    key = custom_field_key(headers[index], index)
    return [
        (IGNORE, "— ignore —"),
        *IMPORT_FIELDS.items(),
        (f"{CUSTOM_PREFIX}{key}", f"Custom field “{key}”"),
    ]


def mapping_guess(headers: list[str]) -> list[str]:
    """A target per column from its header name; a field is guessed for its first column only."""
    taken: set[str] = set()
    out = []
    for header in headers:
        target = HEADER_ALIASES.get(_header_key(header), IGNORE)
        if target != IGNORE and target in taken:
            target = IGNORE
        taken.add(target)
        out.append(target)
    return out


def mapping_errors(headers: list[str], mapping: list[str]) -> dict[int, str]:
    """Per-column problems of a chosen mapping: a field mapped from two columns, an unknown target.
    Returns {column index: message}; a missing identity column is the caller's form-wide error."""
    problems: dict[int, str] = {}
    first: dict[str, int] = {}
    for index, target in enumerate(mapping):
        allowed = {value for value, _ in column_choices(headers, index)}
        if target not in allowed:
            problems[index] = "Choose what this column holds."
            continue
        if target == IGNORE:
            continue
        if target in first:
            label = IMPORT_FIELDS.get(target, target)
            other = headers[first[target]] or f"column {first[target] + 1}"
            problems[index] = f"{label} is already mapped from the column “{other}”: map each field once."
        else:
            first[target] = index
    return problems


def mapping_has_identity(mapping: list[str]) -> bool:
    return any(target in IDENTITY_FIELDS for target in mapping)


# --- Running ----------------------------------------------------------------------------------------


@dataclass
class ImportReport:
    """Every row's outcome in file order, and the counts. Plain data, kept as JSON in the storage."""

    filename: str
    on_duplicate: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    created_at: str = ""

    @property
    def summary(self) -> dict[str, int]:
        counts = {"created": 0, "updated": 0, "skipped": 0, "failed": 0}
        for row in self.rows:
            counts[row["outcome"]] = counts.get(row["outcome"], 0) + 1
        counts["total"] = len(self.rows)
        return counts

    def to_json(self) -> dict[str, Any]:
        return {
            "filename": self.filename,
            "on_duplicate": self.on_duplicate,
            "created_at": self.created_at,
            "rows": self.rows,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ImportReport:
        return cls(
            filename=data.get("filename", ""),
            on_duplicate=data.get("on_duplicate", "error"),
            rows=list(data.get("rows", [])),
            created_at=data.get("created_at", ""),
        )


class _OwnerLookup:
    """`owner` cells hold a member's email (what a spreadsheet has) or a user id (what the API takes)."""

    def __init__(self, account: Account):
        self._by_email = {m.user.email.lower(): m.user_id for m in account_selectors.member_list(account=account)}

    def __call__(self, raw: str) -> int | str:
        if raw.isdigit():
            return int(raw)
        user_id = self._by_email.get(raw.lower())
        if user_id is None:
            # The message names no email: it is kept in the stored report (see _row_report).
            message = "No member of this account has this email."
            raise ValidationFailed(
                f"owner: {message}", errors=[{"field": "owner", "code": "invalid", "message": message}]
            )
        return user_id


def row_to_item(
    headers: list[str], cells: list[str], mapping: list[str], owner_lookup
) -> dict[str, Any] | ApplicationError:
    """One CSV row as the API's lead body (empty cells are left out), or the error that explains it."""
    if len(cells) > len(headers) and any(c.strip() for c in cells[len(headers) :]):
        return ValidationFailed(
            f"The row has {len(cells)} cells; the header names {len(headers)} columns.",
            errors=[{"field": "", "code": "invalid", "message": "More cells than columns."}],
        )
    item: dict[str, Any] = {}
    for index, target in enumerate(mapping):
        if target == IGNORE or index >= len(cells):
            continue
        value = cells[index].strip()
        if not value:
            continue
        if target == TAGS:
            tags = [t.strip() for t in TAG_SPLIT.split(value) if t.strip()]
            if tags:
                item["tags"] = tags
        elif target.startswith(CUSTOM_PREFIX):
            item.setdefault("custom_fields", {})[target[len(CUSTOM_PREFIX) :]] = value
        elif target == "owner":
            try:
                item["owner"] = owner_lookup(value)
            except ApplicationError as exc:
                return exc
        else:
            item[target] = value
    return item


def _chunks(seq: list, size: int) -> Iterator[list]:
    for start in range(0, len(seq), size):
        yield seq[start : start + size]


def leads_import(
    *,
    account: Account,
    actor: Actor,
    csv_file: CsvFile,
    mapping: list[str],
    on_duplicate: str = "error",
    filename: str = "",
) -> ImportReport:
    """Create the file's leads through `leads_batch_create`, 500 rows per call (one transaction
    each: a later batch failing leaves the earlier ones in, as the report says row by row).

    Each row is validated by the API's LeadInputSerializer, so a bad row fails with the API's
    message; dedup (`on_duplicate`), the plan's lead cap and within-batch duplicates are the batch
    path's own. A row repeating a lead of an earlier batch of the same file meets it as an existing
    lead (`duplicate_lead`, or skipped/updated), not as `duplicate_in_batch`."""
    if on_duplicate not in ON_DUPLICATE_CHOICES:
        raise ValidationFailed("on_duplicate must be error, skip or update.")
    owner_lookup = _OwnerLookup(account) if "owner" in mapping else None
    report = ImportReport(filename=filename, on_duplicate=on_duplicate, created_at=timezone.now().isoformat())
    for chunk in _chunks(csv_file.rows, MAX_BATCH_ITEMS):
        raw_items = [row_to_item(csv_file.headers, cells, mapping, owner_lookup) for _, cells in chunk]
        to_validate = [item for item in raw_items if not isinstance(item, ApplicationError)]
        validated = iter(validate_items(to_validate, LeadInputSerializer))
        items = [item if isinstance(item, ApplicationError) else next(validated) for item in raw_items]
        result = leads_batch_create(account=account, actor=actor, items=items, on_duplicate=on_duplicate)
        for (number, cells), outcome in zip(chunk, result.results, strict=True):
            report.rows.append(_row_report(number, cells, outcome))
    return report


def _quotes_a_cell(message: str, cells: set[str]) -> bool:
    lowered = message.lower()
    return any(cell in lowered for cell in cells)


def _row_report(number: int, cells: list[str], item) -> dict[str, Any]:
    """What the stored report keeps of a row: no personal data. A created/updated/skipped row keeps
    its lead's id only (the label is read from the lead when the report is shown); a failed row its
    error code and the API's messages, except a message quoting one of the row's cells (a bad country
    or status is quoted by the API; a cell mapped to the wrong field could be an email), which gives
    way to one made from the error's code."""
    if item.error is not None:
        quotable = {c.strip().lower() for c in cells if len(c.strip()) >= QUOTED_CELL_MIN_LENGTH}
        errors = []
        for error in item.error.errors or []:
            if _quotes_a_cell(error.get("message", ""), quotable):
                message = QUOTED_CELL_FIELD_MESSAGES.get(error.get("code"), QUOTED_CELL_FIELD_MESSAGE)
                error = {**error, "message": message}
            errors.append(error)
        detail = item.error.detail
        if _quotes_a_cell(detail, quotable):
            # the API's own shape of a validation message ("field: message; ..."), from the scrubbed errors
            detail = "; ".join(f"{e['field']}: {e['message']}" if e.get("field") else e["message"] for e in errors)
            detail = detail or f"{ERROR_CODES[item.error.code][1]}."
        row: dict[str, Any] = {
            "row": number,
            "outcome": "failed",
            "code": item.error.code,
            "message": detail,
            "errors": errors,
        }
        existing = item.error.extra.get("existing_id")
        if existing:
            row["existing_id"] = str(existing)
        return row
    return {"row": number, "outcome": item.outcome or "created", "lead_id": str(item.lead.pk)}


def import_report_rows(*, account: Account, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The report's rows as shown: each row naming a lead (its own, or the existing lead it met)
    gets `label`, the lead's email, else external id, else phone, as the lead is now; None when the
    lead no longer exists (deleted or erased), so the page names nothing and links nowhere. One
    query for the rows given, whatever their number (up to LABEL_QUERY_CHUNK)."""
    ids = sorted({row[key] for row in rows for key in ("lead_id", "existing_id") if row.get(key)})
    labels: dict[str, str] = {}
    for start in range(0, len(ids), LABEL_QUERY_CHUNK):
        found = (
            Lead.objects.for_account(account)
            .filter(pk__in=ids[start : start + LABEL_QUERY_CHUNK])
            .values_list("pk", "email", "external_id", "phone")
        )
        for pk, email, external_id, phone in found:
            labels[str(pk)] = email or external_id or phone or str(pk)
    return [{**row, "label": labels.get(row.get("lead_id") or row.get("existing_id") or "")} for row in rows]


# --- Keeping the upload and the report between requests ---------------------------------------------


def _dir(account: Account, import_id: uuid.UUID) -> str:
    return f"imports/{int(account.pk)}/{import_id}"


def import_id_parse(raw) -> uuid.UUID:
    try:
        return uuid.UUID(str(raw))
    except ValueError:
        raise NotFound("No such import.") from None


def import_upload_store(*, account: Account, raw: bytes, filename: str) -> uuid.UUID:
    """Keep an upload (already checked by csv_parse) for the mapping step; returns its id."""
    import_id = uuid.uuid4()
    base = _dir(account, import_id)
    default_storage.save(f"{base}/source.csv", ContentFile(raw))
    meta = {"filename": filename[:200], "uploaded_at": timezone.now().isoformat()}
    default_storage.save(f"{base}/meta.json", ContentFile(json.dumps(meta).encode()))
    return import_id


def import_upload_load(*, account: Account, import_id) -> tuple[CsvFile, dict[str, Any]]:
    """The stored upload of this account, parsed; NotFound when it does not exist (any more)."""
    base = _dir(account, import_id_parse(import_id))
    if not default_storage.exists(f"{base}/source.csv"):
        raise NotFound("No such import.")
    with default_storage.open(f"{base}/source.csv", "rb") as fh:
        raw = fh.read()
    with default_storage.open(f"{base}/meta.json", "rb") as fh:
        meta = json.loads(fh.read())
    return csv_parse(raw), meta


def _run_key(account: Account, import_id) -> str:
    return f"import-run:{int(account.pk)}:{import_id_parse(import_id)}"


def import_run_claim(*, account: Account, import_id) -> bool:
    """Claim the one run of this import: True for the first caller, False for everyone else while the
    claim lasts (IMPORT_RUN_CLAIM_SECONDS). `cache.add` is atomic in the shared cache (SET NX on
    Redis), so of two submissions racing in different gunicorn processes exactly one runs; the
    "report stored?" check alone is a read-then-write that both would pass. In the embedded mode the
    cache is the single process's memory, which is all there is to share. While Redis is unreachable
    the cache falls back to each process's memory (core/cache.py): a double submission that two
    processes answer could then run twice, like the rate limits during an outage."""
    return cache.add(_run_key(account, import_id), 1, timeout=IMPORT_RUN_CLAIM_SECONDS)


def import_run_release(*, account: Account, import_id) -> None:
    """Give up the claim of a run that failed, so the person may try again. A run that finished
    keeps its claim until it expires: released earlier, a submission that read "no report yet" just
    before the report was stored could claim and run the import a second time."""
    cache.delete(_run_key(account, import_id))


def import_running(*, account: Account, import_id) -> bool:
    """Whether a run of this import holds its claim (in progress, or finished moments ago)."""
    return cache.get(_run_key(account, import_id)) is not None


def import_report_store(*, account: Account, import_id, report: ImportReport) -> None:
    """Keep the report and drop the upload: an import runs once; its page then shows the report."""
    base = _dir(account, import_id_parse(import_id))
    default_storage.save(f"{base}/report.json", ContentFile(json.dumps(report.to_json()).encode()))
    default_storage.delete(f"{base}/source.csv")


def import_report_load(*, account: Account, import_id) -> ImportReport | None:
    """The stored report of this account's import, or None when it has not run (or never existed)."""
    base = _dir(account, import_id_parse(import_id))
    if not default_storage.exists(f"{base}/report.json"):
        return None
    with default_storage.open(f"{base}/report.json", "rb") as fh:
        return ImportReport.from_json(json.loads(fh.read()))


def imports_purge(*, older_than: datetime.timedelta | None = None) -> int:
    """Delete stored imports (upload, meta, report) uploaded longer ago than the retention
    (`LEADBASE_IMPORT_RETENTION_HOURS`): the upload holds personal data nobody needs once the report
    has been read. Returns how many imports were removed. Runs daily (Celery beat)."""
    if older_than is None:
        older_than = datetime.timedelta(hours=settings.LEADBASE_IMPORT_RETENTION_HOURS)
    cutoff = timezone.now() - older_than
    removed = 0
    if not default_storage.exists("imports"):
        return 0
    account_dirs, _ = default_storage.listdir("imports")
    for account_dir in account_dirs:
        import_dirs, _ = default_storage.listdir(f"imports/{account_dir}")
        for import_dir in import_dirs:
            base = f"imports/{account_dir}/{import_dir}"
            _, files = default_storage.listdir(base)
            if not files:
                _remove_empty_dir(base)
                continue
            try:
                with default_storage.open(f"{base}/meta.json", "rb") as fh:
                    uploaded = datetime.datetime.fromisoformat(json.loads(fh.read())["uploaded_at"])
            except (OSError, ValueError, KeyError):
                uploaded = None  # no readable meta: an interrupted upload, removed like an old one
            if uploaded is not None and uploaded > cutoff:
                continue
            for name in files:
                default_storage.delete(f"{base}/{name}")
            _remove_empty_dir(base)
            removed += 1
    return removed


def _remove_empty_dir(name: str) -> None:
    """A file system storage keeps empty directories; object stores have none to remove."""
    with contextlib.suppress(NotImplementedError, OSError):
        os.rmdir(default_storage.path(name))
