"""The web UI in a real browser (fixtures in tests/browser_support.py): log in, create, filter, page,
bulk-tag, API keys. Every test fails on any JavaScript console error or uncaught page error."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from accounts.models import ApiKey
from leads.models import Lead

from .browser_support import *  # noqa: F403  (the fixtures: browser, page, account, owner)
from .browser_support import log_in
from .factories import LeadFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


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
    page.get_by_text("Settings", exact=True).click()  # the settings pages sit in the nav's Settings menu
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
