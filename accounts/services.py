"""Writes for accounts, memberships, API keys and OAuth apps. Every security-relevant change is audited."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from datetime import datetime
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from oauth2_provider.generators import generate_client_secret
from oauth2_provider.models import (
    AbstractApplication,
    get_access_token_model,
    get_application_model,
    get_grant_model,
    revoke_access_token,
)

from core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed, field_error

from . import credentials
from .actor import Actor
from .models import Account, ApiKey, AuditLogEntry, Membership, OAuthAppRegistration, Plan, Role, User
from .scopes import ALL_SCOPES, ROLE_SCOPES, split_scopes

API_KEY_PREFIX = "lb_"
# 32 random bytes -> 43 URL-safe characters after "lb_".
API_KEY_RANDOM_BYTES = 32
# "lb_" plus the first 8 random characters: enough to find the row, useless to an attacker.
API_KEY_LOOKUP_LENGTH = 11


def hash_api_key(raw_key: str) -> str:
    """SHA-256 of the full key. Keys carry 256 bits of entropy, so a slow hash adds nothing."""
    return hashlib.sha256(raw_key.encode()).hexdigest()


def audit_log(
    *,
    account: Account,
    action: str,
    actor: Actor | None = None,
    user: User | None = None,
    object_type: str = "",
    object_id: str = "",
    data: dict | None = None,
) -> AuditLogEntry:
    """Record a security-relevant action in the account's audit log."""
    return AuditLogEntry.objects.create(
        account=account,
        action=action,
        actor_user=actor.user if actor else user,
        actor_api_key=actor.api_key if actor else None,
        object_type=object_type,
        object_id=str(object_id),
        data=data or {},
        ip=actor.ip if actor else None,
    )


def account_create(*, slug: str, name: str | None = None, plan: str = Plan.FREE, owner: User) -> Account:
    """Create an account with `owner` as its first owner."""
    if plan not in Plan.values:
        raise ValidationFailed(f"Unknown plan {plan!r}", errors=[field_error("plan", "Choose free or pro.")])
    with transaction.atomic():
        try:
            with transaction.atomic():
                account = Account.objects.create(slug=slug, name=name or slug, plan=plan)
        except IntegrityError as exc:
            raise Conflict(f"An account with slug {slug!r} exists.") from exc
        Membership.objects.create(account=account, user=owner, role=Role.OWNER)
        audit_log(account=account, action="account.created", user=owner, object_type="account", object_id=account.pk)
    return account


def _validate_scopes(scopes: list[str], role: str) -> list[str]:
    unknown = sorted(set(scopes) - set(ALL_SCOPES))
    if unknown:
        raise ValidationFailed(
            f"Unknown scopes: {', '.join(unknown)}",
            errors=[field_error("scopes", f"Unknown scope {s!r}; use {', '.join(ALL_SCOPES)}.") for s in unknown],
        )
    if not scopes:
        raise ValidationFailed("A key needs at least one scope.", errors=[field_error("scopes", "Required.")])
    beyond = sorted(set(scopes) - ROLE_SCOPES[role])
    if beyond:
        raise PermissionDenied(f"Your role ({role}) cannot grant: {', '.join(beyond)}.")
    return sorted(set(scopes))


def api_key_create(
    *,
    account: Account,
    created_by: User,
    name: str,
    scopes: list[str],
    expires_at: datetime | None = None,
    actor: Actor | None = None,
) -> tuple[ApiKey, str]:
    """Create a key; returns the row and the full key, which is never retrievable again."""
    membership = Membership.objects.filter(account=account, user=created_by).first()
    if membership is None:
        raise PermissionDenied("The key's creator is not a member of this account.")
    scopes = _validate_scopes(list(scopes), membership.role)
    if expires_at is not None and expires_at <= timezone.now():
        raise ValidationFailed(
            "expires_at is in the past.", errors=[field_error("expires_at", "Must be in the future.")]
        )
    raw = API_KEY_PREFIX + secrets.token_urlsafe(API_KEY_RANDOM_BYTES)
    with transaction.atomic():
        key = ApiKey.objects.create(
            account=account,
            created_by=created_by,
            name=name,
            scopes=scopes,
            prefix=raw[:API_KEY_LOOKUP_LENGTH],
            key_hash=hash_api_key(raw),
            expires_at=expires_at,
        )
        audit_log(
            account=account,
            action="api_key.created",
            actor=actor,
            user=created_by,
            object_type="api_key",
            object_id=key.pk,
            data={"name": name, "scopes": scopes, "prefix": key.prefix},
        )
    return key, raw


def api_key_revoke(*, account: Account, key_id: int, actor: Actor | None = None, user: User | None = None) -> ApiKey:
    """Revoke one key of the account (idempotent: revoking twice keeps the first time)."""
    with transaction.atomic():
        key = ApiKey.objects.for_account(account).select_for_update().filter(pk=key_id).first()
        if key is None:
            raise NotFound("No such API key.")
        if key.revoked_at is None:
            key.revoked_at = timezone.now()
            key.save(update_fields=["revoked_at"])
            audit_log(
                account=account,
                action="api_key.revoked",
                actor=actor,
                user=user,
                object_type="api_key",
                object_id=key.pk,
                data={"prefix": key.prefix},
            )
    return key


def api_key_well_formed(raw_key: str) -> bool:
    return raw_key.startswith(API_KEY_PREFIX) and API_KEY_LOOKUP_LENGTH + 8 <= len(raw_key) <= 200


def api_key_admit(
    *, raw_key: str, ip: str | None, spend: bool = True, read_ahead: Callable[[int], None] | None = None
) -> credentials.Admission | None:
    """Authenticate a presented key, record its use and (`spend`) spend one request of its account's
    budget: with a cached key one Redis round trip and no query (accounts/credentials.py). None when the
    key is malformed, unknown, revoked, expired or orphaned. `read_ahead(account_id)`: see `credentials.admit`."""
    if not api_key_well_formed(raw_key):
        return None
    return credentials.admit(
        raw_key=raw_key,
        prefix=raw_key[:API_KEY_LOOKUP_LENGTH],
        key_hash=hash_api_key(raw_key),
        ip=ip,
        spend=spend,
        read_ahead=read_ahead,
    )


def api_key_authenticate(*, raw_key: str, ip: str | None) -> Actor | None:
    """Resolve a presented key to an Actor, or None when it is unknown, revoked, expired or orphaned.
    Spends no budget (callers that need it, like MCP, spend it themselves)."""
    admission = api_key_admit(raw_key=raw_key, ip=ip, spend=False)
    return admission.actor if admission is not None else None


def member_add(*, account: Account, email: str, role: str, actor: Actor) -> Membership:
    """Add a user (created without a password if new) to the account with a role."""
    _check_role_grant(actor, role)
    email = email.strip().lower()
    with transaction.atomic():
        user = User.objects.filter(email=email).first() or User.objects.create_user(email=email)
        try:
            with transaction.atomic():
                membership = Membership.objects.create(account=account, user=user, role=role)
        except IntegrityError as exc:
            raise Conflict(f"{email} is already a member of this account.") from exc
        audit_log(
            account=account,
            action="member.added",
            actor=actor,
            object_type="membership",
            object_id=membership.pk,
            data={"email": email, "role": role},
        )
    return membership


def _check_role_grant(actor: Actor, role: str) -> None:
    if role not in Role.values:
        raise ValidationFailed(f"Unknown role {role!r}", errors=[field_error("role", "Choose owner, admin or member.")])
    if role == Role.OWNER and actor.role != Role.OWNER:
        raise PermissionDenied("Only an owner can make another owner.")


def _lock_account(account: Account) -> None:
    # Serialises role changes and removals per account: without it two owners demoting each
    # other at once both count two owners and the account is left with none.
    Account.objects.select_for_update().filter(pk=account.pk).values_list("pk", flat=True).first()


def _ensure_not_last_owner(account: Account, membership: Membership) -> None:
    if membership.role == Role.OWNER:
        owners = Membership.objects.for_account(account).filter(role=Role.OWNER).count()
        if owners <= 1:
            raise Conflict("An account needs at least one owner.")


def member_update(*, account: Account, membership_id: int, role: str, actor: Actor) -> Membership:
    """Change a member's role; the last owner cannot be demoted."""
    _check_role_grant(actor, role)
    with transaction.atomic():
        _lock_account(account)
        membership = (
            Membership.objects.for_account(account)
            .select_for_update()
            .select_related("user")
            .filter(pk=membership_id)
            .first()
        )
        if membership is None:
            raise NotFound("No such member.")
        if membership.role == Role.OWNER and actor.role != Role.OWNER:
            raise PermissionDenied("Only an owner can change an owner's role.")
        if role != Role.OWNER:
            _ensure_not_last_owner(account, membership)
        old = membership.role
        membership.role = role
        membership.save(update_fields=["role"])
        audit_log(
            account=account,
            action="member.role_changed",
            actor=actor,
            object_type="membership",
            object_id=membership.pk,
            data={"email": membership.user.email, "from": old, "to": role},
        )
    return membership


def member_remove(*, account: Account, membership_id: int, actor: Actor) -> None:
    """Remove a member; the last owner cannot be removed."""
    with transaction.atomic():
        _lock_account(account)
        membership = (
            Membership.objects.for_account(account)
            .select_for_update()
            .select_related("user")
            .filter(pk=membership_id)
            .first()
        )
        if membership is None:
            raise NotFound("No such member.")
        if membership.role == Role.OWNER and actor.role != Role.OWNER:
            raise PermissionDenied("Only an owner can remove an owner.")
        _ensure_not_last_owner(account, membership)
        membership.delete()
        audit_log(
            account=account,
            action="member.removed",
            actor=actor,
            object_type="membership",
            object_id=membership_id,
            data={"email": membership.user.email},
        )


def account_update(*, account: Account, name: str, actor: Actor) -> Account:
    """Rename the account."""
    account.name = name
    account.save(update_fields=["name"])
    audit_log(
        account=account,
        action="account.updated",
        actor=actor,
        object_type="account",
        object_id=account.pk,
        data={"name": name},
    )
    return account


# --- OAuth 2.0 apps and authorizations ---------------------------------------------------------

OAUTH_APP_MAX_REDIRECT_URIS = 10
OAUTH_APP_MAX_REDIRECT_URI_LENGTH = 2000


def _oauth_redirect_uri_errors(redirect_uris: list[str]) -> list[dict[str, str]]:
    """Our rules on top of DOT's (scheme allowed in this run mode, host present): exact URIs only, so
    no fragment, no credentials, no wildcard, no whitespace."""
    problems = []
    if not redirect_uris:
        problems.append(field_error("redirect_uris", "At least one redirect URI is required."))
    if len(redirect_uris) > OAUTH_APP_MAX_REDIRECT_URIS:
        problems.append(field_error("redirect_uris", f"At most {OAUTH_APP_MAX_REDIRECT_URIS} redirect URIs."))
    for index, uri in enumerate(redirect_uris):
        field = f"redirect_uris[{index}]"
        if len(uri) > OAUTH_APP_MAX_REDIRECT_URI_LENGTH or any(c.isspace() for c in uri):
            problems.append(field_error(field, "One URL without whitespace, at most 2000 characters."))
        elif "#" in uri or "*" in uri or "@" in urlsplit(uri).netloc:
            problems.append(field_error(field, "A redirect URI has no fragment, wildcard or credentials."))
    return problems


def oauth_app_create(
    *, account: Account, actor: Actor, name: str, redirect_uris: list[str], client_type: str = "confidential"
) -> tuple[AbstractApplication, str | None]:
    """Register an OAuth app for the account (authorization code grant only). Returns the app and, for a
    confidential client, its client secret: stored hashed, shown only this once."""
    Application = get_application_model()
    if client_type not in (Application.CLIENT_CONFIDENTIAL, Application.CLIENT_PUBLIC):
        raise ValidationFailed(
            f"Unknown client_type {client_type!r}",
            errors=[field_error("client_type", "Choose confidential or public.")],
        )
    redirect_uris = [uri.strip() for uri in redirect_uris]
    problems = _oauth_redirect_uri_errors(redirect_uris)
    if problems:
        raise ValidationFailed("Invalid redirect URIs.", errors=problems)
    secret = generate_client_secret() if client_type == Application.CLIENT_CONFIDENTIAL else ""
    app = Application(
        name=name,
        user=actor.user,
        client_type=client_type,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris=" ".join(redirect_uris),
        client_secret=secret,
        hash_client_secret=True,
        skip_authorization=False,
    )
    try:
        app.full_clean()
    except DjangoValidationError as exc:
        errors = [field_error(name, str(msg)) for name, messages in exc.message_dict.items() for msg in messages]
        raise ValidationFailed("; ".join(e["message"] for e in errors[:3]), errors=errors) from exc
    with transaction.atomic():
        app.save()
        OAuthAppRegistration.objects.create(account=account, application=app, created_by=actor.user)
        audit_log(
            account=account,
            action="oauth_app.created",
            actor=actor,
            object_type="oauth_app",
            object_id=app.pk,
            data={"name": name, "client_id": app.client_id, "client_type": client_type, "redirect_uris": redirect_uris},
        )
    return app, (secret or None)


def oauth_app_delete(*, account: Account, app_id: int, actor: Actor) -> None:
    """Delete one of the account's OAuth apps; every token and pending code issued to it goes with it."""
    with transaction.atomic():
        registration = (
            OAuthAppRegistration.objects.for_account(account)
            .select_related("application")
            .filter(application_id=app_id)
            .first()
        )
        if registration is None:
            raise NotFound("No such OAuth app.")
        app = registration.application
        data = {"name": app.name, "client_id": app.client_id}
        app.delete()
        audit_log(
            account=account,
            action="oauth_app.deleted",
            actor=actor,
            object_type="oauth_app",
            object_id=app_id,
            data=data,
        )


def oauth_authorization_revoke(
    *, user: User, app_id: int, account: Account | None = None, actor: Actor | None = None
) -> int:
    """Withdraw what `user` authorised `app_id` to do, in `account` or in every account: its access
    and refresh tokens are revoked and its unused codes deleted. Returns the number of tokens revoked."""
    from .selectors import oauth_authorization_list

    app_id = int(app_id)
    live = [a for a in oauth_authorization_list(user=user, account=account) if a.application.pk == app_id]
    if not live:
        raise NotFound("No such authorized app.")
    account_ids = {a.account.pk for a in live}

    def in_scope(scope: str) -> bool:
        return any(a in account_ids for a in split_scopes(scope)[1])

    with transaction.atomic():
        tokens = [
            t for t in get_access_token_model().objects.filter(user=user, application_id=app_id) if in_scope(t.scope)
        ]
        for token in tokens:
            revoke_access_token(token)  # revokes the bound refresh token too
        grants = [g.pk for g in get_grant_model().objects.filter(user=user, application_id=app_id) if in_scope(g.scope)]
        get_grant_model().objects.filter(pk__in=grants).delete()
        for authorization in live:
            audit_log(
                account=authorization.account,
                action="oauth.authorization_revoked",
                actor=actor,
                user=user,
                object_type="oauth_app",
                object_id=app_id,
                data={"name": authorization.application.name, "client_id": authorization.application.client_id},
            )
    return len(tokens)
