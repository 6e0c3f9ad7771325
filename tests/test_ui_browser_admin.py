"""The admin pages and the lead timeline in a real browser (fixtures in tests/browser_support.py):
create a webhook and see its secret once, add a note and see it on the timeline, load older entries
with htmx, and the pages at phone width. Every test fails on any JavaScript console error."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from accounts.actor import Actor
from accounts.models import Role
from accounts.scopes import ROLE_SCOPES
from leads import services
from webhooks.models import WebhookSubscription

from .browser_support import *  # noqa: F403  (the fixtures: browser, page, account, owner)
from .browser_support import log_in
from .factories import MembershipFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PUBLIC_URL = "http://93.184.216.34/hooks/leadbase"  # a literal public address: no DNS needed


@pytest.fixture
def actor(account, owner) -> Actor:
    return Actor(user=owner, account=account, role=Role.OWNER, scopes=ROLE_SCOPES[Role.OWNER], via="ui")


def test_create_a_webhook_and_see_its_secret_once(page, account, owner, settings):
    settings.LEADBASE_WEBHOOKS_ALLOW_PRIVATE = False
    log_in(page, owner)
    page.get_by_text("Settings", exact=True).click()  # the settings pages sit in the nav's Settings menu
    page.get_by_role("link", name="Webhooks").click()
    expect(page.get_by_role("heading", name="Webhooks")).to_be_visible()
    page.get_by_label("URL").fill("http://127.0.0.1:8000/hook")
    page.get_by_role("button", name="Create webhook").click()
    expect(page.locator("#id_url-error")).to_contain_text("non-public address")
    expect(page.get_by_label("URL")).to_have_attribute("aria-invalid", "true")
    page.get_by_label("URL").fill(PUBLIC_URL)
    page.get_by_label("lead.created").check()
    page.get_by_label("Active").check()
    page.get_by_role("button", name="Create webhook").click()
    secret_box = page.get_by_label("Signing secret")
    expect(secret_box).to_be_visible()
    sub = WebhookSubscription.objects.get(account=account)
    assert secret_box.input_value() == sub.secret and sub.event_types == ["lead.created"] and sub.active
    page.get_by_role("link", name="Done").click()
    expect(page.get_by_role("heading", name="Deliveries")).to_be_visible()
    assert sub.secret not in page.content()
    page.get_by_role("link", name="All webhooks").click()
    expect(page.locator("table.webhooks tbody tr")).to_have_count(1)
    assert sub.secret not in page.content()


def test_add_a_note_and_see_it_on_the_timeline(page, account, owner, actor):
    lead = services.lead_create(account=account, actor=actor, data={"email": "ada@example.org"}).lead
    log_in(page, owner)
    page.goto(f"/leads/{lead.pk}/")
    timeline = page.locator("ol.timeline")
    expect(timeline.locator("li")).to_have_count(1)
    expect(timeline).to_contain_text("Created")
    page.get_by_role("button", name="Add note").click()
    expect(page.locator("#id_body-error")).to_have_text("This field may not be blank.")
    page.get_by_label("Add a note").fill("Called: wants a demo on Friday.")
    page.get_by_role("button", name="Add note").click()
    expect(page.get_by_text("Note added.")).to_be_visible()
    expect(timeline.locator("li")).to_have_count(2)
    expect(timeline.locator("li").first).to_contain_text("Called: wants a demo on Friday.")
    expect(timeline.locator("li").first).to_contain_text(f"Note by {owner.email}")


def test_older_timeline_entries_load_in_place(page, account, owner, actor):
    lead = services.lead_create(account=account, actor=actor, data={"email": "ada@example.org"}).lead
    for n in range(22):
        services.note_add(account=account, actor=actor, lead_id=lead.pk, body=f"Note {n:02d}")
    log_in(page, owner)
    page.goto(f"/leads/{lead.pk}/")
    entries = page.locator("ol.timeline > li")
    expect(entries).to_have_count(20)
    url = page.url
    page.get_by_role("link", name="Older entries").click()
    expect(entries).to_have_count(23)
    expect(entries.last).to_contain_text("Created")
    expect(page.get_by_role("link", name="Older entries")).to_have_count(0)
    assert page.url == url  # htmx swapped the entries in; no navigation


def test_admin_pages_fit_a_phone(page, account, owner):
    MembershipFactory(account=account, user=UserFactory(email="rep@acme.test"), role=Role.MEMBER)
    WebhookSubscription.objects.create(account=account, url=PUBLIC_URL, secret="x" * 32)
    log_in(page, owner)
    page.set_viewport_size({"width": 390, "height": 800})
    hook = WebhookSubscription.objects.get(account=account)
    for path in ["/settings/webhooks/", f"/settings/webhooks/{hook.pk}/", "/settings/oauth-apps/",
                 "/settings/members/", "/settings/plan/"]:  # fmt: skip
        page.goto(path)
        expect(page.locator("h1")).to_be_visible()
        overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        wide = page.evaluate(
            "[...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > "
            "document.documentElement.clientWidth + 1).map(e => e.tagName + '.' + e.className).slice(0, 8)"
        )
        assert overflow <= 0, f"{path} scrolls sideways by {overflow}px at phone width: {wide}"
