"""Set-based lead writes for batches (§4.5), also the engine of single create.

One round of SQL per batch, whatever its size: one identity lookup, one soft-duplicate lookup,
one multi-row INSERT ... ON CONFLICT DO NOTHING, one read-back of which rows went in, and bulk
UPDATE/DELETE. The unique constraints stay the judge of identity under concurrency: an insert that
loses a race to another transaction is found by the read-back and reported as the duplicate it is.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.db.models.deletion import DO_NOTHING, get_candidate_relations_to_delete
from django.utils import timezone

from accounts.actor import Actor
from accounts.models import Account, Membership
from core.errors import (
    ApplicationError,
    Conflict,
    DuplicateLead,
    NotFound,
    PlanLimitReached,
    Suppressed,
    field_error,
)
from scoring.services import leads_apply_scores
from webhooks.models import EventType
from webhooks.services import events_record, lead_changes

from . import normalization as norm
from .limits import MAX_BATCH_ITEMS  # noqa: F401  (re-exported: batch.MAX_BATCH_ITEMS)
from .models import Lead, Note
from .representation import lead_to_dict
from .rules import (
    SOFT_DUPLICATE_FIELDS,
    SoftDuplicateIndex,
    apply_changes,
    check_lead_size,
    find_other_identity_holder,
    identity_index,
    identity_match,
    lookup_identities,
    normalize_lead_data,
    require_identity,
)
from .selectors import lead_queryset
from .suppression import suppressed_emails


class DuplicateInBatch(ApplicationError):
    code = "duplicate_in_batch"


@dataclass
class ItemResult:
    """What happened to one item: an HTTP-like status and either a lead or an error."""

    index: int
    status: int
    lead: Lead | None = None
    outcome: str | None = None
    error: ApplicationError | None = None
    deleted_id: str | None = None
    changes: dict[str, tuple[Any, Any]] | None = None  # {field: (before, after)} on updates

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class BatchResult:
    results: list[ItemResult] = field(default_factory=list)

    @property
    def summary(self) -> dict[str, int]:
        failed = sum(1 for r in self.results if not r.ok)
        return {"succeeded": len(self.results) - failed, "failed": failed}


def _fail(index: int, error: ApplicationError) -> ItemResult:
    return ItemResult(index=index, status=error.status, error=error)


def _member_ids(account: Account, items: Sequence[Any]) -> set[int] | None:
    if not any(isinstance(item, dict) and item.get("owner") is not None for item in items):
        return None
    return set(Membership.objects.for_account(account).values_list("user_id", flat=True))


def _lock_for_cap(account: Account) -> None:
    """Capped accounts only: lock the account row until the transaction ends, so that concurrent
    creates count the account's leads one after another. Without it each would count the same
    leads under READ COMMITTED and together they would go past the cap.

    Taken first, before any lead row is locked: every create of the account then locks in the
    same order (account, then leads), so a batch holding lead rows can never wait for the account
    while the account's holder waits for those rows. NO KEY UPDATE leaves alone the KEY SHARE locks
    that inserting rows which reference the account takes."""
    if account.lead_limit is None:
        return
    no_key = connection.features.has_select_for_no_key_update
    list(Account.objects.select_for_update(no_key=no_key).filter(pk=account.pk).values_list("pk", flat=True))


def lock_identities(account: Account, values) -> None:
    """PostgreSQL: take a transaction-scoped advisory lock per identity (email / external_id) in one
    sorted order, before touching any lead row. Concurrent batches with overlapping identities then
    queue behind each other instead of deadlocking (one holding rows the other's insert waits on,
    and the reverse). One statement, whatever the batch size."""
    if connection.vendor != "postgresql":
        return
    keys = set()
    for v in values:
        for kind in ("email", "external_id"):
            if v.get(kind):
                digest = hashlib.blake2b(f"{account.pk}:{kind}:{v[kind]}".encode(), digest_size=8).digest()
                keys.add(int.from_bytes(digest, "big", signed=True))
    if keys:
        with connection.cursor() as cursor:
            # unnest() yields the array's elements in order, so the locks are taken in sorted order.
            cursor.execute("SELECT count(pg_advisory_xact_lock(k)) FROM unnest(%s::bigint[]) AS k", [sorted(keys)])


def _check_cap(account: Account, new_indices: list[int]) -> tuple[list[int], list[int]]:
    """Split new items into those within the plan's lead cap and those beyond it (the account row
    is locked by `_lock_for_cap` when it has a cap)."""
    limit = account.lead_limit
    if limit is None or not new_indices:
        return new_indices, []
    remaining = max(0, limit - lead_queryset(account=account).count())
    return new_indices[:remaining], new_indices[remaining:]


def leads_batch_create(
    *,
    account: Account,
    actor: Actor | None,
    items: Sequence[dict[str, Any] | ApplicationError],
    on_duplicate: str = "error",
    dry_run: bool = False,
) -> BatchResult:
    """Create many leads with the dedup rules of single create (§4.4, §4.5).

    `items` are validated inputs, or the ApplicationError their validation raised. Every item
    gets a result in input order; nothing is written with `dry_run` (the work is rolled back).
    """
    results: list[ItemResult | None] = [None] * len(items)
    member_ids = _member_ids(account, items)
    normalized: dict[int, dict[str, Any]] = {}
    for index, item in enumerate(items):
        if isinstance(item, ApplicationError):
            results[index] = _fail(index, item)
            continue
        try:
            values = normalize_lead_data(account=account, data=item, member_ids=member_ids)
            require_identity(values)
        except ApplicationError as exc:
            results[index] = _fail(index, exc)
            continue
        normalized[index] = values

    _mark_duplicates_in_batch(normalized, results)
    candidates = {i: v for i, v in normalized.items() if results[i] is None}

    with transaction.atomic():
        if candidates:
            _lock_for_cap(account)
            lock_identities(account, candidates.values())
            _refuse_suppressed(account, candidates, results)
        by_email, by_ext = lookup_identities(account, list(candidates.values()), lock=on_duplicate == "update")
        matched: dict[int, Lead] = {}
        new: list[int] = []
        for index, values in candidates.items():
            existing = identity_match(values, by_email, by_ext)
            if existing is not None:
                matched[index] = existing
            else:
                new.append(index)
        new, over_cap = _check_cap(account, new)
        for index in over_cap:
            results[index] = _fail(
                index,
                PlanLimitReached(
                    f"The {account.plan} plan allows {account.lead_limit} leads.", limit=account.lead_limit
                ),
            )

        soft = SoftDuplicateIndex(account, [candidates[i] for i in new])
        rows: dict[int, Lead] = {}
        for index in new:
            values = candidates[index]
            lead = Lead(id=uuid.uuid4(), account=account, **values)
            lead.possible_duplicate_of_id = soft.find(values)
            soft.add(values, lead.id)
            rows[index] = lead
        if rows:
            # In identity order: two batches inserting overlapping identities then wait for each
            # other in the same order instead of deadlocking on each other's unique index entries.
            Lead.objects.bulk_create(sorted(rows.values(), key=_identity_order), ignore_conflicts=True)
            inserted = set(
                lead_queryset(account=account).filter(id__in=[r.id for r in rows.values()]).values_list("id", flat=True)
            )
            lost = [i for i, lead in rows.items() if lead.id not in inserted]
            for index in rows.keys() - set(lost):
                results[index] = ItemResult(index=index, status=201, lead=rows[index], outcome="created")
            if lost:
                # Another transaction committed the same identity between our lookup and insert.
                late_email, late_ext = lookup_identities(
                    account, [candidates[i] for i in lost], lock=on_duplicate == "update"
                )
                for index in lost:
                    existing = identity_match(candidates[index], late_email, late_ext)
                    if existing is None:
                        results[index] = _fail(index, Conflict("A concurrent change conflicted; retry this item."))
                    else:
                        matched[index] = existing
                _repoint_soft_duplicates(account, rows, lost)

        _resolve_matches(account, actor, matched, candidates, results, on_duplicate)
        _score_and_announce(account, results)
        if dry_run:
            transaction.set_rollback(True)
    return BatchResult(results=[r for r in results if r is not None])


SUPPRESSED_DETAIL = "This email is on the account's suppression list; an admin can lift it."


def suppressed_error() -> Suppressed:
    """409 suppressed, naming the email field so forms and clients can show it next to it."""
    return Suppressed(SUPPRESSED_DETAIL, errors=[field_error("email", SUPPRESSED_DETAIL, "suppressed")])


def _refuse_suppressed(account: Account, candidates: dict[int, dict[str, Any]], results: list) -> None:
    """Fail the items whose email the account suppressed (§4.12), whatever `on_duplicate` says: one
    query for the whole batch. Runs after `lock_identities`, so an erase of the same email that is
    still in flight (it holds the same lock) has committed, suppression included, before we look."""
    emails = {v["email"] for v in candidates.values() if v.get("email")}
    suppressed = suppressed_emails(account=account, emails=emails) if emails else set()
    for index in [i for i, v in candidates.items() if v.get("email") in suppressed]:
        results[index] = _fail(index, suppressed_error())
        del candidates[index]


def _score_and_announce(account: Account, results: list) -> None:
    """Score what this batch created or changed (one UPDATE each), then write one event per lead
    (one INSERT each): lead.created with the lead, lead.updated with before/after of each field."""
    created = [r.lead for r in results if r is not None and r.ok and r.outcome == "created"]
    updated = [r for r in results if r is not None and r.ok and r.outcome == "updated" and r.changes]
    leads_apply_scores(account=account, leads=created, announce=False)
    leads_apply_scores(account=account, leads=[r.lead for r in updated])
    events_record(
        account=account,
        type=EventType.LEAD_CREATED,
        items=[(lead.pk, {"lead": lead_to_dict(lead)}) for lead in created],
    )
    events_record(
        account=account,
        type=EventType.LEAD_UPDATED,
        items=[(r.lead.pk, {"lead": lead_to_dict(r.lead), "changes": lead_changes(r.changes)}) for r in updated],
    )


def _identity_order(lead: Lead) -> tuple[str, str]:
    return (lead.email or "", lead.external_id or "")


def _repoint_soft_duplicates(account: Account, rows: dict[int, Lead], lost: list[int]) -> None:
    """Rows that went in may name (possible_duplicate_of) an item of this batch that lost its race
    and was never inserted: find their soft match again among the leads that exist now."""
    lost_ids = {rows[index].id for index in lost}
    stale = [lead for lead in rows.values() if lead.id not in lost_ids and lead.possible_duplicate_of_id in lost_ids]
    if not stale:
        return
    soft_values = [{f: getattr(lead, f) for f in SOFT_DUPLICATE_FIELDS} for lead in stale]
    soft = SoftDuplicateIndex(account, soft_values)
    for lead, values in zip(stale, soft_values, strict=True):
        lead.possible_duplicate_of_id = soft.find(values, exclude_id=lead.id)
    Lead.objects.bulk_update(stale, ["possible_duplicate_of"])


def _mark_duplicates_in_batch(normalized: dict[int, dict[str, Any]], results: list) -> None:
    first_email: dict[str, int] = {}
    first_ext: dict[str, int] = {}
    for index, values in normalized.items():
        email, ext = values.get("email"), values.get("external_id")
        earlier = first_email.get(email) if email else None
        what = "email"
        if earlier is None and ext:
            earlier, what = first_ext.get(ext), "external_id"
        if earlier is not None:
            results[index] = _fail(
                index,
                DuplicateInBatch(f"Item {earlier} of this batch has the same {what}.", duplicate_of_index=earlier),
            )
            continue
        if email:
            first_email[email] = index
        if ext:
            first_ext[ext] = index


def _resolve_matches(account, actor, matched: dict[int, Lead], candidates, results, on_duplicate: str) -> None:
    """Items whose identity exists: 409, skipped, or merged with one bulk UPDATE."""
    to_update: dict[int, tuple[Lead, dict]] = {}
    for index, existing in matched.items():
        values = candidates[index]
        if on_duplicate == "skip":
            results[index] = ItemResult(index=index, status=200, lead=existing, outcome="skipped")
        elif on_duplicate == "update":
            to_update[index] = (existing, values)
        else:
            on = "email" if values.get("email") and values["email"] == existing.email else "external_id"
            results[index] = _fail(
                index, DuplicateLead(f"A lead with this {on} already exists.", existing_id=str(existing.pk))
            )
    if not to_update:
        return
    # One lead may be the match of several items only if they were duplicates in batch: excluded above.
    soft = SoftDuplicateIndex(
        account, [v for _, v in to_update.values()], exclude_ids={lead.pk for lead, _ in to_update.values()}
    )
    changed_leads: dict[int, Lead] = {}
    fields: set[str] = set()
    now = timezone.now()
    for index, (lead, values) in to_update.items():
        try:
            changed = apply_changes(lead, values, merge=True)
        except ApplicationError as exc:  # the merged lead would exceed a per-lead cap
            results[index] = _fail(index, exc)
            continue
        if changed:
            if SOFT_DUPLICATE_FIELDS & changed.keys():
                lead.possible_duplicate_of_id = soft.find(
                    {f: getattr(lead, f) for f in SOFT_DUPLICATE_FIELDS}, exclude_id=lead.pk
                )
                fields.add("possible_duplicate_of_id")
            lead.version += 1
            lead.updated_at = now
            fields.update(changed)
            changed_leads[index] = lead
        results[index] = ItemResult(index=index, status=200, lead=lead, outcome="updated", changes=changed)
    _bulk_save(changed_leads, fields, results)


def _bulk_save(changed: dict[int, Lead], fields: set[str], results: list) -> None:
    """One bulk UPDATE; if a unique constraint objects, save item by item to find the culprit."""
    if not changed:
        return
    columns = sorted(fields | {"version", "updated_at"})
    try:
        with transaction.atomic():
            Lead.objects.bulk_update(changed.values(), columns)
        return
    except IntegrityError:
        pass
    for index, lead in changed.items():
        try:
            with transaction.atomic():
                Lead.objects.bulk_update([lead], columns)
        except IntegrityError:
            other = find_other_identity_holder(account=lead.account, lead=lead)
            results[index] = _fail(
                index,
                DuplicateLead(
                    "Another lead already has this email or external_id.", existing_id=str(other.pk) if other else None
                ),
            )


def leads_batch_update(
    *,
    account: Account,
    actor: Actor | None,
    items: Sequence[dict[str, Any] | ApplicationError],
    dry_run: bool = False,
) -> BatchResult:
    """Partially update many leads by id; `add_tags` / `remove_tags` edit tags without replacing them."""
    results: list[ItemResult | None] = [None] * len(items)
    member_ids = _member_ids(account, items)
    wanted: dict[int, dict[str, Any]] = {}
    seen_ids: dict[uuid.UUID, int] = {}
    for index, item in enumerate(items):
        if isinstance(item, ApplicationError):
            results[index] = _fail(index, item)
            continue
        if item["id"] in seen_ids:
            results[index] = _fail(
                index,
                DuplicateInBatch(
                    f"Item {seen_ids[item['id']]} of this batch updates the same lead.",
                    duplicate_of_index=seen_ids[item["id"]],
                ),
            )
            continue
        seen_ids[item["id"]] = index
        wanted[index] = item

    with transaction.atomic():
        # New emails are locked before any lead row, in the order creates and erasures lock them.
        lock_identities(account, [{"email": _email_of(item)} for item in wanted.values() if _email_of(item)])
        leads = {lead.pk: lead for lead in lead_queryset(account=account).select_for_update().filter(pk__in=seen_ids)}
        changed_leads: dict[int, Lead] = {}
        fields: set[str] = set()
        touched: dict[int, dict[str, Any]] = {}
        now = timezone.now()
        for index, item in wanted.items():
            lead = leads.get(item["id"])
            if lead is None:
                results[index] = _fail(index, NotFound("No such lead."))
                continue
            data = {k: v for k, v in item.items() if k not in ("id", "add_tags", "remove_tags")}
            try:
                values = normalize_lead_data(
                    account=account, data=data, member_ids=member_ids, country_hint=lead.country
                )
                tags = values.get("tags", lead.tags)
                if item.get("add_tags"):
                    tags = norm.normalize_tags([*tags, *item["add_tags"]])
                if item.get("remove_tags"):
                    removed = set(norm.normalize_tags(item["remove_tags"]))
                    tags = [t for t in tags if t not in removed]
                if "tags" in values or item.get("add_tags") or item.get("remove_tags"):
                    values["tags"] = tags
                check_lead_size(values)
                require_identity(
                    {
                        "email": values.get("email", lead.email),
                        "phone": values.get("phone", lead.phone),
                        "external_id": values.get("external_id", lead.external_id),
                    }
                )
            except ApplicationError as exc:
                results[index] = _fail(index, exc)
                continue
            touched[index] = values
        _check_identity_changes(account, leads, wanted, touched, results)
        _refuse_suppressed_changes(account, leads, wanted, touched, results)
        soft = SoftDuplicateIndex(
            account,
            [
                {f: v.get(f, getattr(leads[wanted[i]["id"]], f)) for f in SOFT_DUPLICATE_FIELDS}
                for i, v in touched.items()
                if results[i] is None and SOFT_DUPLICATE_FIELDS & v.keys()
            ],
        )
        for index, values in touched.items():
            if results[index] is not None:
                continue
            lead = leads[wanted[index]["id"]]
            changed = apply_changes(lead, values)
            if changed:
                if SOFT_DUPLICATE_FIELDS & changed.keys():
                    lead.possible_duplicate_of_id = soft.find(
                        {f: getattr(lead, f) for f in SOFT_DUPLICATE_FIELDS}, exclude_id=lead.pk
                    )
                    fields.add("possible_duplicate_of_id")
                lead.version += 1
                lead.updated_at = now
                fields.update(changed)
                changed_leads[index] = lead
            results[index] = ItemResult(
                index=index, status=200, lead=lead, outcome="updated" if changed else "unchanged", changes=changed
            )
        _bulk_save(changed_leads, fields, results)
        _score_and_announce(account, results)
        if dry_run:
            transaction.set_rollback(True)
    return BatchResult(results=[r for r in results if r is not None])


def _email_of(item: dict[str, Any]) -> str | None:
    value = item.get("email")
    return norm.normalize_email(value) if isinstance(value, str) else None


def _refuse_suppressed_changes(account, leads, wanted, touched, results) -> None:
    """An update may not give a lead a suppressed email (one query for the batch); keeping the
    email it has is fine, even if that email was suppressed after the lead was created."""
    new_email = {
        i: v["email"]
        for i, v in touched.items()
        if results[i] is None and v.get("email") and v["email"] != leads[wanted[i]["id"]].email
    }
    suppressed = suppressed_emails(account=account, emails=set(new_email.values())) if new_email else set()
    for index, email in new_email.items():
        if email in suppressed:
            results[index] = _fail(index, suppressed_error())


def _check_identity_changes(account, leads, wanted, touched, results) -> None:
    """New emails / external_ids must not belong to another lead, in the database or earlier in the batch."""
    new_email = {
        i: v["email"] for i, v in touched.items() if v.get("email") and v["email"] != leads[wanted[i]["id"]].email
    }
    new_ext = {
        i: v["external_id"]
        for i, v in touched.items()
        if v.get("external_id") and v["external_id"] != leads[wanted[i]["id"]].external_id
    }
    if not new_email and not new_ext:
        return
    others = (
        lead_queryset(account=account)
        .filter(Q(email__in=set(new_email.values())) | Q(external_id__in=set(new_ext.values())))
        .only("id", "email", "external_id")
    )
    by_email, by_ext = identity_index(others)
    claimed_email: dict[str, int] = {}
    claimed_ext: dict[str, int] = {}
    for index in sorted(touched):
        own_id = wanted[index]["id"]
        email, ext = new_email.get(index), new_ext.get(index)
        for value, index_map, claimed in ((email, by_email, claimed_email), (ext, by_ext, claimed_ext)):
            if value is None or results[index] is not None:
                continue
            holder = index_map.get(value)
            if holder is not None and holder.pk != own_id:
                results[index] = _fail(
                    index,
                    DuplicateLead("Another lead already has this email or external_id.", existing_id=str(holder.pk)),
                )
            elif value in claimed:
                results[index] = _fail(
                    index,
                    DuplicateInBatch(
                        f"Item {claimed[value]} of this batch sets the same value.", duplicate_of_index=claimed[value]
                    ),
                )
            else:
                claimed[value] = index


def _delete_rows(account: Account, ids: set[uuid.UUID]) -> None:
    """One UPDATE and two DELETEs for any number of leads.

    QuerySet.delete() runs Django's collector, which loads every row and deletes in chunks of 100;
    the relations to Lead are its own `possible_duplicate_of` (SET_NULL), cleared here in one
    statement first, and its notes (CASCADE), deleted in one statement.
    Should another relation appear, fall back to the collector, which honours it.
    """
    rows = lead_queryset(account=account).filter(pk__in=ids)
    relations = {
        (rel.related_model, rel.field.name)
        for rel in get_candidate_relations_to_delete(Lead._meta)
        if rel.on_delete is not DO_NOTHING  # LeadRank: the database cascades it
    }
    if relations != {(Lead, "possible_duplicate_of"), (Note, "lead")}:
        rows.delete()
        return
    lead_queryset(account=account).filter(possible_duplicate_of_id__in=ids).update(possible_duplicate_of=None)
    notes = Note.objects.for_account(account).filter(lead_id__in=ids)  # nothing refers to a note
    notes._raw_delete(notes.db)
    rows._raw_delete(rows.db)


def leads_batch_delete(
    *, account: Account, actor: Actor | None, ids: Sequence[Any], dry_run: bool = False
) -> BatchResult:
    """Delete many leads by id; ids of other accounts (or unknown, or malformed) are 404 per item."""
    results: list[ItemResult | None] = [None] * len(ids)
    parsed: dict[int, uuid.UUID] = {}
    seen: dict[uuid.UUID, int] = {}
    for index, raw in enumerate(ids):
        try:
            pk = uuid.UUID(str(raw))
        except ValueError:
            results[index] = _fail(index, NotFound("No such lead."))
            continue
        if pk in seen:
            results[index] = _fail(
                index,
                DuplicateInBatch(f"Item {seen[pk]} of this batch deletes the same lead.", duplicate_of_index=seen[pk]),
            )
            continue
        seen[pk] = index
        parsed[index] = pk
    with transaction.atomic():
        snapshots = {
            row["id"]: row
            for row in lead_queryset(account=account)
            .select_for_update()
            .filter(pk__in=parsed.values())
            .values("id", "email", "external_id")
        }
        existing = set(snapshots)
        if existing:
            _delete_rows(account, existing)
            events_record(
                account=account,
                type=EventType.LEAD_DELETED,
                items=[(pk, {"lead": {**row, "id": str(pk)}}) for pk, row in snapshots.items()],
            )
        for index, pk in parsed.items():
            if pk in existing:
                results[index] = ItemResult(index=index, status=204, deleted_id=str(pk), outcome="deleted")
            else:
                results[index] = _fail(index, NotFound("No such lead."))
        if dry_run:
            transaction.set_rollback(True)
    return BatchResult(results=[r for r in results if r is not None])
