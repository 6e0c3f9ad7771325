"""Export in the web UI: a job started through export_job_create with the list's filters and sort, a
progress partial that polls until the job ends, and a download of the job's file, per account."""

from __future__ import annotations

import csv
import io
import re

import pytest
from django.test import Client
from openpyxl import load_workbook

from accounts.models import Role
from jobs.models import Job, JobKind, JobStatus

from .factories import LeadFactory, MembershipFactory


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def owner_client(client, owner):
    client.force_login(owner)
    return client


@pytest.fixture
def leads(account):
    return [
        LeadFactory(account=account, email="ada@example.org", status="new", tags=["vip"], score=10),
        LeadFactory(account=account, email="bob@example.org", status="qualified", tags=["vip"], score=90),
        LeadFactory(account=account, email="cy@example.org", status="new", tags=[], score=50),
    ]


def start_export(client, capture, **data):
    with capture(execute=True):
        response = client.post("/exports/new/", data)
    assert response.status_code == 302, response.content.decode()[:2000]
    match = re.fullmatch(r"/jobs/([0-9a-f-]{36})/", response["Location"])
    assert match, response["Location"]
    return Job.objects.get(pk=match.group(1))


def download(client, job) -> bytes:
    response = client.get(f"/jobs/{job.pk}/download/")
    assert response.status_code == 200
    assert "attachment" in response["Content-Disposition"]
    return b"".join(response.streaming_content)


def test_the_export_page_carries_the_lists_filters_and_sort(owner_client):
    html = owner_client.get(
        "/exports/new/", {"status": "new", "tag": ["vip", "hot"], "owner": "7", "sort": "-score", "limit": "25"}
    ).content.decode()
    assert '<option value="new" selected>' in html
    assert '<option value="-score" selected>' in html
    assert 'name="tag" value="vip"' in html  # the form's tag field
    assert '<input type="hidden" name="owner" value="7">' in html  # a filter the form has no field for
    assert '<input type="hidden" name="tag" value="hot">' in html  # repeated tags all kept
    assert 'name="limit"' not in html  # paging is not a filter of an export


def test_export_csv_job_with_filters_sort_and_download(
    owner_client, account, leads, django_capture_on_commit_callbacks
):
    job = start_export(
        owner_client, django_capture_on_commit_callbacks, format="csv", status="new", tag="", sort="-score"
    )
    assert job.account_id == account.pk and job.kind == JobKind.EXPORT
    assert job.params == {"format": "csv", "filters": {"status": "new"}, "sort": "-score"}
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED
    page = owner_client.get(f"/jobs/{job.pk}/").content.decode()
    assert f'href="/jobs/{job.pk}/download/"' in page
    assert "hx-trigger" not in page  # finished: nothing polls
    rows = list(csv.DictReader(io.StringIO(download(owner_client, job).decode())))
    assert [r["email"] for r in rows] == ["cy@example.org", "ada@example.org"]


def test_export_xlsx_job(owner_client, leads, django_capture_on_commit_callbacks):
    job = start_export(owner_client, django_capture_on_commit_callbacks, format="xlsx", tag="vip", sort="email")
    body = download(owner_client, job)
    sheet = load_workbook(io.BytesIO(body), read_only=True)["Leads"]
    emails = [row[1] for row in sheet.iter_rows(min_row=2, values_only=True)]
    assert emails == ["ada@example.org", "bob@example.org"]


def test_a_bad_filter_is_shown_and_starts_no_job(owner_client, leads):
    response = owner_client.post("/exports/new/", {"format": "csv", "sort": "-score", "colour": "red"})
    assert response.status_code == 200
    assert "Unknown filter parameter(s): colour." in response.content.decode()
    response = owner_client.post("/exports/new/", {"format": "csv", "sort": "-score", "score__gte": "lots"})
    assert 'role="alert"' in response.content.decode()
    assert not Job.objects.exists()


def test_an_unknown_format_is_a_form_error(owner_client):
    response = owner_client.post("/exports/new/", {"format": "pdf", "sort": "-score"})
    assert response.status_code == 200
    assert "Select a valid choice." in response.content.decode()
    assert not Job.objects.exists()


def test_a_running_job_polls_every_second_and_a_finished_one_stops(owner_client, account):
    job = Job.objects.create(account=account, kind=JobKind.EXPORT, status=JobStatus.RUNNING, progress_total=200)
    job.progress_done = 50
    job.save()
    partial = owner_client.get(f"/jobs/{job.pk}/progress/").content.decode()
    assert f'hx-get="/jobs/{job.pk}/progress/"' in partial and 'hx-trigger="every 1s"' in partial
    assert 'value="25"' in partial and "50 of 200 leads" in partial
    assert "<html" not in partial  # a partial, not a page
    job.status, job.progress_done = JobStatus.FAILED, 60
    job.error = "The export failed because of an error on our side."
    job.save()
    partial = owner_client.get(f"/jobs/{job.pk}/progress/").content.decode()
    assert "hx-trigger" not in partial and "error on our side" in partial


def test_download_of_an_unfinished_job_explains_instead(owner_client, account):
    job = Job.objects.create(account=account, kind=JobKind.EXPORT, status=JobStatus.QUEUED)
    response = owner_client.get(f"/jobs/{job.pk}/download/", follow=True)
    assert response.redirect_chain[-1][0] == f"/jobs/{job.pk}/"
    assert "there is no file to download yet" in response.content.decode()


def test_another_accounts_job_is_a_404(owner_client, other_account, django_capture_on_commit_callbacks):
    stranger = Client()
    stranger.force_login(MembershipFactory(account=other_account, role=Role.OWNER).user)
    LeadFactory(account=other_account)
    job = start_export(stranger, django_capture_on_commit_callbacks, format="csv", sort="-score")
    for suffix in ("", "progress/", "download/"):
        assert owner_client.get(f"/jobs/{job.pk}/{suffix}").status_code == 404
    assert stranger.get(f"/jobs/{job.pk}/download/").status_code == 200


def test_a_member_can_export(client, account, leads, django_capture_on_commit_callbacks):
    client.force_login(MembershipFactory(account=account, role=Role.MEMBER).user)
    job = start_export(client, django_capture_on_commit_callbacks, format="json", sort="email")
    assert b"ada@example.org" in download(client, job)


def test_csrf_is_enforced_on_starting_an_export(account, owner, leads):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    assert client.post("/exports/new/", {"format": "csv", "sort": "-score"}).status_code == 403
    assert not Job.objects.exists()


def test_export_is_audited_like_the_api(owner_client, account, leads, django_capture_on_commit_callbacks):
    from accounts.models import AuditLogEntry

    job = start_export(owner_client, django_capture_on_commit_callbacks, format="csv", sort="-score")
    entry = AuditLogEntry.objects.get(account=account, action="leads.exported")
    assert entry.object_id == str(job.pk)
