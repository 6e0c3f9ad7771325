"""Rules every lead write shares, single or batch: input normalization (with the owner check),
the identity requirement, identity and soft-duplicate matching, and applying changes."""

from __future__ import annotations

import functools
import operator
from typing import Any

from django.db import connection
from django.db.models import Q
from django.db.models.functions import Lower

from accounts.models import Account, Membership
from core.errors import ValidationFailed, field_error

from . import normalization as norm
from .limits import MAX_CUSTOM_FIELDS, MAX_TAGS
from .models import Lead
from .selectors import lead_queryset

SOFT_DUPLICATE_FIELDS = frozenset({"phone", "first_name", "last_name", "company"})


def normalize_lead_data(
    *, account: Account, data: dict[str, Any], country_hint: str = "", member_ids: set[int] | None = None
) -> dict[str, Any]:
    """Normalize the provided fields (§4.1). Raises ValidationFailed with per-field errors.
    Batches pass the account's `member_ids` so owners are checked without a query per item."""
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
        if owner_id is not None:
            is_member = (
                owner_id in member_ids
                if member_ids is not None
                else Membership.objects.filter(account=account, user_id=owner_id).exists()
            )
            if not is_member:
                errors.append(field_error("owner", "The owner must be a member of this account.", "invalid_owner"))
        out["owner_id"] = owner_id
    if errors:
        raise ValidationFailed("; ".join(f"{e['field']}: {e['message']}" for e in errors), errors=errors)
    return out


def require_identity(values: dict[str, Any]) -> None:
    """A lead needs at least one of email, phone, external_id (§4.1)."""
    if not (values.get("email") or values.get("phone") or values.get("external_id")):
        raise ValidationFailed(
            "A lead needs at least one of email, phone or external_id.",
            errors=[
                field_error(f, "One of email, phone or external_id is required.", "required")
                for f in ("email", "phone", "external_id")
            ],
        )


def find_other_identity_holder(*, account: Account, lead: Lead) -> Lead | None:
    """Another lead of the account with this lead's email, else with its external_id."""
    for name in ("email", "external_id"):
        value = getattr(lead, name)
        if value:
            other = lead_queryset(account=account).filter(**{name: value}).exclude(pk=lead.pk).first()
            if other is not None:
                return other
    return None


def identity_index(leads) -> tuple[dict[str, Lead], dict[str, Lead]]:
    by_email, by_ext = {}, {}
    for lead in leads:
        if lead.email:
            by_email[lead.email] = lead
        if lead.external_id:
            by_ext[lead.external_id] = lead
    return by_email, by_ext


def lookup_identities(account: Account, values: list[dict[str, Any]], *, lock: bool) -> tuple[dict, dict]:
    emails = {v["email"] for v in values if v.get("email")}
    ext_ids = {v["external_id"] for v in values if v.get("external_id")}
    if not emails and not ext_ids:
        return {}, {}
    qs = lead_queryset(account=account).filter(Q(email__in=emails) | Q(external_id__in=ext_ids))
    if lock:
        qs = qs.select_for_update()
    return identity_index(qs)


def identity_match(values: dict[str, Any], by_email: dict, by_ext: dict) -> Lead | None:
    """Identity (§4.4): the normalized email, else external_id."""
    if values.get("email") and values["email"] in by_email:
        return by_email[values["email"]]
    if values.get("external_id") and values["external_id"] in by_ext:
        return by_ext[values["external_id"]]
    return None


def _soft_key_names(values: dict[str, Any]) -> tuple[str, str, str] | None:
    if values.get("first_name") and values.get("last_name") and values.get("company"):
        return (values["first_name"].lower(), values["last_name"].lower(), values["company"].lower())
    return None


@functools.cache
def _first_match_sql() -> tuple[str, str]:
    """The per-key probes of SoftDuplicateIndex on PostgreSQL: (by phone, by names). Each key is a row of
    `unnest` and its match the first row of a LATERAL `LIMIT 1`; the table name comes from the model."""
    table = connection.ops.quote_name(Lead._meta.db_table)
    by_phone = (
        "SELECT 'p', k.phone, NULL, NULL, m.id FROM unnest(%s::text[]) AS k(phone) CROSS JOIN LATERAL "  # noqa: S608
        f"(SELECT l.id FROM {table} l WHERE l.account_id = %s AND l.phone = k.phone AND l.phone <> '' "
        "AND NOT l.id = ANY(%s::uuid[]) ORDER BY l.created_at, l.id LIMIT 1) m"
    )
    by_names = (
        "SELECT 'n', k.f, k.l, k.c, m.id FROM unnest(%s::text[], %s::text[], %s::text[]) "  # noqa: S608
        f"AS k(f, l, c) CROSS JOIN LATERAL (SELECT l.id FROM {table} l WHERE l.account_id = %s "
        "AND LOWER(l.last_name) = k.l AND LOWER(l.company) = k.c AND LOWER(l.first_name) = k.f "
        "AND NOT l.id = ANY(%s::uuid[]) ORDER BY l.created_at, l.id LIMIT 1) m"
    )
    return by_phone, by_names


class SoftDuplicateIndex:
    """Softer matches (§4.4) for many candidates at once: one query, then in-memory lookups.
    Earlier items of the same batch count too. A candidate's match is the earliest lead (created_at, id)
    with its phone, or with its first + last name and company."""

    def __init__(self, account: Account, candidates: list[dict[str, Any]], exclude_ids: set = frozenset()):
        phones = sorted({v["phone"] for v in candidates if v.get("phone")})
        names = sorted({k for k in (_soft_key_names(v) for v in candidates) if k})
        self.by_phone: dict[str, Any] = {}
        self.by_names: dict[tuple, Any] = {}
        if not (phones or names):
            return
        if connection.vendor == "postgresql":
            self._earliest_per_key(account, phones, names, exclude_ids)
        else:
            self._earliest_of_all(account, phones, names, exclude_ids)

    def _earliest_per_key(self, account: Account, phones: list, names: list, exclude_ids) -> None:
        """One statement, one index probe per key: the first entry of lead_acct_phone_first_idx or
        lead_acct_soft_dup_first_idx (both end in created_at, id) for that key. However many leads share a
        phone or a name (a switchboard number, a placeholder name), a create reads one row per key."""
        excluded = [str(pk) for pk in exclude_ids]
        phone_sql, names_sql = _first_match_sql()
        parts, params = [], []
        if phones:
            parts.append(phone_sql)
            params += [phones, account.pk, excluded]
        if names:
            parts.append(names_sql)
            params += [[n[0] for n in names], [n[1] for n in names], [n[2] for n in names], account.pk, excluded]
        with connection.cursor() as cursor:
            cursor.execute(" UNION ALL ".join(parts), params)
            for kind, a, b, c, pk in cursor.fetchall():
                if kind == "p":
                    self.by_phone[a] = pk
                else:
                    self.by_names[(a, b, c)] = pk

    def _earliest_of_all(self, account: Account, phones: list, names: list, exclude_ids) -> None:
        """Portable (the embedded SQLite): every matching lead, oldest first; the first seen per key wins."""
        # `phone <> ''` spelled out: it matches the partial phone index's predicate even when the IN list is
        # too long for the planner to prove it (more than 100 values).
        condition = (Q(phone__in=phones) & ~Q(phone="")) if phones else Q(pk__in=[])
        if names:
            # The exact (first, last, company) triples, not three IN lists: with common names the lists'
            # cross product matches much of the account.
            condition |= functools.reduce(
                operator.or_, (Q(_first=first, _last=last, _company=company) for first, last, company in names)
            )
        rows = (
            lead_queryset(account=account)
            .annotate(_first=Lower("first_name"), _last=Lower("last_name"), _company=Lower("company"))
            .filter(condition)
            .exclude(pk__in=exclude_ids)
            .order_by("created_at", "id")
            .values_list("id", "phone", "_first", "_last", "_company")
        )
        phone_set, name_set = set(phones), set(names)
        for pk, phone, first, last, company in rows:
            if phone and phone in phone_set:
                self.by_phone.setdefault(phone, pk)
            if (first, last, company) in name_set:
                self.by_names.setdefault((first, last, company), pk)

    def find(self, values: dict[str, Any], exclude_id=None):
        phone_match = self.by_phone.get(values.get("phone")) if values.get("phone") else None
        if phone_match is not None and phone_match != exclude_id:
            return phone_match
        key = _soft_key_names(values)
        name_match = self.by_names.get(key) if key else None
        return name_match if name_match != exclude_id else None

    def add(self, values: dict[str, Any], pk) -> None:
        if values.get("phone"):
            self.by_phone.setdefault(values["phone"], pk)
        key = _soft_key_names(values)
        if key:
            self.by_names.setdefault(key, pk)


def check_lead_size(values: dict[str, Any]) -> None:
    """The per-lead caps (leads/limits.py) on what a merge or `add_tags` produces, not only on what one
    request sends: tags and custom fields only grow by merging, so they are checked on the result."""
    tags, custom = values.get("tags"), values.get("custom_fields")
    if tags is not None and len(tags) > MAX_TAGS:
        raise ValidationFailed(
            f"A lead has at most {MAX_TAGS} tags; this change would give it {len(tags)}.",
            errors=[field_error("tags", f"At most {MAX_TAGS} tags per lead.", "max_length")],
        )
    if custom is not None and len(custom) > MAX_CUSTOM_FIELDS:
        raise ValidationFailed(
            f"A lead has at most {MAX_CUSTOM_FIELDS} custom fields; this change would give it {len(custom)}.",
            errors=[field_error("custom_fields", f"At most {MAX_CUSTOM_FIELDS} keys per lead.", "max_length")],
        )


def apply_changes(lead: Lead, values: dict[str, Any], *, merge: bool = False) -> dict[str, tuple[Any, Any]]:
    """Set the values that differ on `lead`; returns {field: (before, after)} of what changed.
    With `merge`, tags are added and custom fields merged instead of replaced."""
    if merge:
        if "tags" in values:
            values = {**values, "tags": norm.normalize_tags([*lead.tags, *values["tags"]])}
        if "custom_fields" in values:
            values = {**values, "custom_fields": {**lead.custom_fields, **values["custom_fields"]}}
    check_lead_size(values)
    changed = {name: (getattr(lead, name), value) for name, value in values.items() if getattr(lead, name) != value}
    for name, (_, after) in changed.items():
        setattr(lead, name, after)
    return changed
