"""Reads of leads: the list (filters, sort, keyset page) and single lookups, always per account."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.conf import settings
from django.db.models import QuerySet

from accounts.models import Account
from core.errors import InvalidParameter, NotFound
from core.keyset import Page, SortKey, paginate, parse_limit, parse_sort

from .filtersets import LeadFilterSet
from .models import Lead, Note, Segment

# sortable field -> nullable (NULLs sort as if larger than every value)
LEAD_SORTS: dict[str, bool] = {
    "created_at": False,
    "updated_at": False,
    "score": False,
    "email": True,
    "company": False,
    "last_name": False,
}
LEAD_DEFAULT_SORT = "-created_at"


def lead_queryset(*, account: Account) -> QuerySet[Lead]:
    return Lead.objects.for_account(account)


def lead_filter(*, account: Account, params, extra_allowed: frozenset[str] = frozenset()) -> QuerySet[Lead]:
    """The account's leads narrowed by the strict LeadFilterSet (no ordering, no page).
    `extra_allowed` names parameters a caller understands besides the filters (e.g. an export's `format`)."""
    return LeadFilterSet.apply(params, lead_queryset(account=account), extra_allowed=extra_allowed, account=account)


def lead_sort_keys(raw: str | None) -> tuple[SortKey, ...]:
    return parse_sort(raw, allowed=LEAD_SORTS, default=LEAD_DEFAULT_SORT)


@dataclass
class LeadPage(Page):
    total_count: int | None = None


def lead_list(*, account: Account, params) -> LeadPage:
    """One page of the account's leads: filters, sort, cursor, limit and optional count."""
    keys = lead_sort_keys(params.get("sort"))
    limit = parse_limit(
        params.get("limit"), default=settings.LEADBASE_LIST_DEFAULT_LIMIT, maximum=settings.LEADBASE_LIST_MAX_LIMIT
    )
    count = _parse_bool_param(params.get("count"), "count")
    qs = lead_filter(account=account, params=params)
    page = paginate(qs, keys=keys, limit=limit, cursor=params.get("cursor") or None, scope=f"leads:{account.pk}")
    return LeadPage(
        items=page.items,
        next_cursor=page.next_cursor,
        has_more=page.has_more,
        total_count=qs.count() if count else None,
    )


def _parse_bool_param(raw: str | None, name: str) -> bool:
    if raw in (None, ""):
        return False
    value = raw.strip().lower()
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise InvalidParameter(
        f"{name} must be true or false.", errors=[{"field": name, "code": "invalid", "message": "Use true or false."}]
    )


def lead_get(*, account: Account, lead_id, for_update: bool = False) -> Lead:
    """One lead of the account, or NotFound (also for other accounts' ids and malformed ids)."""
    try:
        pk = uuid.UUID(str(lead_id))
    except ValueError as exc:
        raise NotFound("No such lead.") from exc
    qs = lead_queryset(account=account)
    if for_update:
        qs = qs.select_for_update()
    lead = qs.filter(pk=pk).first()
    if lead is None:
        raise NotFound("No such lead.")
    return lead


def note_list(*, account: Account, lead_id) -> QuerySet[Note]:
    """The notes of one of the account's leads, oldest first (NotFound for another account's lead)."""
    lead = lead_get(account=account, lead_id=lead_id)
    return Note.objects.for_account(account).filter(lead=lead).order_by("created_at", "id")


def segment_list(*, account: Account) -> QuerySet[Segment]:
    return Segment.objects.for_account(account).order_by("name", "id")


def segment_get(*, account: Account, segment_id) -> Segment:
    """One of the account's segments, or NotFound (also for other accounts' and malformed ids)."""
    text = str(segment_id)
    valid = text.isascii() and text.isdigit() and len(text) <= 18
    segment = segment_list(account=account).filter(pk=int(text)).first() if valid else None
    if segment is None:
        raise NotFound("No such segment.")
    return segment
