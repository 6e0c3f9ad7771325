"""Reads for accounts: members, API keys and OAuth apps, always scoped to one account; a user's
OAuth authorizations."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Q, QuerySet
from django.utils import timezone
from oauth2_provider.models import (
    AbstractApplication,
    get_access_token_model,
    get_application_model,
    refresh_token_expire_timedelta,
)

from core.errors import NotFound

from .models import Account, ApiKey, Membership, User
from .scopes import split_scopes


def member_list(*, account: Account) -> QuerySet[Membership]:
    return Membership.objects.for_account(account).select_related("user").order_by("created_at", "id")


def member_get(*, account: Account, membership_id: int) -> Membership:
    membership = member_list(account=account).filter(pk=membership_id).first()
    if membership is None:
        raise NotFound("No such member.")
    return membership


def api_key_list(*, account: Account) -> QuerySet[ApiKey]:
    return ApiKey.objects.for_account(account).select_related("created_by").order_by("-created_at", "-id")


def api_key_get(*, account: Account, key_id: int) -> ApiKey:
    key = api_key_list(account=account).filter(pk=key_id).first()
    if key is None:
        raise NotFound("No such API key.")
    return key


def oauth_app_list(*, account: Account) -> QuerySet[AbstractApplication]:
    """The OAuth apps the account registered (operators' apps from Django admin belong to no account)."""
    return (
        get_application_model()
        .objects.filter(registration__account=account)
        .select_related("registration__created_by")
        .order_by("-created", "-id")
    )


def oauth_app_get(*, account: Account, app_id: int) -> AbstractApplication:
    """One of the account's OAuth apps, or NotFound (another account's app is not found either)."""
    app = oauth_app_list(account=account).filter(pk=app_id).first()
    if app is None:
        raise NotFound("No such OAuth app.")
    return app


@dataclass(frozen=True)
class OAuthAuthorization:
    """A user's live authorization of one app in one account: what its tokens may do there."""

    application: AbstractApplication
    account: Account
    scopes: list[str]
    token_issued_at: datetime  # the newest live token: the last consent or refresh


def oauth_authorization_list(*, user: User, account: Account | None = None) -> list[OAuthAuthorization]:
    """The apps `user` has authorised and that still hold a live access or refresh token, one entry per
    (app, account), in `account` only when given; accounts the user has left are not listed (their
    tokens no longer work)."""
    now = timezone.now()
    live = Q(expires__gt=now)
    refreshable = Q(refresh_token__isnull=False, refresh_token__revoked__isnull=True)
    idle_expiry = refresh_token_expire_timedelta()
    if idle_expiry:
        refreshable &= Q(expires__gt=now - idle_expiry)
    tokens = (
        get_access_token_model()
        .objects.filter(user=user, application__isnull=False)
        .filter(live | refreshable)
        .select_related("application", "application__registration__account")
        .order_by("created", "id")
    )
    memberships = Membership.objects.filter(user=user).select_related("account")
    if account is not None:
        memberships = memberships.filter(account=account)
    accounts = {m.account_id: m.account for m in memberships}
    grouped: dict[tuple[int, int], dict] = {}
    for token in tokens:
        granted, account_ids = split_scopes(token.scope)
        if len(account_ids) != 1 or account_ids[0] not in accounts:
            continue
        entry = grouped.setdefault(
            (token.application_id, account_ids[0]),
            {"application": token.application, "scopes": set(), "issued": token.created},
        )
        entry["scopes"].update(granted)
        entry["issued"] = max(entry["issued"], token.created)
    return [
        OAuthAuthorization(
            application=entry["application"],
            account=accounts[account_id],
            scopes=sorted(entry["scopes"]),
            token_issued_at=entry["issued"],
        )
        for (_, account_id), entry in sorted(
            grouped.items(), key=lambda item: (item[1]["application"].name.lower(), item[0])
        )
    ]


def oauth_authorization_get(*, user: User, account: Account, app_id: int) -> OAuthAuthorization:
    """The user's live authorization of one app in `account`, or NotFound."""
    for authorization in oauth_authorization_list(user=user, account=account):
        if authorization.application.pk == int(app_id):
            return authorization
    raise NotFound("No such authorized app.")
