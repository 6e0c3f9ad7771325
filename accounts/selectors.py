"""Reads for accounts: members and API keys, always scoped to one account."""

from __future__ import annotations

from django.db.models import QuerySet

from core.errors import NotFound

from .models import Account, ApiKey, Membership


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
