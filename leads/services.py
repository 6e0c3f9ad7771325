"""Writes of leads. Every path that creates, changes or deletes a lead comes through here:
the API, the UI, batch, CSV import, MCP and the management commands."""

from __future__ import annotations

import datetime
import uuid
from dataclasses import dataclass
from typing import Any, Literal

from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db import IntegrityError, connection, transaction
from django.db.models import BooleanField
from django.db.models.expressions import RawSQL
from django.utils import timezone

from accounts.actor import Actor
from accounts.models import Account
from accounts.services import audit_log
from core.errors import (
    Conflict,
    DuplicateLead,
    InvalidFilter,
    PreconditionFailed,
    ValidationFailed,
    field_error,
)
from core.models import IdempotencyKey
from scoring.services import leads_apply_scores
from webhooks.models import EventType
from webhooks.services import events_erase_lead, events_record, lead_changes

from . import normalization as norm
from .batch import leads_batch_create, lock_identities, suppressed_error
from .exports import filters_to_params
from .filtersets import LeadFilterSet
from .models import NOTE_MAX_LENGTH, Lead, Note, Segment, Suppression, SuppressionReason
from .representation import lead_to_dict
from .rules import (
    SOFT_DUPLICATE_FIELDS,
    SoftDuplicateIndex,
    apply_changes,
    find_other_identity_holder,
    normalize_lead_data,
    require_identity,
)
from .selectors import lead_get, lead_queryset, segment_get
from .suppression import email_hash, suppressed_emails, suppression_find, suppression_get

OnDuplicate = Literal["error", "update", "skip"]
ON_DUPLICATE_CHOICES = ("error", "update", "skip")


@dataclass
class LeadResult:
    lead: Lead
    outcome: Literal["created", "updated", "skipped"]


def lead_create(
    *,
    account: Account,
    actor: Actor | None,
    data: dict[str, Any],
    on_duplicate: OnDuplicate = "error",
) -> LeadResult:
    """Create a lead, deduplicated by email/external_id (§4.4).

    A duplicate raises DuplicateLead (409) unless `on_duplicate` is `update` (merge the new
    fields into the existing lead) or `skip` (return it unchanged). Single create is a batch of
    one through `leads_batch_create`, so both paths apply exactly the same rules; the unique
    constraints decide races (of two concurrent creates of one email exactly one inserts).
    """
    (item,) = leads_batch_create(account=account, actor=actor, items=[data], on_duplicate=on_duplicate).results
    if item.error is not None:
        raise item.error
    return LeadResult(lead=item.lead, outcome=item.outcome)


def lead_update(
    *,
    account: Account,
    actor: Actor | None,
    lead_id,
    data: dict[str, Any],
    if_match: str | None = None,
    merge: bool = False,
) -> Lead:
    """Partially update a lead. `if_match` (an ETag) must match or PreconditionFailed (412).
    With `merge` (on_duplicate=update) tags are added and custom fields merged, not replaced.
    A new email must not be on the suppression list (409 suppressed)."""
    new_email = norm.normalize_email(data["email"]) if isinstance(data.get("email"), str) else None
    with transaction.atomic():
        # The new email is locked before the lead row, in the order creates and erasures lock them.
        lock_identities(account, [{"email": new_email}] if new_email else [])
        lead = lead_get(account=account, lead_id=lead_id, for_update=True)
        check_if_match(lead, if_match)
        values = normalize_lead_data(account=account, data=data, country_hint=lead.country)
        changed = apply_changes(lead, values, merge=merge)
        if not changed:
            return lead
        if "email" in changed and lead.email and suppressed_emails(account=account, emails=[lead.email]):
            raise suppressed_error()
        require_identity({"email": lead.email, "phone": lead.phone, "external_id": lead.external_id})
        if SOFT_DUPLICATE_FIELDS & changed.keys():
            current = {f: getattr(lead, f) for f in SOFT_DUPLICATE_FIELDS}
            soft = SoftDuplicateIndex(account, [current], exclude_ids={lead.pk})
            lead.possible_duplicate_of_id = soft.find(current, exclude_id=lead.pk)
        lead.version += 1
        try:
            with transaction.atomic():
                lead.save()
        except IntegrityError:
            # The lead itself matches its own email, so look only at the other leads: the one
            # holding the email or external_id this update collided on.
            other = find_other_identity_holder(account=account, lead=lead)
            if other is None:
                raise
            raise DuplicateLead(
                "Another lead already has this email or external_id.", existing_id=str(other.pk)
            ) from None
        leads_apply_scores(account=account, leads=[lead])
        events_record(
            account=account,
            type=EventType.LEAD_UPDATED,
            items=[(lead.pk, {"lead": lead_to_dict(lead), "changes": lead_changes(changed)})],
        )
    return lead


def check_if_match(lead: Lead, if_match: str | None) -> None:
    if not if_match:
        return
    candidates = [tag.strip() for tag in if_match.split(",")]
    if "*" in candidates:
        return
    if lead.etag not in candidates and f"W/{lead.etag}" not in candidates:
        raise PreconditionFailed(
            "The lead changed since you read it; fetch it again and retry.", current_etag=lead.etag
        )


def lead_delete(*, account: Account, actor: Actor | None, lead_id, if_match: str | None = None) -> None:
    """Delete one lead of the account."""
    with transaction.atomic():
        lead = lead_get(account=account, lead_id=lead_id, for_update=True)
        check_if_match(lead, if_match)
        snapshot = {"id": str(lead.pk), "email": lead.email, "external_id": lead.external_id}
        lead.delete()
        events_record(account=account, type=EventType.LEAD_DELETED, items=[(snapshot["id"], {"lead": snapshot})])


def note_add(*, account: Account, actor: Actor | None, lead_id, body: str) -> Note:
    """Add a note to one of the account's leads (another account's lead is NotFound)."""
    text = (body or "").strip() if isinstance(body, str) else ""
    if not text:
        raise ValidationFailed("A note needs a body.", errors=[field_error("body", "Required.", "required")])
    if len(text) > NOTE_MAX_LENGTH:
        raise ValidationFailed(
            f"A note holds at most {NOTE_MAX_LENGTH} characters.",
            errors=[field_error("body", f"At most {NOTE_MAX_LENGTH} characters.", "max_length")],
        )
    if "\x00" in text:
        raise ValidationFailed("Null characters are not allowed.", errors=[field_error("body", "No null characters.")])
    with transaction.atomic():
        lead = lead_get(account=account, lead_id=lead_id)
        return Note.objects.create(account=account, lead=lead, author=actor.user if actor else None, body=text)


def _validated_segment_filters(account: Account, filters: Any) -> dict[str, Any]:
    """A segment's filters must be an object the list accepts: strictly validated now, not when used."""
    if not isinstance(filters, dict):
        raise ValidationFailed(
            "filters must be an object of list filters.", errors=[field_error("filters", "Must be an object.")]
        )
    if "segment" in filters:
        raise InvalidFilter(
            "A segment cannot refer to another segment.",
            errors=[{"field": "filters.segment", "code": "invalid", "message": "Segments do not nest."}],
        )
    LeadFilterSet.apply(filters_to_params(filters), lead_queryset(account=account))
    return filters


def _save_segment(segment: Segment) -> Segment:
    try:
        with transaction.atomic():
            segment.save()
    except IntegrityError as exc:
        raise Conflict(f"A segment named {segment.name!r} exists.") from exc
    return segment


def segment_create(*, account: Account, actor: Actor | None, name: str, filters: dict[str, Any]) -> Segment:
    """Save a named filter for the account."""
    segment = Segment(account=account, name=name, filters=_validated_segment_filters(account, filters))
    return _save_segment(segment)


def segment_update(*, account: Account, actor: Actor | None, segment_id, data: dict[str, Any]) -> Segment:
    """Rename a segment and/or replace its filters."""
    segment = segment_get(account=account, segment_id=segment_id)
    if "name" in data:
        segment.name = data["name"]
    if "filters" in data:
        segment.filters = _validated_segment_filters(account, data["filters"])
    return _save_segment(segment)


def segment_delete(*, account: Account, actor: Actor | None, segment_id) -> None:
    """Delete a segment (its leads are untouched)."""
    segment_get(account=account, segment_id=segment_id).delete()


# --- privacy: erasure and the suppression list (§4.12, docs/privacy.md) ----------------------------


@dataclass
class EraseResult:
    lead_id: uuid.UUID
    erased_at: datetime.datetime
    suppression: Suppression | None  # None when the lead had no email (nothing to suppress)
    events_erased: int
    notes_deleted: int


def lead_erase(*, account: Account, actor: Actor | None, lead_id) -> EraseResult:
    """Erase a lead for good (the right to erasure, §4.12), in one transaction.

    Deletes the lead and its notes; nulls the personal data in every stored event of the lead (so
    the change feed, pending deliveries and redeliveries no longer carry it) and clears the receivers'
    response snippets of those deliveries; forgets stored Idempotency-Key responses that held the lead
    and the lead's name in Django admin's history; suppresses the email (a keyed hash) so no create
    adds the person again; writes a `lead.deleted` event marked `"erased": true` without personal
    data (receivers must delete their copy); and writes an audit entry holding only the lead id and
    the hash. Another account's lead is NotFound; erasing again is NotFound (the lead is gone).
    """
    with transaction.atomic():
        seen = lead_get(account=account, lead_id=lead_id)
        # A create of this email waits on the same lock, then finds the suppression committed.
        lock_identities(account, [{"email": seen.email}] if seen.email else [])
        lead = lead_get(account=account, lead_id=lead_id, for_update=True)
        if lead.email and lead.email != seen.email:  # changed between the two reads
            lock_identities(account, [{"email": lead.email}])
        pk, email = lead.pk, lead.email
        notes_deleted = Note.objects.for_account(account).filter(lead_id=pk).count()
        lead.delete()  # notes cascade; other leads' possible_duplicate_of is set to null
        events_erased = events_erase_lead(account=account, lead_id=pk)
        _forget_stored_responses(account, pk)
        LogEntry.objects.filter(content_type=ContentType.objects.get_for_model(Lead), object_id=str(pk)).update(
            object_repr="[erased]"
        )
        suppression = None
        if email:
            suppression = suppression_find(account=account, email=email) or _suppress(
                account, actor, email, SuppressionReason.ERASED
            )
        events_record(
            account=account,
            type=EventType.LEAD_DELETED,
            items=[(pk, {"lead": {"id": str(pk), "email": None, "external_id": None}, "erased": True})],
        )
        audit_log(
            account=account,
            action="lead.erased",
            actor=actor,
            object_type="lead",
            object_id=str(pk),
            data={
                "email_hash": suppression.email_hash if suppression else None,
                "suppression_id": suppression.pk if suppression else None,
                "events_erased": events_erased,
                "notes_deleted": notes_deleted,
            },
        )
    return EraseResult(
        lead_id=pk,
        erased_at=timezone.now(),
        suppression=suppression,
        events_erased=events_erased,
        notes_deleted=notes_deleted,
    )


def _forget_stored_responses(account: Account, lead_id: uuid.UUID) -> int:
    """Delete the account's stored Idempotency-Key responses that hold this lead (a create's body is
    the lead itself), so a replay cannot hand its personal data out again; a retry with such a key
    runs afresh under today's rules (and meets the suppression). The bodies are searched in the
    database for the lead id: at most 24 hours of one account's keys, never loaded into Python."""
    needle = str(lead_id).encode()
    keys = IdempotencyKey.objects.for_account(account).filter(response_body__isnull=False)
    if connection.vendor == "postgresql":
        found = RawSQL("position(%s::bytea in response_body) > 0", [needle], output_field=BooleanField())
    else:
        found = RawSQL("instr(response_body, %s) > 0", [needle], output_field=BooleanField())
    deleted, _ = keys.filter(found).delete()
    return deleted


def _suppress(account: Account, actor: Actor | None, email: str, reason: str) -> Suppression:
    hashed = email_hash(account=account, email=email)
    try:
        with transaction.atomic():
            return Suppression.objects.create(
                account=account, email_hash=hashed, reason=reason, created_by=actor.user if actor else None
            )
    except IntegrityError:  # suppressed concurrently (SQLite has no identity lock): the same outcome
        return Suppression.objects.for_account(account).get(email_hash=hashed)


def suppression_create(
    *, account: Account, actor: Actor | None, email: str, reason: str = SuppressionReason.REQUESTED
) -> tuple[Suppression, bool]:
    """Suppress an email that may not be a lead (yet): later creates of it are 409 suppressed.
    Idempotent: an email already suppressed returns its entry and False. A lead that has this
    email now is left alone (erase it to delete it). Audited with the hash, never the email."""
    normalized = norm.normalize_email(email) if isinstance(email, str) else None
    if not normalized:
        raise ValidationFailed("An email is required.", errors=[field_error("email", "Required.", "required")])
    if reason not in SuppressionReason.values:
        raise ValidationFailed(
            "Unknown reason.", errors=[field_error("reason", f"Use one of {', '.join(SuppressionReason.values)}.")]
        )
    with transaction.atomic():
        lock_identities(account, [{"email": normalized}])
        existing = suppression_find(account=account, email=normalized)
        if existing is not None:
            return existing, False
        entry = _suppress(account, actor, normalized, reason)
        audit_log(
            account=account,
            action="suppression.created",
            actor=actor,
            object_type="suppression",
            object_id=str(entry.pk),
            data={"email_hash": entry.email_hash, "reason": entry.reason},
        )
    return entry, True


def suppression_lift(*, account: Account, actor: Actor | None, suppression_id) -> None:
    """Lift a suppression: the email may be added again. Audited."""
    with transaction.atomic():
        entry = suppression_get(account=account, suppression_id=suppression_id)
        audit_log(
            account=account,
            action="suppression.lifted",
            actor=actor,
            object_type="suppression",
            object_id=str(entry.pk),
            data={"email_hash": entry.email_hash, "reason": entry.reason},
        )
        entry.delete()
