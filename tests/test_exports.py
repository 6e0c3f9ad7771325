"""Lead exports (§4.8): GET /leads/export in every format, POST /exports jobs, neutralisation, tenancy."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import uuid
from unittest.mock import patch

import openpyxl
import pytest
from celery.exceptions import Retry
from django.db import OperationalError, connection
from django.test.utils import CaptureQueriesContext

from accounts.models import AuditLogEntry, Role
from core.errors import ERROR_CODES, PROBLEM_TYPE_BASE
from jobs.models import Job, JobStatus
from leads import exports
from leads.models import Lead
from leads.tasks import export_leads

from .factories import LeadFactory

pytestmark = pytest.mark.django_db

EXPORT = "/api/v1/leads/export"
EXPORTS = "/api/v1/exports"
FORMATS = ["csv", "json", "ndjson", "xlsx"]
CONTENT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "json": "application/json",
    "ndjson": "application/x-ndjson",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
HYPERLINK = '=HYPERLINK("http://x","y")'
E164_PHONE = "+4930123456789"

# Query strings the export and the list share: filters, search, tags, custom fields, sorts.
QUERIES = [
    "",
    "sort=-score,created_at",
    "status__in=new,contacted&sort=email",
    "tag=hot&sort=-company",
    "score__gte=40&sort=last_name",
    "q=acme&sort=-email",
    "custom_fields.tier=gold&sort=updated_at",
]


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def leads(account, other_account) -> list[Lead]:
    """27 leads of `account` with varied fields, three spreadsheet traps, and leads of another account."""
    statuses = ["new", "contacted", "qualified", "lost"]
    tags = [["hot"], ["hot", "vip"], [], ["cold"]]
    made = []
    for n in range(24):
        made.append(
            LeadFactory(
                account=account,
                email=None if n % 7 == 3 else f"lead{n}@example.org",
                external_id=f"crm-{n}" if n % 7 == 3 else None,
                company=["Acme Inc", "Globex", "", "Initech"][n % 4],
                last_name=["Lovelace", "Hopper", "Turing"][n % 3],
                status=statuses[n % 4],
                score=(n * 13) % 101,
                tags=tags[n % 4],
                custom_fields={"tier": "gold" if n % 3 == 0 else "silver", "seats": n, "ok": n % 2 == 0},
                phone=E164_PHONE if n % 5 == 0 else "",
            )
        )
    made.append(
        LeadFactory(
            account=account,
            email="trap@example.org",
            company=HYPERLINK,
            city="+1+1",
            first_name="@SUM(1)",
            last_name="\tTabbed",
            job_title="-2+3",
            website="\rcarriage",
            phone=E164_PHONE,
            tags=["=cmd", "hot"],
            custom_fields={"tier": "gold", "note": "=1+1"},
        )
    )
    made.append(LeadFactory(account=account, email="badphone@example.org", phone="+1+1", company="#N/A"))
    # Zero microseconds: the one datetime rendering that differs between naive formatters.
    zero = LeadFactory(account=account, email="zero@example.org", company="Zero µs Ltd", city="Zürich")
    Lead.objects.filter(pk=zero.pk).update(
        created_at=dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.UTC), scored_at=dt.datetime(2025, 1, 2, tzinfo=dt.UTC)
    )
    made.append(zero)
    for n in range(3):
        LeadFactory(account=other_account, email=f"secret{n}@globex.example", company="Acme Inc", tags=["hot"])
    return made


def walk(client, query: str) -> list[dict]:
    """Every lead of GET /leads with these parameters, page by page (small pages: several cursors)."""
    out: list[dict] = []
    url = f"/api/v1/leads?{query}&limit=7" if query else "/api/v1/leads?limit=7"
    cursor = None
    while True:
        response = client.get(url + (f"&cursor={cursor}" if cursor else ""))
        assert response.status_code == 200, response.content
        body = response.json()
        out.extend(body["results"])
        cursor = body["next_cursor"]
        if not cursor:
            return out


def download(client, fmt: str, query: str = "", **extra):
    response = client.get(f"{EXPORT}?format={fmt}" + (f"&{query}" if query else ""), **extra)
    assert response.status_code == 200, response.content if not response.streaming else response.status_code
    return response


def content(response) -> bytes:
    return b"".join(response.streaming_content)


def parse(fmt: str, data: bytes) -> list[list] | list[dict]:
    """Parse an export: CSV/XLSX as rows (header first), JSON/NDJSON as objects."""
    if fmt == "csv":
        return list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
    if fmt == "json":
        return json.loads(data)
    if fmt == "ndjson":
        assert data == b"" or data.endswith(b"\n")
        return [json.loads(line) for line in data.decode().splitlines()]
    sheet = openpyxl.load_workbook(io.BytesIO(data)).active
    return [list(row) for row in sheet.iter_rows(values_only=True)]


def exported_ids(fmt: str, data: bytes) -> list[str]:
    parsed = parse(fmt, data)
    if fmt in ("json", "ndjson"):
        return [obj["id"] for obj in parsed]
    assert list(parsed[0]) == list(exports.EXPORT_COLUMNS)
    return [row[0] for row in parsed[1:]]


def assert_problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == code and code in ERROR_CODES
    assert body["type"] == PROBLEM_TYPE_BASE + code
    return body


def by_column(row: list) -> dict:
    return dict(zip(exports.EXPORT_COLUMNS, row, strict=True))


# --- GET /leads/export: same leads, same order, every format ----------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("query", QUERIES)
def test_export_holds_the_leads_of_a_full_list_walk_in_the_same_order(api, leads, fmt, query):
    expected = [lead["id"] for lead in walk(api, query)]
    assert expected, "every query of the table matches some leads"
    assert exported_ids(fmt, content(download(api, fmt, query))) == expected


@pytest.mark.parametrize("fmt", ["json", "ndjson"])
def test_json_exports_are_the_leads_exactly_as_the_list_renders_them(api, leads, fmt):
    listed = walk(api, "sort=-score")
    assert parse(fmt, content(download(api, fmt, "sort=-score"))) == listed


def test_csv_cells_are_the_list_values_with_tags_joined_and_json_columns(api, leads):
    listed = {lead["id"]: lead for lead in walk(api, "")}
    rows = parse("csv", content(download(api, "csv")))
    assert rows[0] == list(exports.EXPORT_COLUMNS)
    for row in rows[1:]:
        cells, lead = by_column(row), listed[row[0]]
        assert cells["email"] == (lead["email"] or "")
        assert cells["score"] == str(lead["score"])
        assert cells["created_at"] == lead["created_at"]
        assert cells["scored_at"] == (lead["scored_at"] or "")
        assert json.loads(cells["custom_fields"]) == lead["custom_fields"]
        assert json.loads(cells["score_breakdown"]) == lead["score_breakdown"]
        if not any(tag.startswith("=") for tag in lead["tags"]):
            assert cells["tags"] == "|".join(lead["tags"])
    zero = next(by_column(r) for r in rows[1:] if r[1] == "zero@example.org")
    assert zero["created_at"] == "2025-01-02T03:04:05Z"
    assert zero["city"] == "Zürich"


@pytest.mark.parametrize("fmt", FORMATS)
def test_export_headers_name_an_attachment_with_the_account_and_a_utc_timestamp(api, leads, fmt):
    response = download(api, fmt)
    assert response["Content-Type"] == CONTENT_TYPES[fmt]
    match = re.fullmatch(r'attachment; filename="leads-acme-(\d{8}T\d{6}Z)\.(\w+)"', response["Content-Disposition"])
    assert match and match[2] == fmt
    stamp = dt.datetime.strptime(match[1], "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    assert abs((dt.datetime.now(dt.UTC) - stamp).total_seconds()) < 120
    content(response)


def test_csv_json_ndjson_stream_and_xlsx_is_a_file_response(api, leads):
    for fmt in ("csv", "json", "ndjson"):
        response = download(api, fmt)
        assert response.streaming and not response.has_header("Content-Length")
        content(response)
    xlsx = download(api, "xlsx")
    assert int(xlsx["Content-Length"]) == len(content(xlsx))


def test_format_defaults_to_csv_and_an_accept_header_does_not_get_in_the_way(api, leads):
    response = api.get(EXPORT, HTTP_ACCEPT="text/csv")
    assert response.status_code == 200
    assert response["Content-Type"] == CONTENT_TYPES["csv"]
    assert exported_ids("csv", content(response)) == [lead["id"] for lead in walk(api, "")]


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_empty_export_is_still_a_valid_file(api, leads, fmt):
    data = content(download(api, fmt, "status=converted"))
    parsed = parse(fmt, data)
    if fmt == "json":
        assert data == b"[]" and parsed == []
    elif fmt == "ndjson":
        assert data == b""
    else:
        assert parsed == [list(exports.EXPORT_COLUMNS)]


@pytest.mark.parametrize("fmt", FORMATS)
def test_another_accounts_leads_never_appear(api, other_api, leads, fmt):
    ours = {str(lead.pk) for lead in Lead.objects.filter(account=leads[0].account)}
    theirs = {str(lead.pk) for lead in Lead.objects.exclude(account=leads[0].account)}
    assert set(exported_ids(fmt, content(download(api, fmt)))) == ours
    assert set(exported_ids(fmt, content(download(other_api, fmt)))) == theirs


# --- Formula neutralisation (CSV and XLSX) ------------------------------------------------------------


def trap_cells(fmt: str, data: bytes) -> dict:
    rows = parse(fmt, data)
    return next(by_column(row) for row in rows[1:] if row[1] == "trap@example.org")


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_cells_a_spreadsheet_would_run_are_neutralised_but_a_valid_phone_is_not(api, leads, fmt):
    cells = trap_cells(fmt, content(download(api, fmt)))
    assert cells["company"] == "'" + HYPERLINK
    assert cells["city"] == "'+1+1"
    assert cells["first_name"] == "'@SUM(1)"
    assert cells["last_name"] == "'\tTabbed"
    assert cells["job_title"] == "'-2+3"
    assert cells["website"] == "'\rcarriage"  # lxml writes the CR as &#13;, so XML keeps it
    assert cells["tags"] == "'=cmd|hot"
    assert cells["phone"] == E164_PHONE
    bad_phone = next(
        by_column(row) for row in parse(fmt, content(download(api, fmt)))[1:] if row[1] == "badphone@example.org"
    )
    assert bad_phone["phone"] == "'+1+1"
    assert bad_phone["company"] == "#N/A"


@pytest.mark.parametrize("fmt", ["json", "ndjson"])
def test_json_formats_carry_values_unchanged(api, leads, fmt):
    trap = next(obj for obj in parse(fmt, content(download(api, fmt))) if obj["email"] == "trap@example.org")
    assert trap["company"] == HYPERLINK and trap["city"] == "+1+1" and trap["tags"] == ["=cmd", "hot"]


def test_xlsx_cells_are_all_strings_never_formulas_or_numbers(api, leads):
    data = content(download(api, "xlsx"))
    sheet = openpyxl.load_workbook(io.BytesIO(data)).active
    assert sheet.title == "Leads"
    seen = 0
    for row in sheet.iter_rows():
        for cell in row:
            if cell.value is None:
                continue
            assert cell.data_type == "s", (cell.coordinate, cell.value, cell.data_type)
            assert isinstance(cell.value, str)
            seen += 1
    assert seen > 27 * 10
    assert b"<f>" not in data and b"<f " not in data  # no formula element anywhere


def test_xlsx_rows_equal_csv_rows(api, leads):
    csv_rows = parse("csv", content(download(api, "csv")))
    xlsx_rows = parse("xlsx", content(download(api, "xlsx")))
    assert [[cell or "" for cell in row] for row in xlsx_rows] == csv_rows


def test_xlsx_drops_characters_xml_cannot_hold(api, account):
    LeadFactory(account=account, email="ctrl@example.org", company="Bell\x07Co\ufffe", city="Tab\tand\nline")
    cells = by_column(parse("xlsx", content(download(api, "xlsx")))[1])
    assert cells["company"] == "BellCo"
    assert cells["city"] == "Tab\tand\nline"


# --- Errors ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "status", "code"),
    [
        ("format=pdf", 400, "invalid_parameter"),
        ("format=csv&colour=red", 400, "unknown_filter"),
        ("format=csv&stauts=new", 400, "unknown_filter"),
        ("format=json&score__gte=high", 400, "invalid_filter"),
        ("format=csv&status=nope", 400, "invalid_filter"),
        ("format=csv&sort=-colour", 400, "invalid_parameter"),
        ("format=csv&limit=10", 400, "invalid_parameter"),
        ("format=xlsx&cursor=abc", 400, "invalid_parameter"),
        ("format=csv&count=true", 400, "invalid_parameter"),
    ],
)
def test_bad_export_parameters_are_problem_json_before_any_file(api, leads, query, status, code):
    assert_problem(api.get(f"{EXPORT}?{query}"), status, code)


def test_export_without_credentials_is_401_and_without_read_scope_403(client, account, make_client, leads):
    assert_problem(client.get(f"{EXPORT}?format=csv"), 401, "authentication_required")
    writer = make_client(account, scopes=["leads:write"], role=Role.MEMBER)
    assert_problem(writer.get(f"{EXPORT}?format=csv"), 403, "insufficient_scope")


def test_a_member_with_only_leads_read_can_export(account, make_client, leads):
    reader = make_client(account, scopes=["leads:read"], role=Role.MEMBER)
    assert len(exported_ids("csv", content(download(reader, "csv")))) == len(leads)


def test_every_export_is_in_the_audit_log(api, account, leads, django_capture_on_commit_callbacks):
    content(download(api, "csv", "status=new&sort=email"))
    with django_capture_on_commit_callbacks(execute=True):
        job = start(api, {"format": "xlsx", "filters": {"tag": ["hot"]}}).json()
    entries = list(AuditLogEntry.objects.filter(account=account, action="leads.exported").order_by("id"))
    assert [e.data["format"] for e in entries] == ["csv", "xlsx"]
    assert entries[0].data["parameters"] == {"format": ["csv"], "status": ["new"], "sort": ["email"]}
    assert entries[0].actor_api_key_id is not None
    assert entries[1].object_id == job["id"] and entries[1].data["parameters"]["filters"] == {"tag": ["hot"]}


def test_export_path_is_not_taken_for_a_lead_id(api, leads):
    assert api.get(f"{EXPORT}/?format=ndjson").status_code == 200
    assert_problem(api.get("/api/v1/leads/exports"), 404, "not_found")


def test_export_reads_in_a_constant_number_of_queries(api, account, leads):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            content(download(api, "ndjson"))
        return len(captured)

    queries()  # with Redis, the key is cached from here on (accounts/credentials.py)
    small = queries()
    for n in range(60):
        LeadFactory(account=account, email=f"more{n}@example.org")
    assert queries() == small


# --- POST /exports: the background job -----------------------------------------------------------------


def start(client, body: dict, **extra):
    return client.post(EXPORTS, body, format="json", **extra)


@pytest.mark.parametrize("fmt", FORMATS)
def test_export_job_succeeds_with_progress_and_its_download_matches_the_list(
    api, leads, fmt, django_capture_on_commit_callbacks
):
    body = {"format": fmt, "filters": {"status__in": ["new", "contacted"], "score__gte": 10}, "sort": "-score"}
    with django_capture_on_commit_callbacks(execute=True):
        response = start(api, body)
    assert response.status_code == 202, response.content
    job = response.json()
    assert job["kind"] == "export"
    assert response["Location"].endswith(f"/api/v1/jobs/{job['id']}")
    assert job["params"] == {"format": fmt, "filters": body["filters"], "sort": "-score"}

    polled = api.get(f"/api/v1/jobs/{job['id']}").json()
    expected = [lead["id"] for lead in walk(api, "status__in=new,contacted&score__gte=10&sort=-score")]
    assert polled["status"] == "succeeded", polled
    assert polled["progress"] == {"done": len(expected), "total": len(expected)}
    assert polled["result"]["rows"] == len(expected) and polled["result"]["format"] == fmt
    assert re.fullmatch(rf"leads-acme-\d{{8}}T\d{{6}}Z\.{fmt}", polled["result"]["filename"])
    assert polled["download_url"].endswith(f"/api/v1/jobs/{job['id']}/download")

    file = api.get(f"/api/v1/jobs/{job['id']}/download")
    assert file.status_code == 200
    assert polled["result"]["filename"] in file["Content-Disposition"]
    data = content(file)
    assert exported_ids(fmt, data) == expected
    stored = Job.objects.get(pk=job["id"]).file.name
    assert stored == f"exports/{leads[0].account_id}/{job['id']}.{fmt}"


def test_export_job_file_equals_the_streamed_download(api, leads, django_capture_on_commit_callbacks):
    for fmt in ("csv", "json", "ndjson"):
        with django_capture_on_commit_callbacks(execute=True):
            job = start(api, {"format": fmt, "filters": {"tag": ["hot"]}, "sort": "email"}).json()
        job_file = content(api.get(f"/api/v1/jobs/{job['id']}/download"))
        assert parse(fmt, job_file) == parse(fmt, content(download(api, fmt, "tag=hot&sort=email")))


def test_export_job_reports_progress_while_it_writes(api, leads, monkeypatch, django_capture_on_commit_callbacks):
    monkeypatch.setattr(exports, "CHUNK_ROWS", 4)
    monkeypatch.setattr(exports, "PROGRESS_EVERY", 10)
    seen: list[tuple[int, int | None]] = []
    real = exports.job_progress

    def spy(*, job_id, done, total=None):
        seen.append((done, total))
        real(job_id=job_id, done=done, total=total)

    monkeypatch.setattr(exports, "job_progress", spy)
    with django_capture_on_commit_callbacks(execute=True):
        job = start(api, {"format": "csv"}).json()
    assert seen == [(12, None), (24, None), (27, 27)]
    assert Job.objects.get(pk=job["id"]).progress_done == 27


def test_another_account_cannot_see_or_download_an_export_job(
    api, other_api, leads, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        job = start(api, {"format": "csv"}).json()
    assert_problem(other_api.get(f"/api/v1/jobs/{job['id']}"), 404, "not_found")
    assert_problem(other_api.get(f"/api/v1/jobs/{job['id']}/download"), 404, "not_found")


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"format": "csv", "filters": {"colour": "red"}}, "unknown_filter"),
        ({"format": "csv", "filters": {"score__gte": "high"}}, "invalid_filter"),
        ({"format": "csv", "filters": {"owner": {"id": 1}}}, "invalid_filter"),
        ({"format": "csv", "filters": {"status__in": []}}, "invalid_filter"),
        ({"format": "csv", "filters": {"sort": "-score"}}, "unknown_filter"),
        ({"format": "csv", "filters": {"limit": 10}}, "unknown_filter"),
        ({"format": "csv", "sort": "-colour"}, "invalid_parameter"),
        ({"format": "pdf"}, "validation_error"),
        ({"format": "csv", "filters": ["status"]}, "validation_error"),
        ({"format": "csv", "columns": ["email"]}, "unknown_field"),
    ],
)
def test_a_bad_export_request_is_a_400_and_creates_no_job(api, leads, body, code):
    assert_problem(start(api, body), 400, code)
    assert not Job.objects.exists()


def test_export_job_needs_credentials_and_read_scope_only(account, client, make_client, leads):
    assert_problem(start(client, {"format": "csv"}), 401, "authentication_required")
    writer = make_client(account, scopes=["leads:write"], role=Role.MEMBER)
    assert_problem(start(writer, {"format": "csv"}), 403, "insufficient_scope")
    reader = make_client(account, scopes=["leads:read"], role=Role.MEMBER)
    assert start(reader, {"format": "xlsx"}).status_code == 202


def test_export_job_post_is_idempotent(api, leads, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        first = start(api, {"format": "json"}, HTTP_IDEMPOTENCY_KEY="export-1")
    again = start(api, {"format": "json"}, HTTP_IDEMPOTENCY_KEY="export-1")
    assert again.status_code == 202 and again["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"] and again["Location"] == first["Location"]
    assert Job.objects.count() == 1


def test_an_unexpected_failure_is_recorded_on_the_job_and_the_post_still_answers_202(
    api, leads, django_capture_on_commit_callbacks
):
    with (
        patch.object(exports, "_export_job_write", side_effect=RuntimeError("disk on fire")),
        django_capture_on_commit_callbacks(execute=True),
    ):
        response = start(api, {"format": "csv"})
    assert response.status_code == 202
    job = api.get(f"/api/v1/jobs/{response.json()['id']}").json()
    assert job["status"] == "failed"
    assert "error on our side" in job["error"] and "disk on fire" not in job["error"]
    assert job["download_url"] is None
    assert_problem(api.get(f"/api/v1/jobs/{job['id']}/download"), 409, "conflict")


def test_a_transient_database_error_is_retried_with_backoff_then_recorded(account, leads):
    job = Job.objects.create(account=account, kind="export", params={"format": "csv", "filters": {}, "sort": ""})
    with (
        patch.object(exports, "_export_job_write", side_effect=OperationalError("server closed the connection")),
        patch.object(export_leads, "retry", side_effect=Retry()) as retry,
        pytest.raises(Retry),
    ):
        export_leads(account.pk, str(job.pk))
    assert retry.call_args.kwargs["countdown"] == 30
    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED and "database was unavailable" in job.error

    # The last retry gives up and records the failure.
    export_leads.push_request(retries=3, is_eager=False)
    try:
        with patch.object(exports, "_export_job_write", side_effect=OperationalError("still down")):
            export_leads.run(account.pk, str(job.pk))
    finally:
        export_leads.pop_request()
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and "tried 4 times" in job.error

    # Run eagerly (the embedded mode) nobody would retry later: the failure is recorded at once.
    Job.objects.filter(pk=job.pk).update(status=JobStatus.QUEUED, error="")
    with patch.object(exports, "_export_job_write", side_effect=OperationalError("down")):
        export_leads.apply(args=(account.pk, str(job.pk)))
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and "database was unavailable" in job.error


def test_an_export_job_of_another_account_is_not_run(account, other_account, leads):
    job = Job.objects.create(account=account, kind="export", params={"format": "csv", "filters": {}, "sort": ""})
    exports.export_job_run(account_id=other_account.pk, job_id=job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED and not job.file


def test_a_rerun_job_overwrites_its_own_file(account, leads):
    job = Job.objects.create(account=account, kind="export", params={"format": "ndjson", "filters": {}, "sort": ""})
    exports.export_job_run(account_id=account.pk, job_id=job.pk)
    exports.export_job_run(account_id=account.pk, job_id=job.pk)
    job.refresh_from_db()
    assert job.file.name == f"exports/{account.pk}/{job.pk}.ndjson"
    assert len(job.file.open("rb").read().splitlines()) == len(leads)


# --- Units ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("=1+1", "'=1+1"),
        ("+49", "'+49"),
        ("-1", "'-1"),
        ("@x", "'@x"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("a=1", "a=1"),
        ("", ""),
        ("'quoted", "'quoted"),
    ],
)
def test_neutralise(value, expected):
    assert exports.neutralise(value) == expected


@pytest.mark.parametrize(
    ("phone", "expected"),
    [
        ("+4930123456", "+4930123456"),
        ("+14155550100", "+14155550100"),
        ("+4930123456\n", "'+4930123456\n"),  # no trailing-newline loophole
        ("+0301234567", "'+0301234567"),
        ("+12345", "'+12345"),
        ("+1+1", "'+1+1"),
        ("030 1234567", "030 1234567"),
        ("-030", "'-030"),
    ],
)
def test_neutralise_phone_keeps_only_valid_e164(phone, expected):
    assert exports.neutralise_phone(phone) == expected


def test_filters_to_params_maps_json_values_to_query_values():
    params = exports.filters_to_params(
        {"tag": ["hot", "vip"], "status__in": ["new", "lost"], "score__gte": 50, "owner__isnull": True, "q": "acme"},
        sort="-score",
    )
    assert params.getlist("tag") == ["hot", "vip"]
    assert params["status__in"] == "new,lost"
    assert params["score__gte"] == "50"
    assert params["owner__isnull"] == "true"
    assert params["sort"] == "-score"


# --- PostgreSQL: the COPY fast path writes what the Python writer writes -------------------------------


@pytest.mark.postgres
def test_copy_csv_equals_the_python_csv_writer(account, leads):
    LeadFactory(
        account=account,
        email="odd@example.org",
        company='Quote "and", comma',
        city="line\nbreak",
        job_title="\\.",
        website="  spaced  ",
        tags=["a|b", "ünï"],
        custom_fields={"k": "é", "n": 1.5, "none": None},
        phone="+1+1",
        owner=None,
    )
    LeadFactory(account=account, email=None, external_id="=ext", phone="-5", first_name="", tags=[])
    # Not writable through the API, but the two writers must still agree on odd stored JSON.
    LeadFactory(account=account, email="json@example.org", custom_fields=-1, score_breakdown="=x", tags=["", "=y"])
    for sort in ("-created_at", "email", "-score,company"):
        queryset = exports.export_queryset(account=account, params={"sort": sort})
        via_copy = b"".join(exports.copy_csv_chunks(queryset, chunk_bytes=100))
        via_python = b"".join(exports.csv_chunks(exports.row_batches(queryset)))
        copy_rows = list(csv.reader(io.StringIO(via_copy.decode(), newline="")))
        python_rows = list(csv.reader(io.StringIO(via_python.decode(), newline="")))
        assert copy_rows == python_rows
        assert len(copy_rows) == Lead.objects.filter(account=account).count() + 1


@pytest.mark.postgres
def test_csv_download_on_postgresql_uses_copy_unless_switched_off(api, leads, settings):
    with patch.object(exports, "copy_csv_chunks", wraps=exports.copy_csv_chunks) as copy:
        data = content(download(api, "csv"))
    assert copy.called
    assert trap_cells("csv", data)["company"] == "'" + HYPERLINK
    settings.LEADBASE_EXPORT_CSV_COPY = False
    with patch.object(exports, "copy_csv_chunks", wraps=exports.copy_csv_chunks) as copy:
        assert parse("csv", content(download(api, "csv"))) == parse("csv", data)
    assert not copy.called


def test_export_ids_are_uuids(api, leads):
    for lead_id in exported_ids("csv", content(download(api, "csv"))):
        uuid.UUID(lead_id)
