"""Writes of leads. Every path that creates, changes or deletes a lead comes through here:
the API, the UI, batch, CSV import, MCP and the management commands."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from django.db import IntegrityError, transaction

from accounts.actor import Actor
from accounts.models import Account
from core.errors import Conflict, DuplicateLead, InvalidFilter, PreconditionFailed, ValidationFailed, field_error
from scoring.services import leads_apply_scores
from webhooks.models import EventType
from webhooks.services import events_record, lead_changes

from .batch import leads_batch_create
from .exports import filters_to_params
from .filtersets import LeadFilterSet
from .models import NOTE_MAX_LENGTH, Lead, Note, Segment
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
    With `merge` (on_duplicate=update) tags are added and custom fields merged, not replaced."""
    with transaction.atomic():
        lead = lead_get(account=account, lead_id=lead_id, for_update=True)
        check_if_match(lead, if_match)
        values = normalize_lead_data(account=account, data=data, country_hint=lead.country)
        changed = apply_changes(lead, values, merge=merge)
        if not changed:
            return lead
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
