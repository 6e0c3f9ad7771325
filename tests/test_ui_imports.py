"""CSV import in the web UI: upload -> mapping -> batch create -> per-row report, with the API's
validation, deduplication and lead cap, and clear form errors for files it cannot read."""

from __future__ import annotations

import re
import uuid

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from accounts.models import Role
from leads import imports
from leads.models import Lead

from .factories import LeadFactory, MembershipFactory

CSV_OK = (
    "Email,First Name,Surname,Company,Tags,Industry,Notes\r\n"
    "ada@example.org,Ada,Lovelace,Analytical,vip;math,Computing,first\r\n"
    'grace@example.org,Grace,Hopper,Navy,"cobol, navy",Defence,\r\n'
)


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def owner_client(client, owner):
    client.force_login(owner)
    return client


def upload(client, content: bytes | str, name: str = "leads.csv"):
    raw = content.encode() if isinstance(content, str) else content
    return client.post("/leads/import/", {"file": SimpleUploadedFile(name, raw, content_type="text/csv")})


def map_url(response) -> str:
    assert response.status_code == 302, response.content.decode()[:2000]
    location = response["Location"]
    assert re.fullmatch(r"/leads/import/[0-9a-f-]{36}/", location), location
    return location


def mapping_post(url: str, client, mapping: dict[int, str], on_duplicate: str = "error"):
    data = {f"col_{i}": target for i, target in mapping.items()}
    data["on_duplicate"] = on_duplicate
    return client.post(url, data)


def run_import(client, content, mapping, on_duplicate="error"):
    url = map_url(upload(client, content))
    response = mapping_post(url, client, mapping, on_duplicate)
    assert response.status_code == 302, response.content.decode()[:3000]
    assert response["Location"] == f"{url}report/"
    return client.get(response["Location"])


def form_error(response) -> str:
    assert response.status_code == 200
    html = response.content.decode()
    found = re.findall(r'class="error"[^>]*>([^<]+)<', html)
    assert found, "no form error on the page"
    return " ".join(found)


# --- Upload ------------------------------------------------------------------------------------------


def test_the_upload_page_renders_with_a_labelled_file_field(owner_client):
    html = owner_client.get("/leads/import/").content.decode()
    assert '<label for="id_file">CSV file</label>' in html
    assert 'enctype="multipart/form-data"' in html
    assert "5.0" in html or "5 MB" in html  # the size cap is stated


def test_the_mapping_page_guesses_fields_from_the_header(owner_client):
    url = map_url(upload(owner_client, CSV_OK))
    html = owner_client.get(url).content.decode()
    selected = dict(re.findall(r'<select name="(col_\d+)".*?<option value="([^"]+)" selected>', html, re.S))
    assert selected == {
        "col_0": "email",
        "col_1": "first_name",
        "col_2": "last_name",
        "col_3": "company",
        "col_4": "tags",
        "col_5": "ignore",
        "col_6": "ignore",
    }
    assert "custom_fields.industry" in html  # each column can be its own custom field
    assert "Lovelace" in html  # an example value per column


def test_import_creates_leads_through_the_batch_path(owner_client, account):
    mapping = {0: "email", 1: "first_name", 2: "last_name", 3: "company", 4: "tags", 5: "custom_fields.industry"}
    response = run_import(owner_client, CSV_OK, mapping)
    html = response.content.decode()
    assert '<strong id="count-created">2</strong>' in html
    assert '<strong id="count-failed">0</strong>' in html
    ada = Lead.objects.get(account=account, email="ada@example.org")
    assert (ada.first_name, ada.last_name, ada.company) == ("Ada", "Lovelace", "Analytical")
    assert sorted(ada.tags) == ["math", "vip"]
    assert ada.custom_fields == {"industry": "Computing"}
    assert sorted(Lead.objects.get(account=account, email="grace@example.org").tags) == ["cobol", "navy"]
    assert f'href="/leads/{ada.pk}/"' in html  # each row links its lead


def test_a_bom_and_semicolons_are_understood(owner_client, account):
    content = "\ufeffemail;company\r\nsemi@example.org;Semi Co\r\n".encode()
    url = map_url(upload(owner_client, content))
    assert '<option value="email" selected>' in owner_client.get(url).content.decode()
    mapping_post(url, owner_client, {0: "email", 1: "company"})
    assert Lead.objects.get(account=account, email="semi@example.org").company == "Semi Co"


def test_report_lists_every_row_with_bad_and_duplicate_rows(owner_client, account):
    existing = LeadFactory(account=account, email="old@example.org")
    content = (
        "email,company\n"
        "one@example.org,One\n"
        "not-an-email,Bad\n"
        "one@example.org,Again\n"
        "old@example.org,Old\n"
        "two@example.org,Two\n"
    )
    html = run_import(owner_client, content, {0: "email", 1: "company"}).content.decode()
    rows = re.findall(r'<tr class="outcome-(\w+)">\s*<td>(\d+)</td>', html)
    assert rows == [("created", "2"), ("failed", "3"), ("failed", "4"), ("failed", "5"), ("created", "6")]
    assert "<code>validation_error</code> email: Enter a valid email address." in html
    assert "<code>duplicate_in_batch</code>" in html
    assert "<code>duplicate_lead</code> A lead with this email already exists." in html
    assert f'href="/leads/{existing.pk}/">existing lead' in html
    assert '<strong id="count-created">2</strong>' in html and '<strong id="count-failed">3</strong>' in html
    assert Lead.objects.filter(account=account).count() == 3


def test_on_duplicate_update_merges_into_the_existing_lead(owner_client, account):
    existing = LeadFactory(account=account, email="old@example.org", company="Before")
    html = run_import(owner_client, "email,company\nold@example.org,After\n", {0: "email", 1: "company"}, "update")
    existing.refresh_from_db()
    assert existing.company == "After"
    assert '<strong id="count-updated">1</strong>' in html.content.decode()


def test_on_duplicate_skip_leaves_the_existing_lead(owner_client, account):
    existing = LeadFactory(account=account, email="old@example.org", company="Before")
    html = run_import(owner_client, "email,company\nold@example.org,After\n", {0: "email", 1: "company"}, "skip")
    existing.refresh_from_db()
    assert existing.company == "Before"
    assert '<strong id="count-skipped">1</strong>' in html.content.decode()


def test_the_lead_cap_fails_the_rows_beyond_it(owner_client, account):
    account.lead_limit_override = 2
    account.save()
    LeadFactory(account=account)
    content = "email\na@example.org\nb@example.org\nc@example.org\n"
    html = run_import(owner_client, content, {0: "email"}).content.decode()
    rows = re.findall(r'<tr class="outcome-(\w+)">', html)
    assert rows == ["created", "failed", "failed"]
    assert html.count("<code>plan_limit_reached</code>") == 2
    assert Lead.objects.filter(account=account).count() == 2


def test_more_than_one_batch_of_rows_is_imported_in_chunks(owner_client, account, monkeypatch):
    monkeypatch.setattr(imports, "MAX_BATCH_ITEMS", 3)
    calls = []
    real = imports.leads_batch_create
    monkeypatch.setattr(imports, "leads_batch_create", lambda **kw: calls.append(len(kw["items"])) or real(**kw))
    content = "email\n" + "".join(f"c{n}@example.org\n" for n in range(7))
    html = run_import(owner_client, content, {0: "email"}).content.decode()
    assert calls == [3, 3, 1]
    assert '<strong id="count-created">7</strong>' in html
    assert Lead.objects.filter(account=account).count() == 7


def test_owner_column_takes_a_members_email(owner_client, account, owner):
    content = "email,owner\na@example.org,OWNER@acme.test\nb@example.org,stranger@else.test\n"
    html = run_import(owner_client, content, {0: "email", 1: "owner"}).content.decode()
    assert Lead.objects.get(account=account, email="a@example.org").owner_id == owner.pk
    assert "owner: No member of this account has this email." in html
    assert "stranger@else.test" not in html  # the stored report quotes no cell


def test_a_ragged_row_fails_on_its_own(owner_client, account):
    content = "email,company\na@example.org,A,extra\nb@example.org,B\n"
    html = run_import(owner_client, content, {0: "email", 1: "company"}).content.decode()
    assert "The row has 3 cells; the header names 2 columns." in html
    assert list(Lead.objects.filter(account=account).values_list("email", flat=True)) == ["b@example.org"]


# --- Bad files and bad mappings are form errors, never a 500 ----------------------------------------


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "The file is empty."),
        (b"\n\n  \n", "The file is empty."),
        (b"email\n", "The file has a header but no rows of data."),
        (b",,\na@example.org,,\n", "The first row must be a header naming the columns; it is empty."),
        ("email\nzoë@example.org\n".encode("latin-1"), "The file is not UTF-8 text"),
        (b"email\n\x00\x01\n", "NUL characters"),
        (b'email,company\n"a@example.org,unterminated\n', "not valid CSV"),
    ],
)
def test_unreadable_files_are_form_errors(owner_client, content, message):
    response = upload(owner_client, content)
    assert message in form_error(response)
    assert 'aria-invalid="true"' in response.content.decode()


def test_a_file_over_the_size_cap_is_refused(owner_client, settings):
    settings.LEADBASE_IMPORT_MAX_BYTES = 100
    response = upload(owner_client, "email\n" + "x@example.org\n" * 20)
    assert "an import takes at most 100 bytes" in form_error(response)


def test_a_file_over_the_row_cap_is_refused(owner_client, settings):
    settings.LEADBASE_IMPORT_MAX_ROWS = 3
    response = upload(owner_client, "email\n" + "".join(f"r{n}@example.org\n" for n in range(4)))
    assert "more than 3 rows" in form_error(response)


def test_no_file_is_a_form_error(owner_client):
    assert "Choose a CSV file to upload." in form_error(owner_client.post("/leads/import/", {}))


def test_a_field_mapped_twice_is_an_error_next_to_the_column(owner_client, account):
    url = map_url(upload(owner_client, CSV_OK))
    response = mapping_post(url, owner_client, {0: "email", 1: "company", 3: "company"})
    assert "Company is already mapped from the column “First Name”" in form_error(response)
    assert Lead.objects.filter(account=account).count() == 0


def test_a_mapping_without_an_identity_column_is_an_error(owner_client, account):
    url = map_url(upload(owner_client, CSV_OK))
    response = mapping_post(url, owner_client, {0: "ignore", 1: "first_name"})
    assert "Map at least one column to Email, Phone or External id" in response.content.decode()
    assert Lead.objects.filter(account=account).count() == 0


def test_a_target_that_is_not_offered_is_an_error(owner_client):
    url = map_url(upload(owner_client, CSV_OK))
    response = mapping_post(url, owner_client, {0: "email", 1: "score"})
    assert "Select a valid choice." in form_error(response)


def test_an_import_runs_once_then_shows_its_report(owner_client, account):
    url = map_url(upload(owner_client, CSV_OK))
    mapping_post(url, owner_client, {0: "email"})
    again = mapping_post(url, owner_client, {0: "email"})
    assert again["Location"] == f"{url}report/"
    assert owner_client.get(url)["Location"] == f"{url}report/"
    assert Lead.objects.filter(account=account).count() == 2


def test_a_double_submitted_mapping_imports_once_and_sends_the_second_to_the_report(
    owner_client, owner, account, monkeypatch
):
    url = map_url(upload(owner_client, CSV_OK))
    second = Client()  # another tab, or the same button clicked twice: its own request
    second.force_login(owner)
    seen = {}
    runs = []
    real = imports.leads_import

    def leads_import(**kwargs):
        runs.append(kwargs["csv_file"])
        if len(runs) == 1:  # the second submission arrives while the first is importing
            seen["post"] = mapping_post(url, second, {0: "email"})
            seen["report"] = second.get(f"{url}report/")
            seen["map"] = second.get(url)
        return real(**kwargs)

    monkeypatch.setattr(imports, "leads_import", leads_import)
    first = mapping_post(url, owner_client, {0: "email"})
    assert len(runs) == 1
    assert first.status_code == 302 and first["Location"] == f"{url}report/"
    assert seen["post"].status_code == 302 and seen["post"]["Location"] == f"{url}report/"
    running = seen["report"].content.decode()
    assert seen["report"].status_code == 200 and "This file is being imported." in running
    assert "This file is being imported already" in running  # the message of the refused submission
    assert seen["map"]["Location"] == f"{url}report/"  # no mapping form to submit a third time
    assert Lead.objects.filter(account=account).count() == 2
    report = owner_client.get(f"{url}report/").content.decode()
    assert '<strong id="count-created">2</strong>' in report and '<strong id="count-failed">0</strong>' in report


def test_a_run_that_fails_gives_up_its_claim_so_the_import_can_be_retried(owner_client, account, monkeypatch):
    url = map_url(upload(owner_client, CSV_OK))
    real = imports.leads_import

    def broken(**kwargs):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(imports, "leads_import", broken)
    with pytest.raises(RuntimeError):
        mapping_post(url, owner_client, {0: "email"})
    monkeypatch.setattr(imports, "leads_import", real)
    assert owner_client.get(url).status_code == 200  # the mapping form again, not "running"
    assert mapping_post(url, owner_client, {0: "email"})["Location"] == f"{url}report/"
    assert Lead.objects.filter(account=account).count() == 2


def _stored_report(account, url) -> str:
    from django.core.files.storage import default_storage

    import_id = url.rstrip("/").rsplit("/", 1)[1]
    with default_storage.open(f"imports/{account.pk}/{import_id}/report.json", "rb") as fh:
        return fh.read().decode()


def test_the_stored_report_holds_lead_ids_not_personal_data(owner_client, account):
    LeadFactory(account=account, email="old@example.org", external_id="crm-old")
    content = (
        "email,first name,company,status\n"
        "ada@example.org,Ada,Analytical,new\n"
        "old@example.org,Old,Oldco,new\n"
        "quoted@example.org,Quo,Quoted Co,quoted@example.org\n"  # the API quotes a bad status
    )
    url = map_url(upload(owner_client, content))
    mapping_post(url, owner_client, {0: "email", 1: "first_name", 2: "company", 3: "status"})
    stored = _stored_report(account, url)
    for personal in ("ada@example.org", "old@example.org", "quoted@example.org", "Ada", "Analytical", "crm-old"):
        assert personal not in stored, personal
    html = owner_client.get(f"{url}report/").content.decode()
    ada = Lead.objects.get(account=account, email="ada@example.org")
    assert f'<a href="/leads/{ada.pk}/">ada@example.org</a>' in html  # the label comes from the lead
    assert "status: Not one of the allowed values." in html


def test_the_report_names_a_deleted_lead_nowhere(owner_client, account):
    url = map_url(upload(owner_client, CSV_OK))
    mapping_post(url, owner_client, {0: "email"})
    ada = Lead.objects.get(account=account, email="ada@example.org")
    ada.delete()
    html = owner_client.get(f"{url}report/").content.decode()
    assert "ada@example.org" not in html and f"/leads/{ada.pk}/" not in html
    assert "deleted lead" in html and ">grace@example.org</a>" in html


def test_the_report_reads_every_rows_lead_in_one_query(owner_client, account):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def lead_queries(rows: int) -> int:
        content = "email\n" + "".join(f"r{rows}-{n}@example.org\n" for n in range(rows))
        url = map_url(upload(owner_client, content))
        mapping_post(url, owner_client, {0: "email"})
        with CaptureQueriesContext(connection) as ctx:
            html = owner_client.get(f"{url}report/").content.decode()
        assert html.count("@example.org</a>") == rows
        return sum('FROM "leads_lead"' in q["sql"] for q in ctx.captured_queries)

    assert lead_queries(2) == lead_queries(30) == 1


# --- Permissions, tenancy, CSRF ---------------------------------------------------------------------


def test_another_accounts_import_is_a_404(owner_client, other_account):
    stranger = Client()
    stranger.force_login(MembershipFactory(account=other_account, role=Role.OWNER).user)
    url = map_url(upload(stranger, CSV_OK))
    assert owner_client.get(url).status_code == 404
    assert owner_client.post(url, {"col_0": "email", "on_duplicate": "error"}).status_code == 404
    assert owner_client.get(f"{url}report/").status_code == 404
    mapping_post(url, stranger, {0: "email"})
    assert owner_client.get(f"{url}report/").status_code == 404


def test_an_unknown_import_is_a_404(owner_client):
    assert owner_client.get(f"/leads/import/{uuid.uuid4()}/").status_code == 404


def test_a_member_can_import(client, account):
    client.force_login(MembershipFactory(account=account, role=Role.MEMBER).user)
    run_import(client, CSV_OK, {0: "email"})
    assert Lead.objects.filter(account=account).count() == 2


def test_anonymous_visitors_are_sent_to_log_in(client, db):
    response = client.get("/leads/import/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_csrf_is_enforced_on_upload_and_mapping(account, owner):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    file = SimpleUploadedFile("l.csv", CSV_OK.encode(), content_type="text/csv")
    assert client.post("/leads/import/", {"file": file}).status_code == 403
    page = client.get("/leads/import/").content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    file = SimpleUploadedFile("l.csv", CSV_OK.encode(), content_type="text/csv")
    url = map_url(client.post("/leads/import/", {"file": file, "csrfmiddlewaretoken": token}))
    assert client.post(url, {"col_0": "email", "on_duplicate": "error"}).status_code == 403
    assert Lead.objects.filter(account=account).count() == 0


def test_import_module_rejects_an_unknown_on_duplicate(account, owner):
    from core.errors import ValidationFailed

    parsed = imports.csv_parse(CSV_OK.encode())
    with pytest.raises(ValidationFailed):
        imports.leads_import(account=account, actor=None, csv_file=parsed, mapping=["email"], on_duplicate="merge")


def test_custom_field_keys_are_made_from_headers():
    assert imports.custom_field_key(" Lead  Score (%) ", 0) == "lead_score"
    assert imports.custom_field_key("a__b", 0) == "a_b"
    assert imports.custom_field_key("€€€", 4) == "column_5"
