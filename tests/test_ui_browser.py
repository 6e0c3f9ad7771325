"""The web UI in a real browser: Playwright for Python drives the system's Chromium (/usr/bin/chromium,
the Debian package `.ci/run` installs; never `playwright install`) against the live test server.
Every test fails on any JavaScript console error or uncaught page error."""

from __future__ import annotations

import os
import uuid

import pytest
from playwright.sync_api import expect, sync_playwright

from accounts.models import ApiKey, Role
from leads.models import Lead

from .factories import AccountFactory, LeadFactory, MembershipFactory, UserFactory

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
PASSWORD = "pw-for-tests-123"  # tests/factories.py

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def browser():
    # Playwright's sync API runs an event loop in this thread; the test's own ORM calls (fixtures,
    # assertions) are still plain synchronous code, so Django's async guard is lifted for this module.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def account(db):
    return AccountFactory(slug=f"acme-{uuid.uuid4().hex[:8]}", name="Acme")


@pytest.fixture
def owner(account):
    # A fresh email per test: the login form's per-username limit must not carry across tests.
    user = UserFactory(email=f"owner-{uuid.uuid4().hex[:8]}@acme.test")
    MembershipFactory(account=account, user=user, role=Role.OWNER)
    return user


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(base_url=live_server.url)
    page = context.new_page()
    page.set_default_timeout(10_000)
    problems: list[str] = []
    page.on("console", lambda msg: problems.append(f"console.{msg.type}: {msg.text}") if msg.type == "error" else None)
    page.on("pageerror", lambda exc: problems.append(f"pageerror: {exc}"))
    yield page
    context.close()
    assert problems == [], "JavaScript errors in the page"


def log_in(page, user) -> None:
    page.goto("/leads/")
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Leads")).to_be_visible()


def test_log_in_and_create_a_lead(page, account, owner):
    log_in(page, owner)
    page.get_by_role("link", name="New lead").click()
    page.get_by_label("Email").fill("not-an-email")
    page.get_by_role("button", name="Create lead").click()
    expect(page.get_by_text("Enter a valid email address.")).to_be_visible()
    page.get_by_label("Email").fill("grace@example.org")
    page.get_by_label("Company").fill("Navy")
    page.get_by_label("Tags").fill("pioneer, cobol")
    page.get_by_role("button", name="Create lead").click()
    expect(page.get_by_text("Lead grace@example.org created.")).to_be_visible()
    expect(page.locator("dl.fields")).to_contain_text("Navy")
    page.get_by_role("link", name="All leads").click()
    expect(page.locator("table.leads tbody tr")).to_have_count(1)
    assert sorted(Lead.objects.get(account=account).tags) == ["cobol", "pioneer"]


def test_filter_the_list(page, account, owner):
    LeadFactory(account=account, email="ada@example.org", company="Analytical", tags=["vip"])
    LeadFactory(account=account, email="bob@example.org", company="Builders", status="qualified")
    log_in(page, owner)
    rows = page.locator("table.leads tbody tr")
    expect(rows).to_have_count(2)
    page.get_by_label("Search", exact=True).fill("analytical")
    page.get_by_role("button", name="Filter").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("ada@example.org")
    assert "q=analytical" in page.url  # htmx pushed the filtered URL
    page.get_by_label("Search", exact=True).fill("")
    page.get_by_label("Status", exact=True).select_option("qualified")
    page.get_by_role("button", name="Filter").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("bob@example.org")


def test_page_forward_with_the_cursor(page, account, owner):
    for n in range(5):
        LeadFactory(account=account, email=f"p{n}@example.org")
    log_in(page, owner)
    page.goto("/leads/?sort=email&limit=2")
    rows = page.locator("table.leads tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("p0@example.org")
    page.get_by_role("link", name="Next").click()
    expect(rows.first).to_contain_text("p2@example.org")
    page.get_by_role("link", name="Next").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("p4@example.org")
    expect(page.get_by_role("link", name="Next")).to_have_count(0)


def test_bulk_tag_two_leads(page, account, owner):
    first = LeadFactory(account=account, email="a@example.org")
    second = LeadFactory(account=account, email="b@example.org")
    untouched = LeadFactory(account=account, email="c@example.org")
    log_in(page, owner)
    page.get_by_label("Select a@example.org").check()
    page.get_by_label("Select b@example.org").check()
    page.get_by_label("Tag to add").fill("hot")
    page.get_by_role("button", name="Add tag").click()
    expect(page.get_by_text("Tagged “hot”: 2 leads.")).to_be_visible()
    expect(page.locator("table.leads .tag", has_text="hot")).to_have_count(2)
    for lead in (first, second):
        lead.refresh_from_db()
        assert "hot" in lead.tags
    untouched.refresh_from_db()
    assert "hot" not in untouched.tags


def test_create_and_revoke_an_api_key(page, account, owner):
    log_in(page, owner)
    page.get_by_role("link", name="API keys").click()
    page.get_by_label("Name").fill("Zapier")
    page.get_by_label("leads:write", exact=False).check()
    page.get_by_role("button", name="Create key").click()
    raw = page.get_by_label("Key").input_value()
    key = ApiKey.objects.get(account=account, name="Zapier")
    assert raw.startswith(key.prefix) and sorted(key.scopes) == ["leads:read", "leads:write"]
    page.get_by_role("link", name="Done").click()
    expect(page.locator("table.keys")).to_contain_text(key.prefix)
    expect(page.locator("body")).not_to_contain_text(raw)
    page.get_by_role("button", name="Revoke Zapier").click()
    expect(page.get_by_text(f"API key “Zapier” ({key.prefix}…) revoked.")).to_be_visible()
    key.refresh_from_db()
    assert key.revoked_at is not None
