"""DRF authentication with OAuth 2.0 access tokens: `Authorization: Bearer <token>` (§3).

An access token acts for one user in one account (the `account:<id>` scope chosen on the consent
screen, see accounts/scopes.py). At every request it may do what it was granted and what the user's
current role allows, no more, exactly like an API key: demoting the user shrinks it, removing the
membership or deactivating the user makes it 401. Tenancy and the account's rate-limit budget then
apply unchanged, since both work from `request.auth.account`.
"""

from __future__ import annotations

import hashlib

from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from oauth2_provider.models import get_access_token_model
from rest_framework import authentication, exceptions

from core.permissions import required_scope

from .actor import Actor
from .authentication import client_ip
from .models import Membership
from .scopes import ALL_SCOPES, effective_scopes, split_scopes
from .services import API_KEY_PREFIX

# oauthlib's tokens are 30 characters; anything far longer is not ours and is not hashed.
MAX_TOKEN_LENGTH = 512


def oauth_token_authenticate(*, raw_token: str, ip: str | None, uri: str | None = None) -> Actor | None:
    """Resolve a presented access token to an Actor, or None when it is unknown, revoked (DOT deletes
    revoked access tokens), expired, or its user is inactive or no longer in the token's account."""
    if not raw_token or len(raw_token) > MAX_TOKEN_LENGTH:
        return None
    checksum = hashlib.sha256(raw_token.encode()).hexdigest()
    token = (
        get_access_token_model().objects.select_related("user", "application").filter(token_checksum=checksum).first()
    )
    if token is None or token.is_expired() or token.application_id is None:
        return None
    user = token.user
    if user is None or not user.is_active:
        return None
    # RFC 8707: a token the client restricted to another resource server is not for this API.
    if token.resource and not (uri and token.allows_audience(uri)):
        return None
    granted, account_ids = split_scopes(token.scope)
    if len(account_ids) != 1 or account_ids[0] is None:
        return None
    membership = Membership.objects.select_related("account").filter(user=user, account_id=account_ids[0]).first()
    if membership is None:
        return None
    return Actor(
        user=user,
        account=membership.account,
        role=membership.role,
        scopes=effective_scopes(granted, membership.role),
        ip=ip,
        via="oauth",
        extra={"oauth_token_id": token.pk, "oauth_application_id": token.application_id},
    )


class OAuthTokenAuthentication(authentication.BaseAuthentication):
    """Resolves `Authorization: Bearer <access token>` to (user, Actor). Bearer values starting with
    `lb_` are API keys and belong to ApiKeyAuthentication, which runs first."""

    keeps_no_state = True  # one instance serves every request (core/api.py _components)

    def authenticate(self, request):
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return None
        raw = value.strip()
        if raw.startswith(API_KEY_PREFIX):
            return None
        if not raw:
            raise exceptions.AuthenticationFailed("Empty bearer token.")
        actor = oauth_token_authenticate(
            raw_token=raw, ip=client_ip(request), uri=request.build_absolute_uri(request.path)
        )
        if actor is None:
            raise exceptions.AuthenticationFailed("The access token is invalid, revoked or expired.")
        request._request.account = actor.account
        return actor.user, actor

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'


class OAuthTokenScheme(OpenApiAuthenticationExtension):
    """OpenAPI: the authorization code flow (PKCE S256), and the scope each operation needs."""

    target_class = "accounts.oauth.OAuthTokenAuthentication"
    name = "OAuth2"

    def get_security_definition(self, auto_schema):
        base = settings.LEADBASE_PUBLIC_URL.rstrip("/")
        return {
            "type": "oauth2",
            "description": (
                "OAuth 2.0 authorization code with PKCE (S256 only). The token acts for one user in the "
                "account chosen on the consent screen, never beyond the user's current role. See docs/oauth.md."
            ),
            "flows": {
                "authorizationCode": {
                    "authorizationUrl": f"{base}/oauth/authorize/",
                    "tokenUrl": f"{base}/oauth/token/",
                    "refreshUrl": f"{base}/oauth/token/",
                    "scopes": dict(ALL_SCOPES),
                }
            },
        }

    def get_security_requirement(self, auto_schema):
        return {self.name: [required_scope(auto_schema.view, auto_schema.method)]}
