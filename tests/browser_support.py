"""Shared fixtures of the browser tests: Playwright for Python driving the system's Chromium
(/usr/bin/chromium, the Debian package `.ci/run` installs; never `playwright install`) against the
live test server. The `page` fixture fails the test on any JavaScript console error or uncaught
page error. Test modules import the fixtures they use from here."""

from __future__ import annotations

import os
import uuid

import pytest
from playwright.sync_api import expect, sync_playwright

from accounts.models import Role

from .factories import AccountFactory, MembershipFactory, UserFactory

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

# What `from .browser_support import *` brings into a test module: its fixtures.
__all__ = ["account", "browser", "owner", "page"]


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
