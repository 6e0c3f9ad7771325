"""Lead exports (§4.8): the list's filters and sort, written as CSV, JSON, NDJSON or XLSX with flat memory.

One validation for every front door: `export_queryset` applies the list's own strict LeadFilterSet
(through `selectors.lead_filter`) and the list's sort, so an export holds exactly the leads a full
walk of `GET /leads` with the same parameters returns, in the same order. Rows are read with a
server-side cursor (`.values_list(...).iterator(chunk_size=2000)`) and written in chunks, so memory
does not grow with the number of rows. On PostgreSQL the CSV of `GET /leads/export` is written by
the database itself (`COPY (SELECT ...) TO STDOUT (FORMAT CSV)`) from the same filtered, sorted
query, with the neutralisation done in SQL; a test keeps it equal to the Python writer.

Formats (choices where the spec is silent are written down here and in the README):
- every format has one column / key per field of the lead resource, in the order of `lead_to_dict`;
- csv: RFC 4180 (comma, `"` quoting, CRLF line ends), UTF-8 without BOM, a header row; null and empty
  are an empty cell; `tags` joined with "|" (a tag containing "|" cannot be
  told apart: use json/ndjson for a lossless export); `custom_fields` and `score_breakdown` as JSON
  text; datetimes RFC 3339 in UTC (`2026-01-05T10:00:00.123456Z`), as the API renders them;
- json: one array of lead objects shaped like the API's lead, streamed chunk by chunk (valid when empty);
- ndjson: one lead object per line;
- xlsx: one sheet "Leads", openpyxl write-only (inline strings, no shared-strings table in memory),
  every cell a string (never a number, date or formula); characters XML cannot hold are dropped and
  a cell holds at most 32,767 characters (Excel's limit);
- spreadsheet formats (csv, xlsx) neutralise a cell starting with `=`, `+`, `-`, `@`, tab or CR with a
  leading `'`, except a valid E.164 number in the `phone` column.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
import re
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import nullcontext, suppress
from dataclasses import dataclass
from itertools import islice
from typing import IO, Any

import orjson
from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import DatabaseError, InterfaceError, OperationalError, connection, transaction
from django.db.models import F, Func, QuerySet, TextField
from django.db.models.functions import Cast
from django.http import QueryDict
from django.utils import timezone
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ERROR_CODES

from accounts.actor import Actor
from accounts.models import Account
from accounts.services import audit_log
from core.errors import ApplicationError, InvalidFilter, InvalidParameter, UnknownFilter
from core.keyset import order_by_expressions
from jobs.models import Job, JobKind
from jobs.services import job_create, job_fail, job_progress, job_requeue, job_start, job_succeed
from webhooks.models import EventType
from webhooks.services import events_record

from .filtersets import LIST_CONTROL_PARAMS
from .models import Lead
from .representation import LEAD_FIELDS
from .selectors import lead_filter, lead_sort_keys, lead_sorted

logger = logging.getLogger("leadbase.exports")


@dataclass(frozen=True)
class ExportFormat:
    name: str
    extension: str
    content_type: str


EXPORT_FORMATS: dict[str, ExportFormat] = {
    "csv": ExportFormat("csv", "csv", "text/csv; charset=utf-8"),
    "json": ExportFormat("json", "json", "application/json"),
    "ndjson": ExportFormat("ndjson", "ndjson", "application/x-ndjson"),
    "xlsx": ExportFormat("xlsx", "xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
}
DEFAULT_FORMAT = "csv"
# Query parameters of GET /leads/export besides the filters; the list's paging parameters are refused
# (an export is every matching lead, never a page of them).
EXPORT_PARAMS = frozenset({"format"})
REFUSED_PARAMS = frozenset({"limit", "cursor", "count"})

# The CSV/XLSX header and the JSON keys: the lead resource's fields, in the API's order.
EXPORT_COLUMNS: tuple[str, ...] = LEAD_FIELDS
CHUNK_ROWS = 2000  # rows per database fetch and per written chunk
PROGRESS_EVERY = 5000  # rows between job progress updates
TAG_SEPARATOR = "|"
# RFC 4180's CRLF. It also makes the csv module quote a value holding a lone CR (with "\n" it would not).
CSV_LINE_END = "\r\n"
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
E164 = re.compile(r"\+[1-9][0-9]{6,14}")  # used with fullmatch: no trailing-newline loophole
XLSX_MAX_CELL = 32767
TRANSIENT_DB_ERRORS = (OperationalError, InterfaceError)
# Characters XML 1.0 cannot hold (openpyxl refuses the C0 controls; lxml also U+FFFE/U+FFFF): dropped in XLSX.
XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


# --- Neutralisation -------------------------------------------------------------------------------


def neutralise(value: str) -> str:
    """A cell a spreadsheet would run as a formula gets a leading `'` (§4.8); anything else is unchanged."""
    return "'" + value if value and value[0] in FORMULA_TRIGGERS else value


def neutralise_phone(value: str) -> str:
    """A valid E.164 number (`+4930...`) stays as it is; anything else is neutralised like any cell."""
    return value if E164.fullmatch(value) else neutralise(value)


# --- Validation and the query ---------------------------------------------------------------------


def export_format(raw: str | None) -> ExportFormat:
    """The format named by `format=` (csv when absent); unknown is 400 invalid_parameter."""
    name = (raw or DEFAULT_FORMAT).strip().lower()
    if name not in EXPORT_FORMATS:
        choices = ", ".join(EXPORT_FORMATS)
        raise InvalidParameter(
            f"format must be one of {choices}.",
            errors=[{"field": "format", "code": "invalid_choice", "message": f"Use one of {choices}."}],
        )
    return EXPORT_FORMATS[name]


def export_queryset(*, account: Account, params) -> QuerySet[Lead]:
    """The account's leads narrowed by the list's strict filters and ordered by the list's sort.
    Raises UnknownFilter / InvalidFilter / InvalidParameter (before any row is read)."""
    refused = sorted(name for name in params if name in REFUSED_PARAMS)
    if refused:
        raise InvalidParameter(
            f"An export holds every matching lead: {', '.join(refused)} cannot be used here.",
            errors=[{"field": n, "code": "invalid", "message": "Not a parameter of exports."} for n in refused],
        )
    keys = lead_sort_keys(params.get("sort"))
    qs = lead_filter(account=account, params=params, extra_allowed=EXPORT_PARAMS)
    qs, keys = lead_sorted(qs, keys, account=account)
    return qs.order_by(*order_by_expressions(keys))


def filters_to_params(filters: Mapping[str, Any], sort: str | None = None) -> QueryDict:
    """Turn a JSON `filters` object into the query parameters the list takes: strings as they are,
    booleans as true/false, numbers as text, lists as comma-separated values (`tag`: repeated)."""
    params = QueryDict(mutable=True)
    for name, value in filters.items():
        if name in LIST_CONTROL_PARAMS or name in EXPORT_PARAMS:
            raise UnknownFilter(
                f"{name} is not a filter; give it at the top level of the body."
                if name in ("sort", "format")
                else f"{name} is not a filter of exports.",
                errors=[{"field": f"filters.{name}", "code": "unknown_filter", "message": "Not a filter."}],
            )
        items = value if isinstance(value, list) else [value]
        texts = [_filter_text(name, item) for item in items]
        if not texts:
            raise InvalidFilter(
                f"filters.{name}: give at least one value.",
                errors=[{"field": f"filters.{name}", "code": "blank", "message": "An empty list matches nothing."}],
            )
        if name == "tag":
            params.setlist(name, texts)
        else:
            params[name] = ",".join(texts)
    if sort:
        params["sort"] = sort
    return params


def _filter_text(name: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    raise InvalidFilter(
        f"filters.{name}: use a string, number, boolean or a list of them.",
        errors=[{"field": f"filters.{name}", "code": "invalid", "message": "Not a filter value."}],
    )


def export_filename(account: Account, fmt: ExportFormat, at=None) -> str:
    """`leads-<account slug>-<UTC timestamp>.<ext>`, e.g. leads-acme-20260105T100000Z.csv."""
    stamp = (at or timezone.now()).astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"leads-{account.slug}-{stamp}.{fmt.extension}"


# --- Reading rows ---------------------------------------------------------------------------------

# JSON columns are read as their text: CSV writes it as it is and JSON embeds it (orjson.Fragment)
# without decoding and re-encoding three documents per row.
_ROW_FIELDS = (
    "id",
    "email",
    "first_name",
    "last_name",
    "company",
    "job_title",
    "website",
    "city",
    "phone",
    "country",
    "source",
    "status",
    "score",
    "x_score_breakdown",
    "x_tags",
    "owner_id",
    "external_id",
    "x_custom_fields",
    "possible_duplicate_of_id",
    "created_at",
    "updated_at",
    "scored_at",
)


def _row_queryset(queryset: QuerySet[Lead]) -> QuerySet:
    return queryset.annotate(
        x_score_breakdown=Cast("score_breakdown", TextField()),
        x_tags=Cast("tags", TextField()),
        x_custom_fields=Cast("custom_fields", TextField()),
    ).values_list(*_ROW_FIELDS)


def row_batches(queryset: QuerySet[Lead], *, snapshot: bool = True) -> Iterator[list[tuple]]:
    """The rows of the export query, CHUNK_ROWS at a time, from a server-side cursor on PostgreSQL.

    `snapshot=True` reads inside one transaction, so the cursor streams as the client reads (outside
    a transaction PostgreSQL would materialise the whole result first, WITH HOLD). A job passes
    False: it writes progress to the same connection between chunks, which must commit on their own."""
    with transaction.atomic() if snapshot else nullcontext():
        rows = _row_queryset(queryset).iterator(chunk_size=CHUNK_ROWS)
        try:
            while batch := list(islice(rows, CHUNK_ROWS)):
                yield batch
        finally:
            rows.close()  # close the server-side cursor before the transaction ends


class RowCounter:
    """Counts the rows of the batches passing through and reports them every PROGRESS_EVERY rows."""

    def __init__(self, on_progress: Callable[[int], None] | None = None, every: int | None = None) -> None:
        self.rows = 0
        self.on_progress = on_progress
        self.every = every or PROGRESS_EVERY

    def __call__(self, batches: Iterator[list[tuple]]) -> Iterator[list[tuple]]:
        reported = 0
        for batch in batches:
            yield batch
            self.rows += len(batch)
            if self.on_progress is not None and self.rows - reported >= self.every:
                self.on_progress(self.rows)
                reported = self.rows


# --- Writers --------------------------------------------------------------------------------------


def iso_utc(value: dt.datetime | None) -> str | None:
    """RFC 3339 in UTC with `Z`, as the API renders datetimes (microseconds only when not zero)."""
    if value is None:
        return None
    text = value.astimezone(dt.UTC).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _as_is(value):
    return value


def _text_or_null(value: str | None) -> str | None:
    return neutralise(value) if value else None


def _phone_cell(value: str) -> str:
    return neutralise_phone(value) if value else value


def _tags_cell(tags: str) -> str:
    return neutralise(TAG_SEPARATOR.join(orjson.loads(tags))) if tags != "[]" else ""


# How each column of a row becomes a CSV/XLSX cell; a column not named is text, neutralised.
_SPREADSHEET_CELL = {
    "id": _as_is,
    "email": _text_or_null,
    "phone": _phone_cell,
    "score": _as_is,
    "tags": _tags_cell,
    "owner": _as_is,
    "external_id": _text_or_null,
    "possible_duplicate_of": _as_is,
    "created_at": iso_utc,
    "updated_at": iso_utc,
    "scored_at": iso_utc,
}
_SPREADSHEET_CONVERTERS = tuple(_SPREADSHEET_CELL.get(column, neutralise) for column in EXPORT_COLUMNS)


def spreadsheet_cells(row: tuple) -> list:
    """One row as CSV/XLSX cells: neutralised text; None for null; UUIDs and integers as they are."""
    return [convert(value) for convert, value in zip(_SPREADSHEET_CONVERTERS, row, strict=True)]


def csv_chunks(batches: Iterator[list[tuple]]) -> Iterator[bytes]:
    """A header row, then one encoded chunk per batch of rows."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator=CSV_LINE_END)
    writer.writerow(EXPORT_COLUMNS)
    yield buffer.getvalue().encode()
    for batch in batches:
        buffer.seek(0)
        buffer.truncate()
        writer.writerows(map(spreadsheet_cells, batch))
        yield buffer.getvalue().encode()


def json_object(row: tuple) -> dict[str, Any]:
    """One row shaped like lead_to_dict (orjson renders UUIDs and UTC datetimes the same way); the
    JSON columns arrive as JSON text and pass through without being parsed again."""
    obj = dict(zip(EXPORT_COLUMNS, row, strict=True))
    obj["score_breakdown"] = orjson.Fragment(obj["score_breakdown"])
    obj["tags"] = orjson.Fragment(obj["tags"])
    obj["custom_fields"] = orjson.Fragment(obj["custom_fields"])
    return obj


_JSON_OPTIONS = orjson.OPT_UTC_Z


def json_chunks(batches: Iterator[list[tuple]]) -> Iterator[bytes]:
    """A JSON array written batch by batch: `[` + objects joined by `,` + `]` (`[]` when empty)."""
    opened = False
    for batch in batches:
        body = orjson.dumps([json_object(row) for row in batch], option=_JSON_OPTIONS)
        yield (b"," if opened else b"[") + body[1:-1]
        opened = True
    yield b"]" if opened else b"[]"


def ndjson_chunks(batches: Iterator[list[tuple]]) -> Iterator[bytes]:
    """One JSON object per line (every line ends with `\\n`)."""
    options = _JSON_OPTIONS | orjson.OPT_APPEND_NEWLINE
    for batch in batches:
        yield b"".join(orjson.dumps(json_object(row), option=options) for row in batch)


def _xlsx_cells(sheet, row: tuple) -> list:
    out: list = []
    for value in spreadsheet_cells(row):
        if value is None or value == "":
            out.append(None)
            continue
        text = value if isinstance(value, str) else str(value)
        if XML_ILLEGAL.search(text):
            text = XML_ILLEGAL.sub("", text)
        text = text[:XLSX_MAX_CELL]
        if text in ERROR_CODES or text.startswith("="):
            # openpyxl would store these as an error or a formula: force a string cell.
            cell = WriteOnlyCell(sheet, value=text)
            cell.data_type = "s"
            out.append(cell)
        else:
            out.append(text)
    return out


def write_xlsx(batches: Iterator[list[tuple]], target: IO[bytes]) -> None:
    """Write a one-sheet workbook to `target` (openpyxl write-only: rows go to a temporary file)."""
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("Leads")
    sheet.append(list(EXPORT_COLUMNS))
    for batch in batches:
        for row in batch:
            sheet.append(_xlsx_cells(sheet, row))
    workbook.save(target)


STREAM_WRITERS: dict[str, Callable[[Iterator[list[tuple]]], Iterator[bytes]]] = {
    "csv": csv_chunks,
    "json": json_chunks,
    "ndjson": ndjson_chunks,
}


# --- The PostgreSQL CSV fast path -----------------------------------------------------------------

# Formula triggers by code point (`=`, `+`, `-`, `@`, tab, CR): integer comparisons of ascii(x), the
# cheapest test PostgreSQL has for the first character (ascii('') is 0, ascii(NULL) is NULL).
_SQL_TRIGGERS = "(61, 43, 45, 64, 9, 13)"
_SQL_SAFE = "CASE WHEN ascii({x}) IN " + _SQL_TRIGGERS + " THEN '''' || {x} ELSE NULLIF({x}, '') END"


class _CellSQL(Func):
    """A CSV cell computed in SQL from `sql_template`, where `{x}` is the column (it may repeat)."""

    arity = 1
    output_field = TextField()
    sql_template = "{x}"

    def as_sql(self, compiler, connection, **extra):
        sql, params = compiler.compile(self.source_expressions[0])
        return f"({self.sql_template.format(x=sql)})", tuple(params) * self.sql_template.count("{x}")


class SpreadsheetSafe(_CellSQL):
    """SQL twin of `neutralise`; '' becomes NULL so COPY writes an empty cell as the csv module does."""

    sql_template = _SQL_SAFE


class PhoneSafe(_CellSQL):
    """SQL twin of `neutralise_phone`: a valid E.164 number is left as it is."""

    sql_template = "CASE WHEN {x} ~ '^[+][1-9][0-9]{{6,14}}$' THEN {x} ELSE " + _SQL_SAFE + " END"


_TAGS_JOINED = "array_to_string(ARRAY(SELECT jsonb_array_elements_text({x})), '" + TAG_SEPARATOR + "')"


class TagsCell(_CellSQL):
    """The jsonb array of tags joined with TAG_SEPARATOR and neutralised. The joined text starts with the
    first tag, so the test reads `tags ->> 0` and the join runs once (CASE evaluates one branch)."""

    sql_template = (
        "CASE WHEN ascii({x} ->> 0) IN " + _SQL_TRIGGERS + " THEN '''' || " + _TAGS_JOINED + " "
        "ELSE NULLIF(" + _TAGS_JOINED + ", '') END"
    )


class JsonCell(_CellSQL):
    """A jsonb column as its text. An object or array (`{`, `[`) is cast once; any other JSON value is
    neutralised like text, as the Python writer does."""

    sql_template = (
        "CASE WHEN jsonb_typeof({x}) IN ('object', 'array') THEN ({x})::text ELSE "
        + _SQL_SAFE.replace("{x}", "({x})::text")
        + " END"
    )


class IsoUtc(_CellSQL):
    """A timestamp as Python's isoformat in UTC with `Z`: microseconds only when not zero."""

    sql_template = "replace(to_char({x} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), '.000000Z', 'Z')"


def _copy_columns() -> list:
    safe = SpreadsheetSafe
    return [
        F("id"),
        safe(F("email")),
        safe(F("first_name")),
        safe(F("last_name")),
        safe(F("company")),
        safe(F("job_title")),
        safe(F("website")),
        safe(F("city")),
        PhoneSafe(F("phone")),
        safe(F("country")),
        safe(F("source")),
        safe(F("status")),
        F("score"),
        JsonCell(F("score_breakdown")),
        TagsCell(F("tags")),
        F("owner_id"),
        safe(F("external_id")),
        JsonCell(F("custom_fields")),
        F("possible_duplicate_of_id"),
        IsoUtc(F("created_at")),
        IsoUtc(F("updated_at")),
        IsoUtc(F("scored_at")),
    ]


def copy_statement(queryset: QuerySet[Lead]) -> tuple[str, tuple]:
    """`COPY (<the export query with the CSV cells computed in SQL>) TO STDOUT (FORMAT CSV)`."""
    columns = {f"c{i}": expression for i, expression in enumerate(_copy_columns())}
    sql, params = queryset.annotate(**columns).values_list(*columns).query.sql_with_params()
    return f"COPY ({sql}) TO STDOUT (FORMAT CSV)", tuple(params)


def copy_csv_chunks(queryset: QuerySet[Lead], chunk_bytes: int = 256 * 1024) -> Iterator[bytes]:
    """The CSV export written by PostgreSQL itself (~10x the Python writer), in chunks of ~256 KB."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator=CSV_LINE_END).writerow(EXPORT_COLUMNS)
    yield buffer.getvalue().encode()
    statement, params = copy_statement(queryset)
    with connection.cursor() as cursor, cursor.cursor.copy(statement, params) as copy:
        pending = bytearray()
        for data in copy:  # one row per item, ending in "\n": written with RFC 4180's CRLF instead
            pending += data[:-1]
            pending += b"\r\n"
            if len(pending) >= chunk_bytes:
                yield bytes(pending)
                pending.clear()
        if pending:
            yield bytes(pending)


def use_copy(fmt: ExportFormat) -> bool:
    """CSV on PostgreSQL is written by COPY unless LEADBASE_EXPORT_CSV_COPY is off."""
    return fmt.name == "csv" and connection.vendor == "postgresql" and settings.LEADBASE_EXPORT_CSV_COPY


# --- The download: GET /leads/export ---------------------------------------------------------------


@dataclass
class LeadExport:
    """What the view sends: streamed chunks (csv/json/ndjson) or a finished file (xlsx)."""

    format: ExportFormat
    filename: str
    chunks: Iterator[bytes] | None = None
    file: IO[bytes] | None = None


def lead_export(*, account: Account, actor: Actor | None, params) -> LeadExport:
    """Validate the parameters now (errors are problem+json, never a broken file), audit the export,
    then return it: a lazy stream of chunks, or for xlsx a finished temporary file (a zip needs its end)."""
    fmt = export_format(params.get("format"))
    queryset = export_queryset(account=account, params=params)
    filename = export_filename(account, fmt)
    query = dict(params.lists()) if isinstance(params, QueryDict) else dict(params)
    _audit(account=account, actor=actor, fmt=fmt, query=query)
    if fmt.name == "xlsx":
        target = tempfile.TemporaryFile(suffix=".xlsx")  # noqa: SIM115  (FileResponse closes it)
        try:
            write_xlsx(row_batches(queryset), target)
        except BaseException:
            target.close()
            raise
        target.seek(0)
        return LeadExport(fmt, filename, file=target)
    if use_copy(fmt):
        return LeadExport(fmt, filename, chunks=copy_csv_chunks(queryset))
    return LeadExport(fmt, filename, chunks=STREAM_WRITERS[fmt.name](row_batches(queryset)))


# --- The background job: POST /exports ------------------------------------------------------------


def export_job_create(
    *, account: Account, actor: Actor | None, format: str, filters: Mapping[str, Any], sort: str | None = None
) -> Job:
    """Validate format, filters and sort now (a bad filter is a 400, not a failed job), then create the
    job and enqueue `leads.export` after commit. Eager Celery (embedded mode) has run it on return."""
    from .tasks import export_leads

    fmt = export_format(format)
    params = filters_to_params(filters, sort)
    export_queryset(account=account, params=params)
    job = job_create(
        account=account,
        actor=actor,
        kind=JobKind.EXPORT,
        params={"format": fmt.name, "filters": dict(filters), "sort": sort or ""},
        enqueue=lambda job: export_leads.delay(account.pk, str(job.pk)),
    )
    _audit(account=account, actor=actor, fmt=fmt, query=job.params, job_id=str(job.pk))
    job.refresh_from_db()
    return job


def _audit(*, account: Account, actor: Actor | None, fmt: ExportFormat, query, job_id: str = "") -> None:
    """Bulk reads of personal data are security-relevant: every export is in the account's audit log."""
    audit_log(
        account=account,
        action="leads.exported",
        actor=actor,
        object_type="job" if job_id else "",
        object_id=job_id,
        data={"format": fmt.name, "parameters": query},
    )


def export_storage_name(*, account_id: int, job_id, fmt: ExportFormat) -> str:
    return f"exports/{account_id}/{job_id}.{fmt.extension}"


def export_job_run(*, account_id: int, job_id) -> None:
    """The task body: write the file to the default storage with progress, then succeed the job.
    Transient database errors propagate (the task retries them); any other failure is recorded on
    the job with a message for the client, never lost."""
    job = Job.objects.select_related("account").filter(pk=job_id, account_id=account_id, kind=JobKind.EXPORT).first()
    if job is None:
        logger.warning("export job %s of account %s not found", job_id, account_id)
        return
    try:
        _export_job_write(job)
    except TRANSIENT_DB_ERRORS:
        raise
    except ApplicationError as exc:
        job_fail(job_id=job.pk, error=f"The export's parameters are not valid: {exc.detail}")
    except Exception:
        logger.exception("export job %s failed", job.pk)
        job_fail(
            job_id=job.pk,
            error="The export failed because of an error on our side. Start it again; if it fails again, "
            "contact support with this job's id.",
        )


def _export_job_write(job: Job) -> None:
    account = job.account
    fmt = export_format(job.params.get("format"))
    queryset = export_queryset(
        account=account, params=filters_to_params(job.params.get("filters") or {}, job.params.get("sort"))
    )
    job_start(job_id=job.pk, total=queryset.count())
    counter = RowCounter(lambda done: job_progress(job_id=job.pk, done=done))
    batches = counter(row_batches(queryset, snapshot=False))
    filename = export_filename(account, fmt)
    with tempfile.TemporaryFile() as target:
        if fmt.name == "xlsx":
            write_xlsx(batches, target)
        else:
            for chunk in STREAM_WRITERS[fmt.name](batches):
                target.write(chunk)
        target.seek(0)
        name = export_storage_name(account_id=account.pk, job_id=job.pk, fmt=fmt)
        default_storage.delete(name)  # a retried job overwrites its own file, never adds a copy
        saved = default_storage.save(name, File(target, name=filename))
    rows = counter.rows
    job_progress(job_id=job.pk, done=rows, total=rows)  # the final total is what was written
    result = {"filename": filename, "rows": rows, "format": fmt.name}
    with transaction.atomic():
        job_succeed(job_id=job.pk, result=result, file_name=saved)
        events_record(
            account=account,
            type=EventType.EXPORT_COMPLETED,
            items=[(None, {"job_id": str(job.pk), **result, "download_path": f"/api/v1/jobs/{job.pk}/download"})],
        )


def export_job_requeue(*, job_id, error: Exception) -> None:
    """A transient error the task will retry: the job waits as queued (not failed, which is final)."""
    with suppress(DatabaseError):  # the database may still be away; the retry restarts the job anyway
        job_requeue(job_id=job_id, reason=f"the database was unavailable ({type(error).__name__})")


def export_job_give_up(*, job_id, retries: int) -> None:
    """Record a job whose transient database errors outlasted its retries."""
    with suppress(DatabaseError):
        job_fail(
            job_id=job_id,
            error=f"The database was unavailable; the export was tried {retries + 1} times. Start it again later.",
        )
