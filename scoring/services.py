"""Scoring: rules CRUD (each change enqueues a recalculation), scoring leads in SQL, the chunked
recalculation job, and the rule preview."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext, suppress
from typing import Any

from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, connection, transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from accounts.actor import Actor
from accounts.models import Account
from jobs.models import Job, JobKind
from jobs.services import job_create, job_fail, job_progress, job_requeue, job_start, job_succeed
from leads.models import Lead
from leads.selectors import lead_filter, lead_queryset
from webhooks.models import EventType
from webhooks.services import events_fan_out, events_record, feed_lock_keys

from .compiler import rule_condition, score_expressions, validate_rule
from .models import ScoringRule
from .selectors import active_rules, rule_get

RECALCULATION_CHUNK = 10_000
# Errors worth a retry of the whole recalculation (a dropped connection, a failover): it is idempotent.
TRANSIENT_DB_ERRORS = (OperationalError, InterfaceError)
RULE_FIELDS = ("name", "field", "operator", "value", "points", "active")
SCORE_BUCKETS = [(lo, lo + 10) for lo in range(0, 100, 10)]  # the last bucket includes 100


def leads_score(
    *, account: Account, lead_ids: Iterable, rules: list[ScoringRule] | None = None, bump_version: bool = False
) -> dict:
    """Score these leads now, in one UPDATE; returns {id: (score, breakdown, scored_at, version)}."""
    ids = list(lead_ids)
    if not ids:
        return {}
    rules = active_rules(account=account) if rules is None else rules
    score, breakdown = score_expressions(rules)
    updates: dict[str, Any] = {"score": score, "score_breakdown": breakdown, "scored_at": timezone.now()}
    if bump_version:
        updates["version"] = F("version") + 1
    qs = lead_queryset(account=account).filter(pk__in=ids)
    qs.update(**updates)
    return {row[0]: row[1:] for row in qs.values_list("id", "score", "score_breakdown", "scored_at", "version")}


def leads_apply_scores(*, account: Account, leads: list[Lead], announce: bool = True) -> None:
    """Score freshly written leads (create/update paths) and copy the result onto the objects.
    Nothing to do while the account has no active rule: a lead then keeps score 0. With
    `announce`, a lead whose score changed gets a lead.scored event (creates carry it already)."""
    if not leads:
        return
    rules = active_rules(account=account)
    if not rules:
        return
    before = {lead.pk: lead.score for lead in leads}
    scored = leads_score(account=account, lead_ids=[lead.pk for lead in leads], rules=rules)
    for lead in leads:
        lead.score, lead.score_breakdown, lead.scored_at, lead.version = scored[lead.pk]
    if announce:
        announce_scores(
            account=account, rows=[(lead.pk, before[lead.pk], lead.score, lead.score_breakdown) for lead in leads]
        )


def announce_scores(*, account: Account, rows: list[tuple]) -> None:
    """lead.scored events for (lead_id, previous, score, breakdown) rows whose score changed."""
    events_record(
        account=account,
        type=EventType.LEAD_SCORED,
        items=[
            (pk, {"lead_id": str(pk), "previous_score": old, "score": new, "score_breakdown": breakdown})
            for pk, old, new, breakdown in rows
            if old != new
        ],
    )


def lead_score_now(*, account: Account, actor: Actor | None, lead_id) -> Lead:
    """POST /leads/{id}/score: rescore one lead now."""
    from leads.selectors import lead_get

    with transaction.atomic():
        lead = lead_get(account=account, lead_id=lead_id, for_update=True)
        previous = lead.score
        scored = leads_score(account=account, lead_ids=[lead.pk], bump_version=True)
        lead.score, lead.score_breakdown, lead.scored_at, lead.version = scored[lead.pk]
        announce_scores(account=account, rows=[(lead.pk, previous, lead.score, lead.score_breakdown)])
    return lead


def account_rescore(*, account_id: int, job_id=None, params: dict | None = None) -> dict:
    """Rescore an account's leads (optionally filtered) in chunks of RECALCULATION_CHUNK by id.

    Each chunk is one UPDATE that skips rows whose score and breakdown would not change, so a
    rerun with unchanged rules writes almost nothing. Progress goes to the job after each chunk.
    On PostgreSQL, outside a transaction (a Celery task, a benchmark), chunks run on
    LEADBASE_RESCORE_WORKERS connections at once: they touch disjoint leads, and each takes the rows
    before the feed lock, as every writer does. Inside a transaction (tests, a caller's atomic block)
    other connections could not see its rows, so the chunks run one after another on this one.
    """
    account = Account.objects.get(pk=account_id)
    rules = active_rules(account=account)
    score, breakdown = score_expressions(rules)
    base = lead_filter(account=account, params=params) if params else lead_queryset(account=account)
    total = base.count()
    if job_id is not None:
        job_start(job_id=job_id, total=total)
    workers = settings.LEADBASE_RESCORE_WORKERS
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        workers = 1
    done = changed = 0
    with ThreadPoolExecutor(max_workers=workers) if workers > 1 else nullcontext() as pool:
        pending: deque = deque()
        for chunk, size in _chunks(base, total):
            if pool is None:
                changed += _rescore_chunk(account, chunk, score, breakdown)
                done += size
            else:
                pending.append((pool.submit(_rescore_chunk_on_own_connection, account, chunk, score, breakdown), size))
                if len(pending) < workers:
                    continue
                future, size = pending.popleft()
                changed += future.result()
                done += size
            if job_id is not None:
                job_progress(job_id=job_id, done=done)
        for future, size in pending:
            changed += future.result()
            done += size
            if job_id is not None:
                job_progress(job_id=job_id, done=done)
    result = {"leads": total, "changed": changed, "rules": len(rules)}
    if job_id is not None:
        job_succeed(job_id=job_id, result=result)
    return result


def _chunks(base, total: int):
    """(chunk queryset, its size) in id order, RECALCULATION_CHUNK leads each."""
    last, done = None, 0
    while True:
        remaining = base.filter(pk__gt=last) if last is not None else base
        bound = remaining.order_by("pk").values_list("pk", flat=True)[RECALCULATION_CHUNK - 1 : RECALCULATION_CHUNK]
        bound = next(iter(bound), None)
        if bound is None:
            yield remaining, max(0, total - done)
            return
        yield remaining.filter(pk__lte=bound), RECALCULATION_CHUNK
        done += RECALCULATION_CHUNK
        last = bound


def _rescore_chunk_on_own_connection(account: Account, chunk, score, breakdown) -> int:
    """A worker thread's chunk, on the thread's own connection, closed when it is done."""
    try:
        return _rescore_chunk(account, chunk, score, breakdown)
    finally:
        connection.close()


def _rescore_chunk(account: Account, chunk, score, breakdown) -> int:
    """Rescore one chunk in SQL, touching only rows that change, and announce them (lead.scored)."""
    if connection.vendor == "postgresql":
        return _rescore_chunk_postgres(account, chunk, score, breakdown)
    with transaction.atomic():
        before = dict(chunk.exclude(score=score, score_breakdown=breakdown).values_list("pk", "score"))
        if not before:
            return 0
        rows = lead_queryset(account=account).filter(pk__in=before)
        rows.update(score=score, score_breakdown=breakdown, scored_at=timezone.now(), version=F("version") + 1)
        announce_scores(
            account=account,
            rows=[(pk, before[pk], new, bd) for pk, new, bd in rows.values_list("pk", "score", "score_breakdown")],
        )
    return len(before)


# One statement per chunk, with the locks in the order every other writer takes them: a lead write
# locks its row, then takes the account's feed lock to append its event (the reverse order deadlocks
# with it; a test reproduces that).
# - `candidates`: the chunk's leads whose score or breakdown would change, with the new values,
#   evaluated once on the chunk's id range.
# - `changed`: the UPDATE finds them by primary key (`= ANY(ARRAY(...))` keeps the planner on the
#   index) and writes only rows whose version is still the one scored (a lead edited meanwhile was
#   rescored by that edit). The lead row has no index on what changes (leads.models.LeadRank), so
#   the update is heap-only wherever the page has room.
# - `feed_lock` counts every row of `changed` before it takes the feed lock, so the lock comes after
#   all the row locks; each event row is built from a row of `changed` and the one `feed_lock` row,
#   so no event is inserted before the lock is held.
# - the lead.scored events, one per lead whose score changed, in id order, with the payload
#   `announce_scores` writes.
RESCORE_CHUNK_SQL = """
WITH candidates AS ({candidates}),
changed AS (
    UPDATE leads_lead
       SET score = candidates.new_score, score_breakdown = candidates.new_breakdown,
           scored_at = %s, version = leads_lead.version + 1
      FROM candidates
     WHERE leads_lead.id = ANY(ARRAY(SELECT id FROM candidates)) AND leads_lead.id = candidates.id
       AND leads_lead.version = candidates.version
 RETURNING leads_lead.id, candidates.score AS previous_score, leads_lead.score, leads_lead.score_breakdown
),
feed_lock AS (
    SELECT count(*) AS rows, pg_advisory_xact_lock(%s, %s) AS locked FROM changed
),
events AS (
    INSERT INTO webhooks_event (account_id, type, lead_id, data, created_at)
    SELECT %s, %s, changed.id, jsonb_build_object(
               'lead_id', changed.id::text, 'previous_score', changed.previous_score,
               'score', changed.score, 'score_breakdown', changed.score_breakdown),
           %s
      FROM changed CROSS JOIN feed_lock
     WHERE changed.previous_score <> changed.score
     ORDER BY changed.id
 RETURNING id
)
SELECT (SELECT rows FROM feed_lock), COALESCE((SELECT array_agg(id ORDER BY id) FROM events), '{{}}')
"""


def _rescore_chunk_postgres(account: Account, chunk, score, breakdown) -> int:
    candidates = (
        chunk.exclude(score=score, score_breakdown=breakdown)
        .annotate(new_score=score, new_breakdown=breakdown)
        .order_by()
        .values("id", "score", "version", "new_score", "new_breakdown")
    )
    candidates_sql, candidates_params = candidates.query.sql_with_params()
    now = timezone.now()
    lock_class, lock_key = feed_lock_keys(account_id=account.pk)
    params = [*candidates_params, now, lock_class, lock_key, account.pk, EventType.LEAD_SCORED, now]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(RESCORE_CHUNK_SQL.format(candidates=candidates_sql), params)
        changed, event_ids = cursor.fetchone()
        events_fan_out(account=account, type=EventType.LEAD_SCORED, event_ids=event_ids)
    return changed


def recalculation_enqueue(*, account: Account, actor: Actor | None, params: dict | None = None) -> Job:
    """Create a recalculation job and enqueue its Celery task after the transaction commits."""
    from .tasks import recalculate_account

    params = dict(params or {})
    if params:
        lead_filter(account=account, params=params)  # a bad filter is a 400 now, not a failed job
    return job_create(
        account=account,
        actor=actor,
        kind=JobKind.SCORE_RECALCULATION,
        params=params,
        enqueue=lambda job: recalculate_account.delay(account.pk, str(job.pk)),
    )


def recalculation_run(*, account_id: int, job_id, will_retry: bool = False) -> None:
    """The task body: run, and record any failure on the job instead of losing it. A transient
    database error that the task is going to retry (`will_retry`) is not a failure yet: the job goes
    back to queued until the retry starts it again; on the last attempt it is recorded as failed."""
    try:
        job = Job.objects.get(pk=job_id, account_id=account_id)
        account_rescore(account_id=account_id, job_id=job.pk, params=job.params or None)
    except TRANSIENT_DB_ERRORS as exc:
        error = f"{type(exc).__name__}: {exc}"
        with suppress(DatabaseError):  # the database may still be away; the retry will restart the job
            if will_retry:
                job_requeue(job_id=job_id, reason=error)
            else:
                job_fail(job_id=job_id, error=error)
        raise
    except Exception as exc:
        job_fail(job_id=job_id, error=f"{type(exc).__name__}: {exc}")
        raise


def _validated(data: dict[str, Any], current: ScoringRule | None = None) -> dict[str, Any]:
    merged = {name: getattr(current, name) for name in RULE_FIELDS} if current else {}
    merged.update(data)
    merged["value"] = validate_rule(field=merged["field"], operator=merged["operator"], value=merged.get("value"))
    return merged


def scoring_rule_create(*, account: Account, actor: Actor | None, data: dict[str, Any]) -> tuple[ScoringRule, Job]:
    """Create a rule; its effect on existing leads comes from the recalculation job it enqueues."""
    values = _validated(data)
    with transaction.atomic():
        rule = ScoringRule.objects.create(account=account, **{k: values[k] for k in RULE_FIELDS if k in values})
        job = recalculation_enqueue(account=account, actor=actor)
    return rule, job


def scoring_rule_update(
    *, account: Account, actor: Actor | None, rule_id, data: dict[str, Any]
) -> tuple[ScoringRule, Job]:
    with transaction.atomic():
        rule = rule_get(account=account, rule_id=rule_id)
        values = _validated(data, rule)
        for name in RULE_FIELDS:
            setattr(rule, name, values[name])
        rule.save()
        job = recalculation_enqueue(account=account, actor=actor)
    return rule, job


def scoring_rule_delete(*, account: Account, actor: Actor | None, rule_id) -> Job:
    with transaction.atomic():
        rule_get(account=account, rule_id=rule_id).delete()
        return recalculation_enqueue(account=account, actor=actor)


def rule_preview(*, account: Account, data: dict[str, Any], rule_id=None) -> dict[str, Any]:
    """How many leads a (possibly unsaved) rule matches, and the score distribution before/after."""
    current = rule_get(account=account, rule_id=rule_id) if rule_id is not None else None
    values = _validated(data, current)
    candidate = ScoringRule(pk=current.pk if current else 0, account=account, **{k: values[k] for k in RULE_FIELDS})
    rules = [r for r in active_rules(account=account) if current is None or r.pk != current.pk]
    if candidate.active:
        rules.append(candidate)
    new_score, _ = score_expressions(rules)
    condition = rule_condition(candidate.field, candidate.operator, candidate.value)
    aggregates: dict[str, Any] = {"total": Count("pk"), "matches": Count("pk", filter=condition)}
    for index, (lo, hi) in enumerate(SCORE_BUCKETS):
        upper = {"__lte": 100} if hi == 100 else {"__lt": hi}
        aggregates[f"b{index}"] = Count("pk", filter=Q(score__gte=lo, **{f"score{k}": v for k, v in upper.items()}))
        aggregates[f"a{index}"] = Count(
            "pk", filter=Q(new_score__gte=lo, **{f"new_score{k}": v for k, v in upper.items()})
        )
    row = lead_queryset(account=account).annotate(new_score=new_score).aggregate(**aggregates)
    buckets = [f"{lo}-{hi - 1 if hi < 100 else 100}" for lo, hi in SCORE_BUCKETS]
    return {
        "matches": row["matches"],
        "total": row["total"],
        "distribution": {
            "buckets": buckets,
            "before": [row[f"b{i}"] for i in range(len(SCORE_BUCKETS))],
            "after": [row[f"a{i}"] for i in range(len(SCORE_BUCKETS))],
        },
    }
