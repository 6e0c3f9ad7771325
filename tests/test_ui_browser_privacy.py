"""The privacy pages and the Settings menu in a real browser (fixtures in tests/browser_support.py): an
admin erases a lead through the confirmation page and the create form then refuses its email next to
the field; the Settings menu opens from the keyboard, keeps the top bar on one line at desktop width and
fits a phone. Every test fails on any JavaScript console error."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from accounts.actor import Actor
from accounts.models import Role
from accounts.scopes import ROLE_SCOPES
from leads import services
from leads.models import Lead, Suppression

from .browser_support import *  # noqa: F403  (the fixtures: browser, page, account, owner)
from .browser_support import log_in
from .factories import MembershipFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

EMAIL = "ada.lovelace@example.org"


@pytest.fixture
def admin(account):
    return MembershipFactory(account=account, user=UserFactory(email="admin@acme.test"), role=Role.ADMIN).user


def test_an_admin_erases_a_lead_and_its_email_cannot_be_added_again(page, account, admin):
    actor = Actor(user=admin, account=account, role=Role.ADMIN, scopes=ROLE_SCOPES[Role.ADMIN], via="ui")
    lead = services.lead_create(account=account, actor=actor, data={"email": EMAIL, "first_name": "Ada"}).lead
    services.lead_create(account=account, actor=actor, data={"email": "grace@example.org"})
    log_in(page, admin)
    expect(page.locator("table.leads tbody tr")).to_have_count(2)
    page.get_by_role("link", name=EMAIL).click()
    page.get_by_role("link", name="Erase personal data").click()
    expect(page.get_by_role("heading", name=f"Erase {EMAIL}?")).to_be_visible()
    expect(page.locator("main")).to_contain_text("suppresses the email")
    page.get_by_role("button", name="Erase personal data").click()
    expect(page.get_by_role("heading", name="Leads")).to_be_visible()
    expect(page.locator(".message.success")).to_contain_text("Lead erased")
    expect(page.locator("table.leads tbody tr")).to_have_count(1)
    expect(page.get_by_role("link", name=EMAIL)).to_have_count(0)
    assert not Lead.objects.filter(pk=lead.pk).exists() and Suppression.objects.filter(account=account).count() == 1

    page.get_by_role("link", name="New lead").click()
    page.get_by_label("Email").fill(EMAIL.upper())
    page.get_by_role("button", name="Create lead").click()
    error = page.locator("#id_email-error")
    expect(error).to_contain_text("suppression list")
    expect(page.get_by_label("Email")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Email")).to_have_attribute("aria-describedby", "id_email-error")
    assert not Lead.objects.filter(account=account, email=EMAIL).exists()


def test_the_settings_menu_opens_from_the_keyboard_and_closes_on_navigation(page, account, admin):
    log_in(page, admin)
    page.set_viewport_size({"width": 1280, "height": 800})
    suppressions = page.get_by_role("link", name="Suppressions")
    expect(suppressions).to_be_hidden()
    # the top bar holds one line at desktop width: the main links and the menu share a row
    tops = page.evaluate(
        "[...document.querySelectorAll('.mainnav > a, .mainnav > details > summary, .userbar > *')]"
        ".map(e => Math.round(e.getBoundingClientRect().top + e.getBoundingClientRect().height / 2))"
    )
    assert max(tops) - min(tops) <= 4, f"the top bar wraps at desktop width: {tops}"
    page.locator("summary", has_text="Settings").focus()
    page.keyboard.press("Enter")
    expect(suppressions).to_be_visible()
    suppressions.focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Suppressions")).to_be_visible()
    expect(page.locator("details.menu")).not_to_have_attribute("open", "")
    expect(page.get_by_role("link", name="Suppressions")).to_be_hidden()


def test_the_nav_and_the_privacy_pages_fit_a_phone(page, account, admin):
    lead = Lead.objects.create(account=account, email=EMAIL, first_name="Ada")
    services.suppression_create(account=account, actor=None, email="someone@example.org")
    log_in(page, admin)
    page.set_viewport_size({"width": 390, "height": 844})
    for path in ["/leads/", f"/leads/{lead.pk}/", f"/leads/{lead.pk}/erase/", "/settings/suppressions/"]:
        page.goto(path)
        expect(page.locator("h1")).to_be_visible()
        page.locator("summary", has_text="Settings").click()
        expect(page.get_by_role("link", name="Authorised apps")).to_be_visible()
        overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, f"{path} scrolls sideways by {overflow}px at phone width with the menu open"
