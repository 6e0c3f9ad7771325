"""Reads of leads: the list (filters, sort, keyset page) and single lookups, always per account."""

from __future__ import annotations

import datetime
import uuid
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.db.models import QuerySet

from accounts.models import Account
from core.db import ModelColumns, hot_row
from core.errors import InvalidCursor, InvalidParameter, NotFound
from core.keyset import Page, RowCompare, SortKey, decode_cursor, encode_cursor, paginate, parse_limit, parse_sort
from webhooks.models import Event

from .filtersets import LeadFilterSet
from .models import Lead, Note, Segment

if TYPE_CHECKING:
    from core.backends.postgresql.base import PendingRow

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


def lead_sorted(qs: QuerySet[Lead], keys: tuple[SortKey, ...], *, account: Account) -> tuple[QuerySet, tuple]:
    """The queryset and keys a sort needs. A sort led by score reads the score and the id tie-breaker
    from LeadRank, whose (account, score, lead) index answers both the order and the page's row
    comparison (the lead row carries no score index, so rescoring stays heap-only); the filter on the
    rank's account makes the join inner and lets that index lead the plan."""
    if keys[0].field != "score":
        return qs, keys
    columns = {"score": "rank__score", "id": "rank__lead"}
    keys = tuple(replace(key, column=columns.get(key.field)) for key in keys)
    return qs.filter(rank__account_id=account.pk), keys


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
    sorted_qs, keys = lead_sorted(qs, keys, account=account)
    page = paginate(sorted_qs, keys=keys, limit=limit, cursor=params.get("cursor") or None, scope=f"leads:{account.pk}")
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


def lead_get(*, account: Account, lead_id, for_update: bool = False, read_ahead: LeadReadAhead | None = None) -> Lead:
    """One lead of the account, or NotFound (also for other accounts' ids and malformed ids). `read_ahead`:
    this read, sent earlier (`lead_read_ahead`); used only if it asked for the same account and lead."""
    try:
        pk = uuid.UUID(str(lead_id))
    except ValueError:
        pk = None
    if read_ahead is not None and (for_update or (read_ahead.account_id, read_ahead.pk) != (account.pk, pk)):
        read_ahead.pending.discard()
        read_ahead = None
    if pk is None:
        raise NotFound("No such lead.")
    if read_ahead is not None:
        lead = _lead_from_row(read_ahead.pending.row(), connections[DEFAULT_DB_ALIAS])
    elif for_update:
        lead = lead_queryset(account=account).select_for_update().filter(pk=pk).first()
    else:
        lead = _lead_by_id(account.pk, pk)
    if lead is None:
        raise NotFound("No such lead.")
    return lead


LEAD = ModelColumns(Lead, "l")
_lead_by_id_sql: dict[str, str] = {}


def _lead_by_id_query(conn, account_id: int, pk: uuid.UUID) -> tuple[str, list]:
    sql = _lead_by_id_sql.get(conn.vendor)
    if sql is None:
        q = conn.ops.quote_name
        sql = _lead_by_id_sql[conn.vendor] = (
            f"SELECT {LEAD.select(conn)} FROM {q(Lead._meta.db_table)} {q('l')} "  # noqa: S608
            f"WHERE {q('l')}.{q('account_id')} = %s AND {q('l')}.{q('id')} = %s"
        )
    return sql, [account_id, Lead._meta.pk.get_db_prep_value(pk, conn)]


def _lead_from_row(row, conn) -> Lead | None:
    return None if row is None else LEAD.instance(LEAD.convert(row, conn), conn.alias)


def _lead_by_id(account_id: int, pk: uuid.UUID) -> Lead | None:
    """`Lead.objects.filter(account_id=…, pk=…)` written by hand: the hottest read of the API (every
    `GET /leads/{id}`), where compiling the queryset cost twice what running it does (core/db.py)."""
    conn = connections[DEFAULT_DB_ALIAS]  # once: each attribute read through the proxy looks it up again
    return _lead_from_row(hot_row(conn, *_lead_by_id_query(conn, account_id, pk)), conn)


@dataclass(frozen=True)
class LeadReadAhead:
    """One lead's read, sent before the request had finished authenticating (`lead_read_ahead`)."""

    account_id: int
    pk: uuid.UUID
    pending: PendingRow


def lead_read_ahead(*, account_id: int, lead_id) -> LeadReadAhead | None:
    """Send the read of one of this account's leads now and collect it later with `lead_get(read_ahead=…)`,
    so that PostgreSQL runs it while the request waits for Redis. `GET /leads/{id}` does this once the
    API key names its account and before the Redis round trip that confirms the key and spends the
    budget (accounts/credentials.py): one wait for both instead of one after the other. Nothing is read
    from the row unless that confirmation comes and names the same account; otherwise it is dropped.
    None when the id is malformed or the database cannot send a read ahead (SQLite, prepared statements
    off), or sending failed: the read proper then runs as usual, and meets any error itself."""
    try:
        pk = uuid.UUID(str(lead_id))
    except ValueError:
        return None
    conn = connections[DEFAULT_DB_ALIAS]
    send = getattr(conn, "send_hot_row", None)
    if send is None:
        return None
    try:
        pending = send(*_lead_by_id_query(conn, account_id, pk))
    except DatabaseError:
        return None
    return None if pending is None else LeadReadAhead(account_id, pk, pending)


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


# --- activity (the lead's timeline) ------------------------------------------------------------

# The event types a lead's timeline shows; lead.deleted never shows (a deleted lead has no page).
ACTIVITY_EVENT_TYPES = ("lead.created", "lead.updated", "lead.scored")
ACTIVITY_NOTE = "note.added"
# Both sources sort newest first by (created_at, source rank, id); the rank breaks a tie between an
# event and a note written in the same microsecond, so the merged order is total and a cursor exact.
_ACTIVITY_RANK = {"event": 0, "note": 1}
_ACTIVITY_KEYS = (SortKey("created_at", True), SortKey("rank", True), SortKey("id", True))


@dataclass(frozen=True)
class ActivityItem:
    """One entry of a lead's timeline: an event (`event` set) or a note (`note` set)."""

    type: str
    created_at: datetime.datetime
    event: Event | None = None
    note: Note | None = None

    @property
    def changes(self) -> dict | None:
        return self.event.data.get("changes") if self.event is not None and self.type == "lead.updated" else None

    @property
    def score(self) -> dict | None:
        if self.event is None or self.type != "lead.scored":
            return None
        data = self.event.data
        return {
            "previous": data.get("previous_score"),
            "current": data.get("score"),
            "breakdown": data.get("score_breakdown") or [],
        }

    def _position(self) -> list:
        source = "event" if self.event is not None else "note"
        return [self.created_at, _ACTIVITY_RANK[source], (self.event or self.note).pk]


def _activity_after(qs: QuerySet, source: str, position: list | None) -> QuerySet:
    """Rows of one source strictly after `position` in the merged newest-first order. The rank is a
    constant per source, so the condition reduces to a filter the source's (…, created_at, id) index
    answers: a row comparison when the cursor row came from this source, else a bound on created_at."""
    if position is None:
        return qs
    created_at, rank, pk = position
    own = _ACTIVITY_RANK[source]
    if own == rank:
        return qs.filter(RowCompare(["created_at", "id"], [created_at, pk], "<"))
    return qs.filter(created_at__lte=created_at) if own < rank else qs.filter(created_at__lt=created_at)


def lead_activity(*, account: Account, lead_id, cursor: str | None = None, limit: int | None = None) -> Page:
    """The lead's timeline, newest first: its events (lead.created, lead.updated with the changed
    fields before and after, lead.scored) merged with its notes, keyset-paginated with a signed cursor.

    Three queries whatever the page size: the lead (NotFound for another account's lead), then at most
    `limit + 1` rows of each source after the cursor, each read from its composite index
    (event_acct_lead_created_idx, note_acct_lead_created_idx), merged here."""
    if limit is None:
        limit = settings.LEADBASE_LIST_DEFAULT_LIMIT
    lead = lead_get(account=account, lead_id=lead_id)
    scope = f"activity:{account.pk}:{lead.pk}"
    position = decode_cursor(cursor, scope=scope, keys=_ACTIVITY_KEYS) if cursor else None
    if position is not None and not (
        isinstance(position[0], datetime.datetime)
        and position[1] in _ACTIVITY_RANK.values()
        and isinstance(position[2], int)
    ):
        raise InvalidCursor("The cursor is malformed.")
    events = _activity_after(
        Event.objects.for_account(account).filter(lead_id=lead.pk, type__in=ACTIVITY_EVENT_TYPES), "event", position
    ).order_by("-created_at", "-id")[: limit + 1]
    notes = (
        _activity_after(Note.objects.for_account(account).filter(lead=lead), "note", position)
        .select_related("author")
        .order_by("-created_at", "-id")[: limit + 1]
    )
    items = [ActivityItem(type=e.type, created_at=e.created_at, event=e) for e in events]
    items += [ActivityItem(type=ACTIVITY_NOTE, created_at=n.created_at, note=n) for n in notes]
    items.sort(key=ActivityItem._position, reverse=True)
    has_more = len(items) > limit
    items = items[:limit]
    next_cursor = (
        encode_cursor(scope=scope, keys=_ACTIVITY_KEYS, row_values=items[-1]._position()) if has_more else None
    )
    return Page(items=items, next_cursor=next_cursor, has_more=has_more)
