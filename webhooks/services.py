"""Events (written in the caller's transaction) and webhook delivery from the outbox."""

from __future__ import annotations

import json
import logging
import random
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from accounts.actor import Actor
from accounts.models import Account
from core.errors import NotFound, ValidationFailed, field_error

from . import http, signing
from .models import DeliveryAttempt, DeliveryStatus, Event, EventType, WebhookDelivery, WebhookSubscription
from .security import UnsafeTarget, resolve_target, validate_webhook_url

logger = logging.getLogger("leadbase.webhooks")

USER_AGENT = "Leadbase-Webhooks/1"
DELIVERY_BATCH = 50
MAX_BACKOFF_SECONDS = 6 * 3600
FEED_LOCK_CLASS = 0x1EAD  # pg_advisory_xact_lock(FEED_LOCK_CLASS, account_id): see _lock_feed
SUBSCRIPTION_EVENT_TYPES = [t for t in EventType.values if t != EventType.WEBHOOK_TEST]


# --- events ------------------------------------------------------------------------------------


def events_record(*, account: Account, type: str, items: Iterable[tuple[Any, dict]]) -> list[Event]:
    """Write one event per (lead_id, data) in the caller's transaction, with its deliveries.

    Two INSERTs whatever the number of items (events, then deliveries for the subscriptions that
    want this type), plus one read of the subscriptions. Delivery is kicked off after commit; if
    that never happens (the process died, the broker was down) the sweeper finds the rows.
    """
    events = [Event(account=account, type=type, lead_id=lead_id, data=data) for lead_id, data in items]
    if not events:
        return []
    with transaction.atomic(savepoint=False):  # the caller's transaction if any: the lock lasts until its commit
        _lock_feed(account.pk)
        Event.objects.bulk_create(events)
        if connection.vendor != "postgresql" or any(e.pk is None for e in events):
            _fill_ids(account, events)
        events_fan_out(account=account, type=type, event_ids=[e.pk for e in events])
    return events


def events_fan_out(*, account: Account, type: str, event_ids: list[int]) -> None:
    """Deliveries (outbox rows) of these new events for every active subscription that wants `type`,
    in one INSERT, and a delivery run kicked off after commit. For writers that insert events
    themselves in SQL (a rescoring chunk); they hold the feed lock (`feed_lock_keys`) already."""
    subscriptions = [s for s in _active_subscriptions(account) if s.wants(type)]
    if subscriptions and event_ids:
        now = timezone.now()
        WebhookDelivery.objects.bulk_create(
            [
                WebhookDelivery(subscription=s, event_id=event_id, next_attempt_at=now)
                for s in subscriptions
                for event_id in event_ids
            ]
        )
        transaction.on_commit(_kick_delivery)


def feed_lock_keys(*, account_id: int) -> tuple[int, int]:
    """The two keys of the account's feed lock (`pg_advisory_xact_lock(class, key)`), for an event
    INSERT written in SQL that takes the lock itself (see `_lock_feed`)."""
    return FEED_LOCK_CLASS, account_id & 0x7FFFFFFF


def _lock_feed(account_id: int) -> None:
    """The feed pages by event id, so ids must become visible in id order: ids are drawn from the
    sequence at INSERT but seen at COMMIT, and a reader whose cursor passed id 101 while id 100 was
    still uncommitted would never see 100. On PostgreSQL an account's event writers therefore take
    turns from their first event to their commit (a transaction-scoped advisory lock; events are
    written at the end of a change, so only that tail is serialized). SQLite has one writer anyway."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", list(feed_lock_keys(account_id=account_id)))


def _fill_ids(account: Account, events: list[Event]) -> None:
    """Backends that do not return ids from a bulk insert: read back the newest ids in order."""
    ids = list(Event.objects.for_account(account).order_by("-id").values_list("id", flat=True)[: len(events)])[::-1]
    for event, pk in zip(events, ids, strict=True):
        event.pk = pk


def _active_subscriptions(account: Account) -> list[WebhookSubscription]:
    return list(WebhookSubscription.objects.for_account(account).filter(active=True))


def _kick_delivery() -> None:
    from .tasks import deliver_due

    try:
        deliver_due.delay()
    except Exception:  # the broker is down: the outbox keeps the rows, the sweeper delivers them later
        logger.warning("could not enqueue webhook delivery; the sweeper will pick it up", exc_info=True)


def lead_changes(changes: dict[str, tuple[Any, Any]]) -> dict[str, dict[str, Any]]:
    """{field: {"before": ..., "after": ...}} with API field names (owner, not owner_id)."""
    out = {}
    for name, (before, after) in changes.items():
        key = "owner" if name == "owner_id" else "possible_duplicate_of" if name == "possible_duplicate_of_id" else name
        out[key] = {"before": _jsonable(before), "after": _jsonable(after)}
    return out


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


# What an erased lead's events keep (docs/privacy.md): ids, types, timestamps and the pipeline facts
# that identify nobody. An allow-list, so a field added to leads later is erased by default.
ERASURE_KEPT_LEAD_FIELDS = frozenset(
    {"id", "status", "score", "score_breakdown", "owner", "possible_duplicate_of", "country", "source"}
    | {"created_at", "updated_at", "scored_at"}
)
ERASURE_KEPT_DATA_KEYS = frozenset({"lead", "changes", "lead_id", "previous_score", "score", "score_breakdown"})


def erased_event_data(data: dict) -> dict:
    """An event's data with the personal data of its lead set to null (keys kept, so the shape
    receivers parse stays the same) and `"erased": true`."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key == "lead" and isinstance(value, dict):
            out[key] = {k: (v if k in ERASURE_KEPT_LEAD_FIELDS else None) for k, v in value.items()}
        elif key == "changes" and isinstance(value, dict):
            out[key] = {
                k: (v if k in ERASURE_KEPT_LEAD_FIELDS else {"before": None, "after": None}) for k, v in value.items()
            }
        else:
            out[key] = value if key in ERASURE_KEPT_DATA_KEYS else None
    out["erased"] = True
    return out


def events_erase_lead(*, account: Account, lead_id) -> int:
    """Erase the personal data in every stored event of one lead (§4.12), in the caller's transaction.

    Deliveries are signed and sent from the event at send time (`deliver_one`), so pending and
    re-delivered ones carry the scrubbed body from now on; the receivers' response snippets of
    those deliveries are cleared too, since a receiver may have echoed the payload back.
    Returns how many events were rewritten."""
    events = list(Event.objects.for_account(account).filter(lead_id=lead_id).select_for_update())
    for event in events:
        event.data = erased_event_data(event.data)
    Event.objects.bulk_update(events, ["data"], batch_size=500)
    if events:
        DeliveryAttempt.objects.filter(delivery__event__in=[e.pk for e in events]).exclude(response_snippet="").update(
            response_snippet=""
        )
    return len(events)


def event_list(*, account: Account, after_id: int | None, types: list[str], since: datetime | None, limit: int):
    qs = Event.objects.for_account(account).order_by("id")
    if after_id is not None:
        qs = qs.filter(id__gt=after_id)
    if types:
        qs = qs.filter(type__in=types)
    if since is not None:
        qs = qs.filter(created_at__gte=since)
    return list(qs[: limit + 1])


def events_purge(*, now: datetime | None = None) -> int:
    """Drop events (and their deliveries) past the retention period (at least 30 days)."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.LEADBASE_EVENT_RETENTION_DAYS)
    deleted, _ = Event.objects.filter(created_at__lt=cutoff).delete()
    return deleted


# --- subscriptions ----------------------------------------------------------------------------


def _check_types(types: list[str]) -> list[str]:
    unknown = sorted(set(types) - set(SUBSCRIPTION_EVENT_TYPES))
    if unknown:
        raise ValidationFailed(
            f"Unknown event type(s): {', '.join(unknown)}.",
            errors=[field_error("event_types", f"Use any of {', '.join(SUBSCRIPTION_EVENT_TYPES)}.")],
        )
    return sorted(set(types))


def subscription_create(*, account: Account, actor: Actor | None, data: dict) -> WebhookSubscription:
    """Create a subscription; its secret is returned on the object once (`.secret`)."""
    return WebhookSubscription.objects.create(
        account=account,
        url=validate_webhook_url(data["url"]),
        description=data.get("description", ""),
        event_types=_check_types(data.get("event_types", [])),
        active=data.get("active", True),
        secret=signing.new_secret(),
    )


def subscription_get(*, account: Account, subscription_id) -> WebhookSubscription:
    sub = (
        WebhookSubscription.objects.for_account(account).filter(pk=subscription_id).first()
        if str(subscription_id).isdigit()
        else None
    )
    if sub is None:
        raise NotFound("No such webhook.")
    return sub


def subscription_update(*, account: Account, actor: Actor | None, subscription_id, data: dict) -> WebhookSubscription:
    sub = subscription_get(account=account, subscription_id=subscription_id)
    if "url" in data:
        sub.url = validate_webhook_url(data["url"])
    if "event_types" in data:
        sub.event_types = _check_types(data["event_types"])
    if "description" in data:
        sub.description = data["description"]
    if "active" in data:
        sub.active = data["active"]
        if sub.active:  # re-enabling clears the failure state
            sub.failing_since = sub.disabled_at = None
            sub.disabled_reason = ""
    sub.save()
    return sub


def subscription_delete(*, account: Account, actor: Actor | None, subscription_id) -> None:
    subscription_get(account=account, subscription_id=subscription_id).delete()


def subscription_rotate_secret(
    *, account: Account, actor: Actor | None, subscription_id, overlap_hours: int = 24
) -> WebhookSubscription:
    """New secret now; the old one keeps signing (beside the new) for `overlap_hours`."""
    if not 0 <= overlap_hours <= 168:
        raise ValidationFailed("overlap_hours: 0-168.", errors=[field_error("overlap_hours", "0-168 hours.")])
    sub = subscription_get(account=account, subscription_id=subscription_id)
    sub.previous_secret = sub.secret
    sub.previous_secret_expires_at = timezone.now() + timedelta(hours=overlap_hours)
    sub.secret = signing.new_secret()
    sub.save(update_fields=["secret", "previous_secret", "previous_secret_expires_at"])
    return sub


def subscription_test(*, account: Account, actor: Actor | None, subscription_id) -> WebhookDelivery:
    """Send a `webhook.test` event to this subscription only (even if it is inactive)."""
    sub = subscription_get(account=account, subscription_id=subscription_id)
    with transaction.atomic():
        _lock_feed(account.pk)
        event = Event.objects.create(account=account, type=EventType.WEBHOOK_TEST, data={"webhook": sub.pk})
        delivery = WebhookDelivery.objects.create(subscription=sub, event=event, next_attempt_at=timezone.now())
    deliver_one(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    return delivery


def delivery_get(*, account: Account, subscription_id, delivery_id) -> WebhookDelivery:
    sub = subscription_get(account=account, subscription_id=subscription_id)
    try:
        pk = uuid.UUID(str(delivery_id))
    except ValueError:
        pk = None
    delivery = sub.deliveries.select_related("event").filter(pk=pk).first() if pk else None
    if delivery is None:
        raise NotFound("No such delivery.")
    return delivery


def delivery_redeliver(*, account: Account, actor: Actor | None, subscription_id, delivery_id) -> WebhookDelivery:
    """Send a delivery again now (a new attempt in the same log), whatever its status."""
    delivery = delivery_get(account=account, subscription_id=subscription_id, delivery_id=delivery_id)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(status=DeliveryStatus.PENDING, next_attempt_at=timezone.now())
    deliver_one(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    return delivery


# --- delivery ---------------------------------------------------------------------------------


def backoff_seconds(attempts: int) -> float:
    """Exponential backoff with +-20% jitter: 10 s, 20 s, 40 s ... capped at 6 h."""
    base = min(settings.LEADBASE_WEBHOOK_BACKOFF_BASE * (2 ** max(0, attempts - 1)), MAX_BACKOFF_SECONDS)
    # The cap applies after the jitter too: retries are never more than 6 h apart (docs/webhooks.md).
    return min(base * random.uniform(0.8, 1.2), MAX_BACKOFF_SECONDS)  # noqa: S311  (jitter, not cryptography)


def deliver_due(*, now: datetime | None = None, limit: int = 500) -> int:
    """Deliver up to `limit` due deliveries; each is leased with FOR UPDATE SKIP LOCKED so any number
    of workers can run this at once without sending one delivery twice. Returns how many were tried.

    `now` (default: the clock, read afresh for every lease and attempt) is the time every decision
    uses: what is due, when to retry, whether the retry window is over, whether to disable."""
    tried = 0
    while tried < limit:
        ids = _lease(now or timezone.now(), min(DELIVERY_BATCH, limit - tried))
        if not ids:
            break
        for delivery_id in ids:
            try:
                deliver_one(delivery_id=delivery_id, leased=True, now=now)
            except Exception:  # one bad row must not hold up the rest; its lease runs out and it is retried
                logger.exception("webhook delivery %s failed unexpectedly", delivery_id)
        tried += len(ids)
    return tried


def _lease(now: datetime, size: int) -> list:
    lease_until = now + timedelta(seconds=settings.LEADBASE_WEBHOOK_TIMEOUT * 3)
    with transaction.atomic():
        # A switched-off subscription (by its owner, or disabled after failing for days) gets nothing;
        # its pending rows stay and go out if it is re-activated within their retry window.
        active = WebhookSubscription.objects.filter(active=True).values("pk")
        qs = WebhookDelivery.objects.filter(
            status=DeliveryStatus.PENDING, next_attempt_at__lte=now, subscription_id__in=active
        ).order_by("next_attempt_at")
        if connection.features.has_select_for_update_skip_locked:
            qs = qs.select_for_update(skip_locked=True)
        ids = list(qs.values_list("id", flat=True)[:size])
        if ids:
            WebhookDelivery.objects.filter(pk__in=ids).update(next_attempt_at=lease_until)
    return ids


def _secrets(sub: WebhookSubscription, now: datetime) -> list[str]:
    secrets_ = [sub.secret]
    if sub.previous_secret and sub.previous_secret_expires_at and sub.previous_secret_expires_at > now:
        secrets_.append(sub.previous_secret)
    return secrets_


def deliver_one(*, delivery_id, leased: bool = False, now: datetime | None = None) -> None:
    """One attempt: sign, POST to the checked address, log, then schedule the retry or finish."""
    delivery = WebhookDelivery.objects.select_related("subscription", "event").filter(pk=delivery_id).first()
    if delivery is None or delivery.status != DeliveryStatus.PENDING:
        return
    sub, event = delivery.subscription, delivery.event
    now = now or timezone.now()
    body = json.dumps(event.payload(), separators=(",", ":"), default=str).encode()
    timestamp = int(now.timestamp())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Leadbase-Event": event.type,
        "X-Leadbase-Delivery": str(delivery.pk),
        "X-Leadbase-Signature": signing.signature_header(_secrets(sub, now), timestamp, body),
    }
    parts = urlsplit(sub.url)
    try:
        ip = resolve_target(parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80))
        result = http.post(sub.url, ip, body, headers, timeout=settings.LEADBASE_WEBHOOK_TIMEOUT)
    except UnsafeTarget as exc:
        result = http.PostResult(None, 0, "", f"refused: {exc}"[:300])
    outermost = not connection.in_atomic_block  # a caller's own transaction keeps its own commit mode
    with transaction.atomic():
        if outermost:
            _commit_without_waiting_for_disk()
        _record_attempt(delivery, sub, result, now)


def _commit_without_waiting_for_disk() -> None:
    """The attempt's bookkeeping commits without waiting for its WAL flush (PostgreSQL's asynchronous commit,
    this transaction only). Should the database server crash in the ~0.6 s before the flush, the attempt is
    forgotten and the delivery, still pending, goes out again: delivery is at least once anyway (receivers drop
    duplicates by X-Leadbase-Delivery), and nothing else is lost: the database stays consistent. Two flushed
    commits per delivery were most of its cost (finding 6 of docs/performance.md)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit TO OFF")


def _record_attempt(delivery: WebhookDelivery, sub: WebhookSubscription, result: http.PostResult, now) -> None:
    """The attempt's log row, the delivery's new state and the subscription's health, in the caller's
    transaction (one commit: never an attempt logged without its delivery updated, or the reverse)."""
    DeliveryAttempt.objects.create(
        delivery=delivery,
        status_code=result.status,
        duration_ms=result.duration_ms,
        response_snippet=result.snippet[:500],
        error=result.error,
    )
    attempts = delivery.attempts + 1
    ok = result.status is not None and 200 <= result.status < 300
    fields: dict[str, Any] = {"attempts": attempts, "last_attempt_at": now, "last_status_code": result.status}
    if ok:
        fields.update(status=DeliveryStatus.SUCCEEDED, next_attempt_at=None)
    elif now - delivery.created_at >= timedelta(hours=settings.LEADBASE_WEBHOOK_RETRY_HOURS):
        fields.update(status=DeliveryStatus.FAILED, next_attempt_at=None)
    else:
        fields.update(next_attempt_at=now + timedelta(seconds=backoff_seconds(attempts)))
    WebhookDelivery.objects.filter(pk=delivery.pk).update(**fields)
    _track_health(sub, ok, now)


def _track_health(sub: WebhookSubscription, ok: bool, now: datetime) -> None:
    """A subscription failing for LEADBASE_WEBHOOK_DISABLE_AFTER_DAYS is disabled and the account told
    (a `webhook.disabled` event, and the flag on the subscription the UI shows)."""
    if ok:
        if sub.failing_since is not None:
            WebhookSubscription.objects.filter(pk=sub.pk).update(failing_since=None)
        return
    if sub.failing_since is None:
        WebhookSubscription.objects.filter(pk=sub.pk, failing_since__isnull=True).update(failing_since=now)
        return
    if sub.active and now - sub.failing_since >= timedelta(days=settings.LEADBASE_WEBHOOK_DISABLE_AFTER_DAYS):
        with transaction.atomic():
            updated = WebhookSubscription.objects.filter(pk=sub.pk, active=True).update(
                active=False, disabled_at=now, disabled_reason=f"Failing since {sub.failing_since:%Y-%m-%d %H:%M} UTC"
            )
            if updated:  # through the outbox, so subscriptions to webhook.disabled are told too
                events_record(
                    account=sub.account,
                    type=EventType.WEBHOOK_DISABLED,
                    items=[(None, {"webhook": sub.pk, "url": sub.url, "failing_since": sub.failing_since.isoformat()})],
                )


def sweep(*, now: datetime | None = None) -> int:
    """Periodic: deliver whatever is due, including rows whose after-commit kick never ran."""
    return deliver_due(now=now)
