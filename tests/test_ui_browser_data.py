"""The data pages in a real browser (fixtures in tests/browser_support.py): CSV import with its
report, a scoring rule changing a lead's score, a CSV export downloaded and parsed, the job bar
polling with htmx, and screenshots of the main pages at desktop and phone widths. Every test fails
on any JavaScript console error or uncaught page error."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from playwright.sync_api import expect

from jobs.models import Job, JobKind, JobStatus
from leads.models import Lead
from scoring.models import ScoringRule

from .browser_support import *  # noqa: F403  (the fixtures: browser, page, account, owner)
from .browser_support import log_in
from .factories import LeadFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCREENSHOTS = Path(__file__).resolve().parent.parent / "build" / "screenshots"
VIEWPORTS = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}
FIVE_ROWS = (
    "Email,First name,Last name,Company,Tags\n"
    "ada@example.org,Ada,Lovelace,Analytical,vip;math\n"
    "grace@example.org,Grace,Hopper,Navy,cobol\n"
    "not-an-email,Bad,Row,Nowhere,\n"
    "alan@example.org,Alan,Turing,Bletchley,\n"
    "edsger@example.org,Edsger,Dijkstra,Eindhoven,\n"
)


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


def upload_csv(page, content: str, name: str = "leads.csv") -> None:
    page.get_by_role("link", name="Import").click()
    page.get_by_label("CSV file").set_input_files({"name": name, "mimeType": "text/csv", "buffer": content.encode()})
    page.get_by_role("button", name="Upload and map columns").click()
    expect(page.get_by_role("heading", name=f"Map the columns of {name}")).to_be_visible()


def test_import_a_csv_with_a_bad_row_and_read_the_report(page, account, owner):
    log_in(page, owner)
    upload_csv(page, FIVE_ROWS)
    expect(page.get_by_label("Email", exact=True)).to_have_value("email")  # guessed from the header
    expect(page.get_by_label("Tags", exact=True)).to_have_value("tags")
    page.get_by_role("button", name="Import 5 rows").click()
    expect(page.get_by_text("Import finished: 4 created, 0 updated, 0 skipped, 1 failed.")).to_be_visible()
    expect(page.locator("#count-created")).to_have_text("4")
    expect(page.locator("#count-failed")).to_have_text("1")
    failed = page.locator("tr.outcome-failed")
    expect(failed).to_have_count(1)
    expect(failed).to_contain_text("4")  # the row number, the header being row 1
    expect(failed).to_contain_text("validation_error email: Enter a valid email address.")
    expect(page.locator("tr.outcome-created")).to_have_count(4)
    page.get_by_role("link", name="ada@example.org").click()
    expect(page.locator("dl.fields")).to_contain_text("Analytical")
    assert sorted(Lead.objects.get(account=account, email="ada@example.org").tags) == ["math", "vip"]
    assert Lead.objects.filter(account=account).count() == 4


def test_a_new_scoring_rule_changes_a_leads_score(page, account, owner):
    lead = LeadFactory(account=account, email="cto@bigcorp.test", company="BigCorp", job_title="CTO")
    LeadFactory(account=account, email="intern@small.test", company="Small", job_title="Intern")
    log_in(page, owner)
    page.goto(f"/leads/{lead.pk}/")
    expect(page.locator("#lead-score")).to_have_text("0")
    page.get_by_text("Settings", exact=True).click()  # the settings pages sit in the nav's Settings menu
    page.get_by_role("link", name="Scoring rules").click()
    page.get_by_label("Name").fill("Decision makers")
    page.get_by_label("Lead field").fill("job_title")
    page.get_by_label("Operator").select_option("contains")
    page.get_by_label("Value").fill("cto")
    page.get_by_label("Points").fill("40")
    page.get_by_role("button", name="Preview").click()  # htmx swaps the panel in; nothing is saved
    expect(page.locator("#preview-matches")).to_have_text("1")
    assert not ScoringRule.objects.filter(account=account).exists()
    page.get_by_role("button", name="Create rule").click()
    expect(page.get_by_text("Rule “Decision makers” created; rescoring the leads.")).to_be_visible()
    expect(page.locator("#job-progress")).to_have_attribute("data-status", "succeeded")
    expect(page.locator("table.rules")).to_contain_text("Decision makers")
    page.goto(f"/leads/{lead.pk}/")
    expect(page.locator("#lead-score")).to_have_text("40")
    expect(page.locator("table.breakdown")).to_contain_text("Decision makers")


def test_export_csv_and_download_the_file(page, account, owner):
    LeadFactory(account=account, email="ada@example.org", status="qualified", score=70)
    LeadFactory(account=account, email="bob@example.org", status="qualified", score=20)
    LeadFactory(account=account, email="cy@example.org", status="new", score=90)
    log_in(page, owner)
    page.get_by_role("link", name="Export", exact=True).click()  # not the list's "Export these leads"
    page.get_by_label("Format").select_option("csv")
    page.get_by_label("Status").select_option("qualified")
    page.get_by_label("Sort").select_option("-score")
    page.get_by_role("button", name="Start export").click()
    expect(page.get_by_text("Export started (CSV).")).to_be_visible()
    link = page.get_by_role("link", name="Download")
    with page.expect_download() as info:
        link.click()
    download = info.value
    assert download.suggested_filename.startswith(f"leads-{account.slug}-")
    assert download.suggested_filename.endswith(".csv")
    rows = list(csv.DictReader(io.StringIO(Path(download.path()).read_text(encoding="utf-8"))))
    assert [(r["email"], r["status"], r["score"]) for r in rows] == [
        ("ada@example.org", "qualified", "70"),
        ("bob@example.org", "qualified", "20"),
    ]


def test_the_job_bar_polls_until_the_job_ends(page, account, owner):
    job = Job.objects.create(account=account, kind=JobKind.EXPORT, status=JobStatus.RUNNING, progress_total=4)
    log_in(page, owner)
    page.goto(f"/jobs/{job.pk}/")
    expect(page.locator("#job-progress")).to_have_attribute("data-status", "running")
    expect(page.get_by_role("link", name="Download")).to_have_count(0)
    job.progress_done = 4
    job.status = JobStatus.SUCCEEDED
    job.result = {"filename": "leads-done.csv", "rows": 4, "format": "csv"}
    job.params = {"format": "csv"}
    job.file.save(f"exports/{account.pk}/{job.pk}.csv", ContentFile(b"id,email\r\n"), save=False)
    job.save()
    expect(page.get_by_role("link", name="Download leads-done.csv")).to_be_visible()  # arrived by polling
    expect(page.locator("#job-progress")).to_have_attribute("data-status", "succeeded")
    expect(page.locator("#job-progress progress")).to_have_attribute("value", "100")


def test_screenshots_of_the_main_pages_at_desktop_and_phone_widths(page, account, owner):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    lead = LeadFactory(
        account=account,
        email="countess@example.org",
        first_name="Ada",
        last_name="Lovelace",
        company="Analytical Engines Ltd",
        job_title="Chief Mathematician",
        tags=["vip", "math"],
        custom_fields={"industry": "Computing"},
    )
    for n in range(12):
        LeadFactory(account=account, email=f"lead{n}@example.org", tags=["import"] if n % 3 else [])
    ScoringRule.objects.create(account=account, name="Has a phone", field="phone", operator="exists", points=10)
    ScoringRule.objects.create(
        account=account, name="Warm", field="status", operator="in", value=["contacted", "qualified"], points=20
    )
    log_in(page, owner)
    taken = []

    def shoot(name: str, width_name: str) -> None:
        expect(page.locator("h1")).to_be_visible()
        # the page itself never scrolls sideways at any width: wide tables scroll inside their own box
        width = VIEWPORTS[width_name]["width"]
        assert page.evaluate("document.documentElement.scrollWidth") <= width, (name, width_name)
        path = SCREENSHOTS / f"{name}-{width_name}.png"
        page.screenshot(path=str(path), full_page=True)
        taken.append(path)

    upload_csv(page, FIVE_ROWS)
    mapping_url = page.url
    for width_name, viewport in VIEWPORTS.items():
        page.set_viewport_size(viewport)
        page.goto(mapping_url)
        shoot("import-map", width_name)
    page.get_by_role("button", name="Import 5 rows").click()
    expect(page.locator("#count-failed")).to_have_text("1")
    pages = {
        "lead-list": "/leads/",
        "lead-detail": f"/leads/{lead.pk}/",
        "import-upload": "/leads/import/",
        "import-report": page.url,
        "export": "/exports/new/",
        "scoring-rules": "/settings/scoring-rules/",
    }
    for width_name, viewport in VIEWPORTS.items():
        page.set_viewport_size(viewport)
        for name, url in pages.items():
            page.goto(url)
            shoot(name, width_name)
    assert len(taken) == 14
    for path in taken:
        assert path.stat().st_size > 0
