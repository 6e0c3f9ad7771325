"""The OAuth 2.0 authorization server's policy, on top of django-oauth-toolkit and oauthlib (§3).

django-oauth-toolkit (DOT) does the protocol; the settings turn on its RFC 9700 gates. What the
libraries still accept is refused here:

- only the authorization code grant (and refresh tokens) exist: `LeadbaseOAuth2Server` wires no
  implicit, password, client-credentials or device grant, whatever an Application row says;
- PKCE with `S256` only: an authorization request without `code_challenge_method=S256` (oauthlib
  treats a missing method as `plain`) or with a malformed challenge is refused with
  `invalid_request` before the consent screen is shown;
- a `code_verifier` that is not 43 to 128 characters of `[A-Za-z0-9-._~]` (RFC 7636 §4.1) is refused
  with `invalid_request` at the token endpoint;
- a token acts for one user in one account: the consent screen adds `account:<id>` to the granted
  scopes, `validate_scopes` accepts it only for an account the user belongs to whose role covers
  every requested scope, refresh keeps it even when the client narrows the scopes, and code
  exchange and refresh fail with `invalid_grant` once the user has left that account or was
  deactivated.
"""

from __future__ import annotations

import re
from functools import partial

from oauth2_provider.oauth2_validators import OAuth2Validator
from oauthlib.oauth2 import WebApplicationServer
from oauthlib.oauth2.rfc6749 import errors
from oauthlib.oauth2.rfc6749.utils import scope_to_list

from .models import Account, Membership
from .scopes import ALL_SCOPES, ROLE_SCOPES, account_scope, split_scopes
from .services import audit_log

# RFC 7636 §4.1: code_verifier = 43*128unreserved; §4.2: an S256 challenge is 43 base64url characters.
CODE_VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
S256_CHALLENGE = re.compile(r"[A-Za-z0-9\-_]{43}")


class LeadbaseOAuth2Validator(OAuth2Validator):
    """DOT's validator, with scopes checked against the user's membership at consent time."""

    def save_authorization_code(self, client_id, code, request, *args, **kwargs) -> None:
        """The user allowed the app: keep the code, and record the consent in the account's audit log."""
        super().save_authorization_code(client_id, code, request, *args, **kwargs)
        granted, account_ids = split_scopes(request.scopes)
        account = Account.objects.filter(pk=account_ids[0]).first() if account_ids else None
        if account is not None:
            audit_log(
                account=account,
                action="oauth.authorized",
                user=request.user,
                object_type="oauth_app",
                object_id=request.client.pk,
                data={"name": request.client.name, "client_id": request.client.client_id, "scopes": granted},
            )

    def validate_scopes(self, client_id, scopes, client, request, *args, **kwargs) -> bool:
        granted, account_ids = split_scopes(scopes)
        if not granted or not set(granted) <= set(ALL_SCOPES):
            return False
        user = getattr(request, "user", None)
        if user is None:
            # The authorization request: the client asks for scopes, never for an account.
            return not account_ids
        # The consent (DOT sets the user): exactly one account the user belongs to, in a role
        # that may grant every scope, so a token never exceeds its user's role.
        if len(account_ids) != 1 or account_ids[0] is None:
            return False
        role = membership_role(user, account_ids[0])
        return role is not None and set(granted) <= ROLE_SCOPES[role]


def membership_role(user, account_id: int) -> str | None:
    return Membership.objects.filter(user=user, account_id=account_id).values_list("role", flat=True).first()


def require_s256_challenge(request) -> dict:
    """post_auth: PKCE with S256 and a well-formed challenge, or `invalid_request`."""
    if request.code_challenge_method != "S256":
        raise errors.UnsupportedCodeChallengeMethodError(
            description='code_challenge_method must be "S256"; "plain" is not accepted.', request=request
        )
    if not S256_CHALLENGE.fullmatch(request.code_challenge or ""):
        raise errors.InvalidRequestError(
            description="code_challenge must be the 43-character base64url SHA-256 of the code_verifier.",
            request=request,
        )
    return {}


def require_well_formed_verifier(request) -> None:
    """pre_token: the code_verifier is 43 to 128 unreserved characters (a missing one oauthlib refuses)."""
    verifier = request.code_verifier
    if verifier is not None and not CODE_VERIFIER.fullmatch(verifier):
        raise errors.InvalidRequestError(
            description="code_verifier must be 43 to 128 characters of A-Z a-z 0-9 - . _ ~ (RFC 7636).",
            request=request,
        )


def keep_account_scope(validator: OAuth2Validator, request) -> None:
    """post_token (refresh): a client narrowing the scopes on refresh keeps the token's account."""
    _, account_ids = split_scopes(request.scopes)
    if account_ids:
        return
    _, original = split_scopes(scope_to_list(validator.get_original_scopes(request.refresh_token, request)))
    request.scopes = [*request.scopes, *(account_scope(a) for a in original if a is not None)]


def require_membership(request) -> None:
    """post_token: the grant is bound to one account the (active) user still belongs to."""
    _, account_ids = split_scopes(request.scopes)
    user = request.user
    if len(account_ids) != 1 or account_ids[0] is None:
        raise errors.InvalidGrantError(description="The grant is not bound to an account.", request=request)
    if user is None or not user.is_active or membership_role(user, account_ids[0]) is None:
        raise errors.InvalidGrantError(
            description="The user no longer belongs to the account this grant was made in.", request=request
        )


class LeadbaseOAuth2Server(WebApplicationServer):
    """oauthlib's authorization-code-and-refresh-token server, with the checks above."""

    def __init__(
        self,
        request_validator,
        token_expires_in=None,
        token_generator=None,
        refresh_token_generator=None,
        **kwargs,  # DOT passes device-flow options too; this server has no device grant
    ):
        super().__init__(
            request_validator,
            token_generator=token_generator,
            token_expires_in=token_expires_in,
            refresh_token_generator=refresh_token_generator,
        )
        code = self.auth_grant.custom_validators
        code.post_auth.append(require_s256_challenge)
        code.pre_token.append(require_well_formed_verifier)
        code.post_token.append(require_membership)
        refresh = self.refresh_grant.custom_validators
        refresh.post_token.append(partial(keep_account_scope, request_validator))
        refresh.post_token.append(require_membership)
