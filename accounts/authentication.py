"""DRF authentication with API keys: `X-API-Key: <key>` or `Authorization: Bearer <key>`."""

from __future__ import annotations

from rest_framework import authentication, exceptions

from .services import API_KEY_PREFIX, api_key_admit


def client_ip(request) -> str | None:
    # Behind a proxy the deployer sets the real address with the proxy's own mechanism
    # (e.g. gunicorn's --forwarded-allow-ips); X-Forwarded-For is never trusted blindly.
    return request.META.get("REMOTE_ADDR") or None


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """Resolves the key to (user, Actor). `X-API-Key` is always a key; a Bearer value is a key only
    when it starts with `lb_`, any other Bearer value is left to OAuthTokenAuthentication (which
    answers 401 invalid_credentials for a malformed one, never "no credentials")."""

    keeps_no_state = True  # one instance serves every request (core/api.py _components)

    def authenticate(self, request):
        raw = request.headers.get("X-API-Key")
        if raw is None:
            header = request.headers.get("Authorization", "")
            scheme, _, value = header.partition(" ")
            if scheme.lower() != "bearer":
                return None
            raw = value.strip()
            if not raw.startswith(API_KEY_PREFIX):
                return None
        raw = raw.strip()
        if not raw:
            raise exceptions.AuthenticationFailed("Empty API key.")
        # Authenticated and the account's budget spent in one go (one Redis round trip for a cached
        # key); enforce_rate_limit then finds the decision on the request and refuses if it says so.
        admission = api_key_admit(
            raw_key=raw, ip=client_ip(request), spend=True, read_ahead=getattr(request._request, "read_ahead", None)
        )
        if admission is None:
            raise exceptions.AuthenticationFailed("The API key is invalid, revoked or expired.")
        actor = admission.actor
        request._request.account = actor.account
        if admission.decision is not None:
            request._request.rate_decision = admission.decision
        return actor.user, actor

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'
