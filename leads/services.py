"""Writes of leads. Every path that creates, changes or deletes a lead comes through here:
the API, the UI, batch, CSV import, MCP and the management commands."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from django.db import IntegrityError, transaction
from django.db.models import Q

from accounts.actor import Actor
from accounts.models import Account, Membership
from core.errors import DuplicateLead, PlanLimitReached, PreconditionFailed, ValidationFailed, field_error

from . import normalization as norm
from .models import Lead
from .selectors import lead_get, lead_queryset

OnDuplicate = Literal["error", "update", "skip"]
ON_DUPLICATE_CHOICES = ("error", "update", "skip")

# Fields a client may write (§4.1); everything else on Lead is set by the server.
WRITABLE_FIELDS = (
    "email", "first_name", "last_name", "company", "job_title", "website", "city", "phone", "country",
    "source", "status", "tags", "owner", "external_id", "custom_fields",
)
SOFT_DUPLICATE_FIELDS = frozenset({"phone", "first_name", "last_name", "company"})


@dataclass
class LeadResult:
    lead: Lead
    outcome: Literal["created", "updated", "skipped"]


def normalize_lead_data(*, account: Account, data: dict[str, Any], country_hint: str = "") -> dict[str, Any]:
    """Normalize the provided fields (§4.1). Raises ValidationFailed with per-field errors."""
    out: dict[str, Any] = {}
    errors: list[dict[str, str]] = []
    for name in ("first_name", "last_name", "company", "job_title", "website", "city", "source"):
        if name in data:
            out[name] = norm.normalize_text(data[name])
    if "email" in data:
        out["email"] = norm.normalize_email(data["email"])
    if "external_id" in data:
        out["external_id"] = norm.normalize_external_id(data["external_id"])
    if "status" in data:
        out["status"] = data["status"]
    if "country" in data:
        try:
            out["country"] = norm.normalize_country(data["country"])
        except ValueError as exc:
            errors.append(field_error("country", str(exc)))
    if "phone" in data:
        out["phone"] = norm.normalize_phone(data["phone"], out.get("country") or country_hint)
    if "tags" in data:
        out["tags"] = norm.normalize_tags(data["tags"] or [])
    if "custom_fields" in data:
        out["custom_fields"] = dict(data["custom_fields"] or {})
    if "owner" in data:
        owner_id = data["owner"]
        if owner_id is not None and not Membership.objects.filter(account=account, user_id=owner_id).exists():
            errors.append(field_error("owner", "The owner must be a member of this account.", "invalid_owner"))
        out["owner_id"] = owner_id
    if errors:
        raise ValidationFailed("; ".join(f"{e['field']}: {e['message']}" for e in errors), errors=errors)
    return out


def _require_identity(values: dict[str, Any]) -> None:
    if not (values.get("email") or values.get("phone") or values.get("external_id")):
        raise ValidationFailed(
            "A lead needs at least one of email, phone or external_id.",
            errors=[field_error(f, "One of email, phone or external_id is required.", "required")
                    for f in ("email", "phone", "external_id")],
        )


def find_identity_match(*, account: Account, email: str | None, external_id: str | None) -> Lead | None:
    """The lead that has this identity (§4.4): the same email, else the same external_id."""
    condition = Q()
    if email:
        condition |= Q(email=email)
    if external_id:
        condition |= Q(external_id=external_id)
    if not condition:
        return None
    matches = list(lead_queryset(account=account).filter(condition)[:2])
    if email:
        for lead in matches:
            if lead.email == email:
                return lead
    return matches[0] if matches else None


def find_soft_duplicate(*, account: Account, values: dict[str, Any], exclude_id=None) -> Lead | None:
    """Softer matches (§4.4): the same normalized phone, or the same first+last name and company."""
    condition = Q()
    if values.get("phone"):
        condition |= Q(phone=values["phone"])
    if values.get("first_name") and values.get("last_name") and values.get("company"):
        condition |= Q(
            first_name__iexact=values["first_name"],
            last_name__iexact=values["last_name"],
            company__iexact=values["company"],
        )
    if not condition:
        return None
    qs = lead_queryset(account=account).filter(condition)
    if exclude_id is not None:
        qs = qs.exclude(pk=exclude_id)
    return qs.order_by("created_at", "id").only("id").first()


def _check_lead_cap(account: Account, adding: int = 1) -> None:
    limit = account.lead_limit
    if limit is None:
        return
    current = lead_queryset(account=account).count()
    if current + adding > limit:
        raise PlanLimitReached(
            f"The {account.plan} plan allows {limit} leads; the account has {current}.",
            limit=limit, current=current,
        )


def lead_create(
    *, account: Account, actor: Actor | None, data: dict[str, Any], on_duplicate: OnDuplicate = "error",
) -> LeadResult:
    """Create a lead, deduplicated by email/external_id (§4.4).

    A duplicate raises DuplicateLead (409) unless `on_duplicate` is `update` (merge the new
    fields into the existing lead) or `skip` (return it unchanged). The unique constraints decide
    races: of two concurrent creates of one email exactly one inserts, the other sees a duplicate.
    """
    values = normalize_lead_data(account=account, data=data)
    _require_identity(values)
    existing = find_identity_match(account=account, email=values.get("email"), external_id=values.get("external_id"))
    if existing is not None:
        return _on_duplicate(account=account, actor=actor, existing=existing, data=data, on_duplicate=on_duplicate)
    try:
        with transaction.atomic():
            _check_lead_cap(account)
            soft = find_soft_duplicate(account=account, values=values)
            lead = Lead(account=account, possible_duplicate_of_id=soft.pk if soft else None, **values)
            lead.save(force_insert=True)
    except IntegrityError:
        existing = find_identity_match(
            account=account, email=values.get("email"), external_id=values.get("external_id")
        )
        if existing is None:
            raise
        return _on_duplicate(account=account, actor=actor, existing=existing, data=data, on_duplicate=on_duplicate)
    return LeadResult(lead=lead, outcome="created")


def _on_duplicate(*, account, actor, existing: Lead, data, on_duplicate: OnDuplicate) -> LeadResult:
    if on_duplicate == "skip":
        return LeadResult(lead=existing, outcome="skipped")
    if on_duplicate == "update":
        lead = lead_update(account=account, actor=actor, lead_id=existing.pk, data=data, merge=True)
        return LeadResult(lead=lead, outcome="updated")
    matched_on = "email" if existing.email and existing.email == norm.normalize_email(data.get("email")) else "external_id"
    raise DuplicateLead(f"A lead with this {matched_on} already exists.", existing_id=str(existing.pk))


def lead_update(
    *, account: Account, actor: Actor | None, lead_id, data: dict[str, Any],
    if_match: str | None = None, merge: bool = False,
) -> Lead:
    """Partially update a lead. `if_match` (an ETag) must match or PreconditionFailed (412).
    With `merge` (on_duplicate=update) tags are added and custom fields merged, not replaced."""
    with transaction.atomic():
        lead = lead_get(account=account, lead_id=lead_id, for_update=True)
        check_if_match(lead, if_match)
        values = normalize_lead_data(account=account, data=data, country_hint=lead.country)
        if merge:
            if "tags" in values:
                values["tags"] = norm.normalize_tags([*lead.tags, *values["tags"]])
            if "custom_fields" in values:
                values["custom_fields"] = {**lead.custom_fields, **values["custom_fields"]}
        changed = {name: value for name, value in values.items() if getattr(lead, name) != value}
        if not changed:
            return lead
        for name, value in changed.items():
            setattr(lead, name, value)
        _require_identity({"email": lead.email, "phone": lead.phone, "external_id": lead.external_id})
        if SOFT_DUPLICATE_FIELDS & changed.keys():
            soft = find_soft_duplicate(
                account=account,
                values={f: getattr(lead, f) for f in SOFT_DUPLICATE_FIELDS},
                exclude_id=lead.pk,
            )
            lead.possible_duplicate_of_id = soft.pk if soft else None
        lead.version += 1
        try:
            with transaction.atomic():
                lead.save()
        except IntegrityError:
            other = find_identity_match(account=account, email=lead.email, external_id=lead.external_id)
            if other is None or other.pk == lead.pk:
                raise
            raise DuplicateLead(
                "Another lead already has this email or external_id.", existing_id=str(other.pk)
            ) from None
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
        lead.delete()
