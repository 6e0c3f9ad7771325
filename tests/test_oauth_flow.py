"""OAuth 2.0 authorization code + PKCE, end to end (§3; issue 7, done-means 1).

The first test drives the live server the way a third-party tool does, with authlib's OAuth2Session
and a requests session as the user's browser. The others use Django's test client.
"""

from __future__ import annotations

import gc
import re
import uuid
from urllib.parse import urlsplit

import pytest
import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from authlib.integrations.requests_client import OAuthError as ClientOAuthError
from django.conf import settings
from oauth2_provider.models import get_access_token_model, get_grant_model, get_refresh_token_model
from rest_framework.test import APIClient

from accounts.models import Role

from .factories import AccountFactory, LeadFactory, MembershipFactory, UserFactory
from .oauth_support import (
    PASSWORD,
    REDIRECT_URI,
    authorize_url,
    consent,
    consent_fields,
    issue_token,
    make_app,
    pkce_pair,
    query,
    refresh,
)
from .test_auth import assert_problem

CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


def bearer(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def _ip() -> str:
    suffix = uuid.uuid4().hex
    return f"2001:db8:{suffix[:4]}:{suffix[4:8]}::{suffix[8:12]}"


# --- Done-means 1: a real client library against the live server ----------------------------


@pytest.fixture
def close_after():
    """Register HTTP sessions to close when the test ends, so the live server's kept-alive request
    threads end with the test and close their database connections (else PostgreSQL cannot drop the
    test database, and SQLite's shared in-memory connection is closed from a thread at exit)."""
    sessions: list[requests.Session] = []
    yield sessions.append
    for session in sessions:
        session.close()
    gc.collect()  # responses in reference cycles still hold their sockets open


@pytest.mark.django_db(transaction=True)
def test_a_real_oauth_client_logs_in_consents_exchanges_calls_refreshes_and_revokes(
    live_server, settings, monkeypatch, close_after
):
    settings.RATELIMIT_ENABLE = False  # the login limiter's counters live in the cache all workers share
    monkeypatch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")  # the live server speaks http
    acme, globex = AccountFactory(slug="acme", name="Acme"), AccountFactory(slug="globex", name="Globex")
    user = UserFactory(email="rep@acme.test", password=PASSWORD)
    MembershipFactory(account=acme, user=user, role=Role.MEMBER)
    MembershipFactory(account=globex, user=user, role=Role.OWNER)
    acme_leads = {str(LeadFactory(account=acme).pk) for _ in range(2)}
    LeadFactory(account=globex)
    app, _ = make_app(name="Lead Syncer")
    base = live_server.url

    # The tool: a public client with PKCE S256 and a state.
    tool = OAuth2Session(
        client_id=app.client_id, redirect_uri=REDIRECT_URI, scope="leads:read", code_challenge_method="S256"
    )
    close_after(tool)
    verifier = generate_token(64)
    url, state = tool.create_authorization_url(f"{base}/oauth/authorize/", code_verifier=verifier)
    assert "code_challenge_method=S256" in url and "code_challenge=" in url and f"state={state}" in url

    # The user's browser: sent to the login page, logs in (CSRF token from the form), comes back.
    browser = requests.Session()
    close_after(browser)
    login_page = browser.get(url)
    assert urlsplit(login_page.url).path == "/login/" and login_page.status_code == 200
    next_path = query(login_page.url)["next"]
    consent_page = browser.post(
        f"{base}/login/",
        data={
            "username": user.email,
            "password": PASSWORD,
            "next": next_path,
            "csrfmiddlewaretoken": CSRF_INPUT.search(login_page.text).group(1),
        },
    )
    assert consent_page.status_code == 200 and urlsplit(consent_page.url).path == "/oauth/authorize/"
    assert "Lead Syncer" in consent_page.text
    assert "Read leads, notes, activity and exports" in consent_page.text
    assert '<select name="account"' in consent_page.text  # two memberships: the user picks one

    # Consent in Acme; the redirect goes to the client's registered URI (no server needed there).
    fields = consent_fields(consent_page.text) | {"account": str(acme.pk), "allow": "true"}
    answer = browser.post(consent_page.url, data=fields, allow_redirects=False)
    assert answer.status_code == 302
    location = answer.headers["Location"]
    assert location.startswith(REDIRECT_URI + "?")
    assert query(location)["state"] == state and "code" in query(location)

    # Code exchange with the verifier.
    token = tool.fetch_token(f"{base}/oauth/token/", authorization_response=location, code_verifier=verifier)
    assert token["token_type"] == "Bearer" and token["expires_in"] == 3600
    assert set(token["scope"].split()) == {"leads:read", f"account:{acme.pk}"}

    # An API call: only Acme's leads, with the account's rate-limit headers.
    response = tool.get(f"{base}/api/v1/leads")
    assert response.status_code == 200, response.text
    assert {lead["id"] for lead in response.json()["results"]} == acme_leads
    assert response.headers["X-RateLimit-Limit"] == str(acme.request_budget)

    # Refresh: new tokens that work.
    first = dict(token)
    refreshed = tool.refresh_token(f"{base}/oauth/token/")
    assert refreshed["access_token"] != first["access_token"]
    assert refreshed["refresh_token"] != first["refresh_token"]
    assert tool.get(f"{base}/api/v1/leads").status_code == 200

    # Revoke the access token: the API answers 401 invalid_credentials (problem+json).
    revoked = tool.revoke_token(
        f"{base}/oauth/revoke_token/", token=refreshed["access_token"], token_type_hint="access_token"
    )
    assert revoked.status_code == 200
    response = tool.get(f"{base}/api/v1/leads")
    assert response.status_code == 401
    assert response.headers["Content-Type"].startswith("application/problem+json")
    assert response.json()["code"] == "invalid_credentials"

    # The old refresh token, rotated away, fails with invalid_grant; so does the revoked one.
    for stale in (first["refresh_token"], refreshed["refresh_token"]):
        with pytest.raises(ClientOAuthError) as failure:
            tool.refresh_token(f"{base}/oauth/token/", refresh_token=stale)
        assert failure.value.error == "invalid_grant"


# --- The login page -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_login_page_uses_email_and_password_and_redirects_to_next(client):
    user = UserFactory(email=f"{uuid.uuid4().hex[:8]}@example.com", password=PASSWORD)
    page = client.get("/login/?next=/oauth/authorized-apps/")
    assert page.status_code == 200 and b'type="email"' in page.content
    response = client.post(
        "/login/", {"username": user.email, "password": PASSWORD, "next": "/oauth/authorized-apps/"}, REMOTE_ADDR=_ip()
    )
    assert response.status_code == 302 and response["Location"] == "/oauth/authorized-apps/"


@pytest.mark.django_db
def test_login_never_redirects_to_another_host(client):
    user = UserFactory(email=f"{uuid.uuid4().hex[:8]}@example.com", password=PASSWORD)
    response = client.post(
        "/login/", {"username": user.email, "password": PASSWORD, "next": "https://evil.example/"}, REMOTE_ADDR=_ip()
    )
    assert response.status_code == 302 and response["Location"] == settings.LOGIN_REDIRECT_URL


@pytest.fixture
def one_login_window(monkeypatch):
    """django-ratelimit counts in fixed windows; pin the window so a slow run cannot straddle two."""
    import time

    from django_ratelimit import core

    end = int(time.time()) + 3600
    monkeypatch.setattr(core, "_get_window", lambda value, period: end)


@pytest.mark.django_db
def test_login_attempts_for_one_username_are_refused_with_429_past_the_limit(client, one_login_window):
    user = UserFactory(email=f"{uuid.uuid4().hex[:10]}@example.com")
    limit = int(settings.LEADBASE_LOGIN_RATE_PER_USERNAME.split("/")[0])
    statuses = [
        client.post("/login/", {"username": user.email, "password": "wrong"}, REMOTE_ADDR=_ip()).status_code
        for _ in range(limit + 1)
    ]
    assert statuses == [200] * limit + [429]


def login_data(n: int) -> dict[str, str]:
    return {"username": f"u{n}-{uuid.uuid4().hex[:6]}@example.com", "password": "x"}


@pytest.mark.django_db
def test_login_attempts_from_one_address_are_refused_with_429_past_the_limit(client, one_login_window):
    ip = _ip()
    limit = int(settings.LEADBASE_LOGIN_RATE_PER_IP.split("/")[0])
    statuses = [
        client.post(
            "/login/", {"username": f"u{n}-{uuid.uuid4().hex[:6]}@example.com", "password": "x"}, REMOTE_ADDR=ip
        ).status_code
        for n in range(limit + 1)
    ]
    assert statuses == [200] * limit + [429]


@pytest.mark.django_db
def test_logout_is_a_post_and_ends_the_session(client):
    client.force_login(UserFactory())
    assert client.get("/logout/").status_code == 405
    assert client.post("/logout/").status_code == 302
    assert client.get("/oauth/authorized-apps/").status_code == 302


# --- The consent screen -------------------------------------------------------------------------


@pytest.fixture
def member_of_two(db):
    """A user who is an owner in Acme and a member in Globex."""
    acme, globex = AccountFactory(slug="acme", name="Acme"), AccountFactory(slug="globex", name="Globex")
    user = UserFactory(email="two@example.com", password=PASSWORD)
    MembershipFactory(account=acme, user=user, role=Role.OWNER)
    MembershipFactory(account=globex, user=user, role=Role.MEMBER)
    return user, acme, globex


@pytest.mark.django_db
def test_authorize_sends_an_anonymous_visitor_to_the_login_page(client):
    app, _ = make_app()
    url = authorize_url(app, challenge=pkce_pair()[1])
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/login/?next=")


@pytest.mark.django_db
def test_consent_screen_shows_the_app_scopes_in_plain_words_and_the_accounts(client, member_of_two):
    user, _, _ = member_of_two
    app, _ = make_app(name="Pipeline Pal")
    client.force_login(user)
    page = client.get(authorize_url(app, scope="leads:read leads:write", challenge=pkce_pair()[1]))
    html = page.content.decode()
    assert page.status_code == 200
    assert "Pipeline Pal" in html
    assert "Read leads, notes, activity and exports" in html
    assert "Create, update, tag, score and delete leads" in html
    assert "Acme (Owner)" in html and "Globex (Member)" in html
    assert 'name="allow"' in html and 'name="deny"' in html
    assert page["X-Frame-Options"] == "DENY"  # no clickjacking of the Allow button


@pytest.mark.django_db
def test_a_user_with_one_account_is_not_asked_to_choose(client, account, owner):
    app, _ = make_app()
    client.force_login(owner)
    html = client.get(authorize_url(app, challenge=pkce_pair()[1])).content.decode()
    assert "<select" not in html
    assert f'name="account" value="{account.pk}"' in html


@pytest.mark.django_db
def test_the_token_acts_in_the_account_chosen_on_the_consent_screen(client, member_of_two):
    user, acme, globex = member_of_two
    acme_lead, globex_lead = LeadFactory(account=acme), LeadFactory(account=globex)
    app, _ = make_app()
    token = issue_token(client, app, user, globex)
    api = bearer(token["access_token"])
    assert api.get("/api/v1/me").json()["account"]["slug"] == "globex"
    assert [lead["id"] for lead in api.get("/api/v1/leads").json()["results"]] == [str(globex_lead.pk)]
    assert_problem(api.get(f"/api/v1/leads/{acme_lead.pk}"), 404, "not_found")


@pytest.mark.django_db
def test_deny_redirects_with_access_denied_and_issues_nothing(client, account, owner):
    app, _ = make_app()
    client.force_login(owner)
    _, challenge = pkce_pair()
    response = consent(client, app, account=account, challenge=challenge, allow=False, state="keep-me")
    assert response.status_code == 302
    params = query(response["Location"])
    assert response["Location"].startswith(REDIRECT_URI) and params["error"] == "access_denied"
    assert params["state"] == "keep-me"
    assert not get_grant_model().objects.exists()


@pytest.mark.django_db
def test_the_consent_post_needs_the_csrf_token(account, owner):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    app, _ = make_app()
    client.force_login(owner)
    _, challenge = pkce_pair()
    url = authorize_url(app, challenge=challenge)
    fields = consent_fields(client.get(url).content.decode())
    fields.pop("csrfmiddlewaretoken")
    response = client.post(url, {**fields, "allow": "true"})
    assert response.status_code == 403
    assert not get_grant_model().objects.exists()


@pytest.mark.django_db
def test_the_redirect_carries_the_issuer_for_mix_up_defence(client, account, owner):
    app, _ = make_app()
    client.force_login(owner)
    response = consent(client, app, account=account, challenge=pkce_pair()[1])
    assert query(response["Location"])["iss"] == "http://testserver"


# --- Tokens: lifetimes, rotation, reuse detection, revocation -----------------------------------


@pytest.mark.django_db
def test_tokens_are_stored_only_as_checksums(client, account, owner):
    app, _ = make_app()
    token = issue_token(client, app, owner, account)
    access = get_access_token_model().objects.get()
    assert access.token == "" and token["access_token"] not in access.token_checksum
    assert get_refresh_token_model().objects.get().token == ""


@pytest.mark.django_db
def test_replaying_a_rotated_refresh_token_revokes_the_whole_family(client, account, owner):
    app, _ = make_app()
    first = issue_token(client, app, owner, account)
    second = refresh(client, app, first["refresh_token"]).json()
    assert bearer(second["access_token"]).get("/api/v1/leads").status_code == 200

    replay = refresh(client, app, first["refresh_token"])
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    # Reuse detected: the tokens minted from the family die too.
    assert_problem(bearer(second["access_token"]).get("/api/v1/leads"), 401, "invalid_credentials")
    assert refresh(client, app, second["refresh_token"]).json()["error"] == "invalid_grant"


@pytest.mark.django_db
def test_refresh_keeps_the_account_when_the_client_narrows_the_scopes(client, account, owner):
    app, _ = make_app()
    first = issue_token(client, app, owner, account, scope="leads:read leads:write")
    narrowed = refresh(client, app, first["refresh_token"], scope="leads:read").json()
    assert set(narrowed["scope"].split()) == {"leads:read", f"account:{account.pk}"}
    assert bearer(narrowed["access_token"]).get("/api/v1/me").json()["scopes"] == ["leads:read"]


@pytest.mark.django_db
def test_refresh_cannot_widen_the_scopes_or_switch_account(client, account, other_account, owner):
    MembershipFactory(account=other_account, user=owner, role=Role.OWNER)
    app, _ = make_app()
    first = issue_token(client, app, owner, account, scope="leads:read")
    widened = refresh(client, app, first["refresh_token"], scope="leads:read leads:write")
    assert widened.status_code == 400 and widened.json()["error"] == "invalid_scope"
    switched = refresh(client, app, first["refresh_token"], scope=f"leads:read account:{other_account.pk}")
    assert switched.json()["error"] == "invalid_scope"


@pytest.mark.django_db
def test_an_expired_access_token_answers_401_invalid_credentials(client, account, owner):
    from datetime import timedelta

    from django.utils import timezone

    app, _ = make_app()
    token = issue_token(client, app, owner, account)
    get_access_token_model().objects.update(expires=timezone.now() - timedelta(seconds=1))
    assert_problem(bearer(token["access_token"]).get("/api/v1/leads"), 401, "invalid_credentials")


@pytest.mark.django_db
def test_a_refresh_token_past_its_idle_lifetime_is_refused(client, account, owner):
    from datetime import timedelta

    from django.utils import timezone

    app, _ = make_app()
    token = issue_token(client, app, owner, account)
    idle = settings.OAUTH2_PROVIDER["REFRESH_TOKEN_EXPIRE_SECONDS"]
    get_access_token_model().objects.update(expires=timezone.now() - timedelta(seconds=idle + 1))
    assert refresh(client, app, token["refresh_token"]).json()["error"] == "invalid_grant"


@pytest.mark.django_db
def test_revoking_the_refresh_token_kills_the_access_token_too(client, account, owner):
    app, _ = make_app()
    token = issue_token(client, app, owner, account)
    response = client.post(
        "/oauth/revoke_token/",
        {"token": token["refresh_token"], "token_type_hint": "refresh_token", "client_id": app.client_id},
    )
    assert response.status_code == 200
    assert_problem(bearer(token["access_token"]).get("/api/v1/leads"), 401, "invalid_credentials")


@pytest.mark.django_db
def test_a_client_cannot_revoke_another_clients_token(client, account, owner):
    app, _ = make_app()
    other, _ = make_app(name="Other")
    token = issue_token(client, app, owner, account)
    client.post("/oauth/revoke_token/", {"token": token["access_token"], "client_id": other.client_id})
    assert bearer(token["access_token"]).get("/api/v1/leads").status_code == 200


# --- Rate limits and the metadata document ------------------------------------------------------


@pytest.mark.django_db
def test_oauth_requests_carry_rate_limit_headers_and_spend_the_accounts_shared_budget(
    client, account, owner, make_client
):
    app, _ = make_app()
    api = bearer(issue_token(client, app, owner, account)["access_token"])
    key_api = make_client(account)
    first = api.get("/api/v1/leads")
    assert first["X-RateLimit-Limit"] == str(account.request_budget)
    assert "RateLimit-Policy" in first and "RateLimit" in first
    remaining = int(first["X-RateLimit-Remaining"])
    assert int(key_api.get("/api/v1/leads")["X-RateLimit-Remaining"]) == remaining - 1
    assert int(api.get("/api/v1/me")["X-RateLimit-Remaining"]) == remaining - 2


@pytest.mark.django_db
def test_oauth_requests_past_the_accounts_budget_answer_429(client, account, owner):
    account.rate_limit_override = 2
    account.save()
    app, _ = make_app()
    api = bearer(issue_token(client, app, owner, account)["access_token"])
    assert [api.get("/api/v1/leads").status_code for _ in range(2)] == [200, 200]
    response = api.get("/api/v1/leads")
    assert_problem(response, 429, "rate_limited")
    assert int(response["Retry-After"]) >= 1


@pytest.mark.django_db
def test_the_metadata_document_advertises_only_what_is_accepted(client):
    body = client.get("/.well-known/oauth-authorization-server").json()
    assert body["response_types_supported"] == ["code"]
    assert body["grant_types_supported"] == ["authorization_code", "refresh_token"]
    assert body["code_challenge_methods_supported"] == ["S256"]
    assert body["scopes_supported"] == ["admin", "leads:read", "leads:write"]
    assert body["authorization_response_iss_parameter_supported"] is True
    assert body["token_endpoint"] == "http://testserver/oauth/token/"
    assert body["authorization_endpoint"] == "http://testserver/oauth/authorize/"


@pytest.mark.django_db
def test_a_client_asking_for_no_scope_gets_leads_read(client, account, owner):
    app, _ = make_app()
    client.force_login(owner)
    html = client.get(authorize_url(app, challenge=pkce_pair()[1], scope=None)).content.decode()
    assert "<code>leads:read</code>" in html and "leads:write" not in html


@pytest.mark.django_db
def test_every_consent_is_in_the_accounts_audit_log(client, account, owner):
    from accounts.models import AuditLogEntry

    app, _ = make_app(name="Audited")
    issue_token(client, app, owner, account, scope="leads:read leads:write")
    entry = AuditLogEntry.objects.get(account=account, action="oauth.authorized")
    assert entry.actor_user == owner and entry.object_id == str(app.pk)
    assert entry.data["scopes"] == ["leads:read", "leads:write"]


@pytest.mark.django_db
def test_a_user_without_any_account_can_only_deny(client):
    app, _ = make_app()
    client.force_login(UserFactory())
    page = client.get(authorize_url(app, challenge=pkce_pair()[1]))
    assert b"not a member of any account" in page.content and b'name="allow"' not in page.content
