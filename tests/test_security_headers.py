"""Secure headers and cookies (docs/security.md), in the embedded mode and in production mode, and
API keys never written to the logs: not on success, not on a failed authentication, not on a 500."""

from __future__ import annotations

import ast
import json
import logging
import re
from pathlib import Path

import pytest
from django.test import Client
from rest_framework.test import APIClient

from accounts.services import API_KEY_LOOKUP_LENGTH
from leads import selectors

from .factories import MembershipFactory
from .test_deploy import manage, production_env

pytestmark = pytest.mark.django_db

LEADS = "/api/v1/leads"
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"


# --- headers on every response --------------------------------------------------------------------


@pytest.mark.parametrize("path", [LEADS, "/api/v1/no-such-route"], ids=["200", "404"])
def test_api_responses_carry_the_security_headers(api, path):
    response = api.get(path)
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Frame-Options"] == "DENY"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"
    assert response["Content-Security-Policy"] == API_CSP
    assert response["Cache-Control"] == "private, no-cache"


def test_an_unauthenticated_api_error_carries_the_api_policy_too(db):
    response = APIClient().get(LEADS)
    assert response.status_code == 401
    assert response["Content-Security-Policy"] == API_CSP


def test_the_interactive_api_docs_are_not_given_the_policy_that_would_stop_their_scripts(db):
    response = Client().get("/api/v1/docs/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert "Content-Security-Policy" not in response
    assert response["X-Content-Type-Options"] == "nosniff"


def test_ui_pages_carry_the_framing_and_sniffing_headers(db):
    response = Client().get("/login/")
    assert response.status_code == 200
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"


def test_the_session_and_csrf_cookies_are_http_only_and_same_site_lax(account):
    user = MembershipFactory(account=account).user
    user.set_password("pw-for-tests-123")
    user.save()
    client = Client(enforce_csrf_checks=True)
    page = client.get("/login/")
    csrf = page.cookies["csrftoken"]
    assert csrf["httponly"] is True
    assert csrf["samesite"] == "Lax"

    response = client.post(
        "/login/",
        {"username": user.email, "password": "pw-for-tests-123", "csrfmiddlewaretoken": page.context["csrf_token"]},
    )
    assert response.status_code == 302
    session = response.cookies["sessionid"]
    assert session["httponly"] is True
    assert session["samesite"] == "Lax"


# --- production mode -----------------------------------------------------------------------------

PRODUCTION_PROBE = """
import json
from django.conf import settings
from django.test import Client
names = [
    "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SESSION_COOKIE_HTTPONLY", "CSRF_COOKIE_HTTPONLY",
    "SESSION_COOKIE_SAMESITE", "CSRF_COOKIE_SAMESITE", "SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS", "SECURE_HSTS_PRELOAD", "SECURE_CONTENT_TYPE_NOSNIFF", "DEBUG",
]
client = Client(HTTP_HOST="leads.example.com")
plain = client.get("/api/v1/leads")
secure = client.get("/api/v1/leads", secure=True)
print(json.dumps({
    "settings": {name: getattr(settings, name) for name in names},
    "plain": [plain.status_code, plain.get("Location")],
    "secure": [secure.status_code, secure.get("Strict-Transport-Security"), secure.get("Content-Type")],
}))
"""


@pytest.fixture(scope="module")
def production(tmp_path_factory) -> dict:
    tmp_path = tmp_path_factory.mktemp("production")
    env = production_env(tmp_path)
    migrated = manage(env, "migrate", "--no-input")
    assert migrated.returncode == 0, migrated.stderr
    result = manage(env, "shell", "-c", PRODUCTION_PROBE)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_production_cookies_are_secure_http_only_and_same_site(production):
    settings = production["settings"]
    assert settings["SESSION_COOKIE_SECURE"] and settings["CSRF_COOKIE_SECURE"]
    assert settings["SESSION_COOKIE_HTTPONLY"] and settings["CSRF_COOKIE_HTTPONLY"]
    assert settings["SESSION_COOKIE_SAMESITE"] == settings["CSRF_COOKIE_SAMESITE"] == "Lax"
    assert settings["DEBUG"] is False


def test_production_redirects_plain_http_to_https(production):
    status, location = production["plain"]
    assert status == 301
    assert location == "https://leads.example.com/api/v1/leads"


def test_production_sends_hsts_for_a_year_with_subdomains_and_preload_over_https(production):
    status, hsts, content_type = production["secure"]
    assert status == 401 and content_type.startswith("application/problem+json")
    assert hsts == "max-age=31536000; includeSubDomains; preload"


# --- API keys never reach the logs ---------------------------------------------------------------


@pytest.fixture
def all_logs(caplog):
    """Every record of every logger, at every level, formatted as the console handler would."""
    caplog.set_level(logging.DEBUG)
    return caplog


def secret_parts(raw_key: str) -> list[str]:
    """The key, and its part after the displayed prefix (what must stay secret)."""
    return [raw_key, raw_key[API_KEY_LOOKUP_LENGTH:]]


def test_an_api_key_never_appears_in_the_logs_of_a_request_a_failed_auth_or_a_500(
    account, make_key, all_logs, monkeypatch
):
    raw = make_key(account)
    wrong = raw[:-6] + ("aaaaaa" if not raw.endswith("aaaaaa") else "bbbbbb")

    header = APIClient()
    header.credentials(HTTP_X_API_KEY=raw)
    bearer = APIClient()
    bearer.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    bad = APIClient()
    bad.credentials(HTTP_AUTHORIZATION=f"Bearer {wrong}")

    assert header.get(LEADS).status_code == 200
    assert bearer.post(LEADS, {"email": "logs@example.com"}, format="json").status_code == 201
    assert bad.get(LEADS).status_code == 401

    def broken(**kwargs):
        raise RuntimeError("the selector broke")

    monkeypatch.setattr(selectors, "lead_list", broken)
    failed = bearer.get(LEADS)
    assert failed.status_code == 500

    rendered = [logging.Formatter("%(name)s %(levelname)s %(message)s").format(r) for r in all_logs.records]
    assert any("the selector broke" in text and "Traceback" in text for text in rendered)  # the 500 was logged
    for record, text in zip(all_logs.records, rendered, strict=True):  # ... and nowhere, tracebacks included,
        for secret in secret_parts(raw) + secret_parts(wrong):  # is a key
            assert secret not in text, record.name
    for secret in secret_parts(raw):
        assert secret not in failed.content.decode()


# --- the security checklist cites real tests -------------------------------------------------------

DOCS = Path(__file__).resolve().parent.parent / "docs" / "security.md"
CITATION = re.compile(r"(tests/test_\w+\.py)::(test_\w+)")


def test_every_test_cited_in_docs_security_md_exists():
    text = DOCS.read_text()
    cited = set(CITATION.findall(text))
    # The fault-injection table names its tests without the file.
    cited |= {("tests/test_fault_injection.py", name) for name in re.findall(r"`(test_\w+)`", text)}
    assert len(cited) > 50
    root = DOCS.parent.parent
    missing = []
    for path, name in sorted(cited):
        source = root / path
        defined = source.exists() and any(
            isinstance(node, ast.FunctionDef) and node.name == name for node in ast.walk(ast.parse(source.read_text()))
        )
        if not defined:
            missing.append(f"{path}::{name}")
    assert missing == []


def test_docs_security_md_walks_through_every_owasp_api_top_10_item():
    headings = re.findall(r"^### (API\d+) ", DOCS.read_text(), flags=re.MULTILINE)
    assert headings == [f"API{i}" for i in range(1, 11)]
