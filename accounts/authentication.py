"""DRF authentication with API keys: `X-API-Key: <key>` or `Authorization: Bearer <key>`."""

from __future__ import annotations

from rest_framework import authentication, exceptions

from .services import api_key_authenticate


def client_ip(request) -> str | None:
    # Behind a proxy the deployer sets the real address with the proxy's own mechanism
    # (e.g. gunicorn's --forwarded-allow-ips); X-Forwarded-For is never trusted blindly.
    return request.META.get("REMOTE_ADDR") or None


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """Resolves the key to (user, Actor). Until OAuth tokens exist every Bearer value is taken to
    be an API key, so a malformed one is 401 invalid_credentials rather than "no credentials"."""

    def authenticate(self, request):
        raw = request.headers.get("X-API-Key")
        if raw is None:
            header = request.headers.get("Authorization", "")
            scheme, _, value = header.partition(" ")
            if scheme.lower() != "bearer":
                return None
            raw = value.strip()
        raw = raw.strip()
        if not raw:
            raise exceptions.AuthenticationFailed("Empty API key.")
        actor = api_key_authenticate(raw_key=raw, ip=client_ip(request))
        if actor is None:
            raise exceptions.AuthenticationFailed("The API key is invalid, revoked or expired.")
        request._request.account = actor.account
        return actor.user, actor

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'
