"""Helpers for the OAuth tests: apps, PKCE pairs, and the authorization code flow through Django's test
client (the live-server test drives the same flow with authlib and requests instead)."""

from __future__ import annotations

import base64
import hashlib
import secrets
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlencode, urlsplit

from oauth2_provider.models import get_application_model

REDIRECT_URI = "https://client.example.test/callback"
PASSWORD = "pw-for-tests-123"  # tests.factories.UserFactory's


def make_app(*, client_type: str = "public", redirect_uri: str = REDIRECT_URI, name: str = "Zapper", user=None):
    """An authorization-code app as an operator would create it; returns (app, raw secret or None)."""
    Application = get_application_model()
    secret = secrets.token_urlsafe(32) if client_type == Application.CLIENT_CONFIDENTIAL else ""
    app = Application.objects.create(
        name=name,
        user=user,
        client_type=client_type,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris=redirect_uri,
        client_secret=secret,
        hash_client_secret=True,
    )
    return app, (secret or None)


def pkce_pair(length: int = 64) -> tuple[str, str]:
    """(code_verifier, S256 code_challenge); `length` must be 43-128 for a valid verifier."""
    verifier = secrets.token_urlsafe(120)[:length]
    assert len(verifier) == length
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def authorize_url(app, *, scope: str = "leads:read", challenge: str | None = None, **overrides) -> str:
    params = {
        "response_type": "code",
        "client_id": app.client_id,
        "redirect_uri": REDIRECT_URI,
        "scope": scope,
        "state": "st-" + secrets.token_hex(4),
    }
    if challenge is not None:
        params.update(code_challenge=challenge, code_challenge_method="S256")
    params.update(overrides)
    return "/oauth/authorize/?" + urlencode({k: v for k, v in params.items() if v is not None})


def query(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def consent_fields(html: str) -> dict[str, str]:
    """The consent form's inputs and the selected account, as a browser would submit them."""
    parser = _FormParser()
    parser.feed(html)
    return parser.fields


class _FormParser(HTMLParser):
    def __init__(self):
        super().__init__()
        self.fields: dict[str, str] = {}
        self._select: str | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "input" and attrs.get("name") and attrs.get("type") in ("hidden", None):
            self.fields[attrs["name"]] = attrs.get("value") or ""
        elif tag == "select":
            self._select = attrs.get("name")
        elif tag == "option" and self._select and (self._select not in self.fields or "selected" in attrs):
            self.fields[self._select] = attrs.get("value", "")

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None


def consent(client, app, *, account, scope: str = "leads:read", challenge: str, allow: bool = True, **overrides):
    """GET the consent screen, then POST it (Allow or Deny) for `account`; returns the POST's response."""
    url = authorize_url(app, scope=scope, challenge=challenge, **overrides)
    page = client.get(url)
    assert page.status_code == 200, page.content
    fields = consent_fields(page.content.decode())
    fields["account"] = str(account.pk)
    if allow:
        fields["allow"] = "true"
    return client.post(url, fields)


def obtain_code(client, app, *, account, scope: str = "leads:read") -> tuple[str, str]:
    """Consent as the logged-in user; returns (code, verifier)."""
    verifier, challenge = pkce_pair()
    response = consent(client, app, account=account, scope=scope, challenge=challenge)
    assert response.status_code == 302, response.content
    params = query(response["Location"])
    assert "code" in params, response["Location"]
    return params["code"], verifier


def exchange(client, app, code: str, verifier: str, *, secret: str | None = None, **extra):
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT_URI,
        "client_id": app.client_id,
        "code_verifier": verifier,
    }
    if secret:
        data["client_secret"] = secret
    data.update(extra)
    return client.post("/oauth/token/", {k: v for k, v in data.items() if v is not None})


def refresh(client, app, refresh_token: str, *, secret: str | None = None, **extra):
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": app.client_id, **extra}
    if secret:
        data["client_secret"] = secret
    return client.post("/oauth/token/", data)


def issue_token(client, app, user, account, scope: str = "leads:read", secret: str | None = None) -> dict:
    """The whole flow for `user` (logged in on `client`) in `account`; returns the token response."""
    client.force_login(user)
    code, verifier = obtain_code(client, app, account=account, scope=scope)
    response = exchange(client, app, code, verifier, secret=secret)
    assert response.status_code == 200, response.content
    client.logout()
    return response.json()
