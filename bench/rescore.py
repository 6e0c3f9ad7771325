"""Rescoring 1,000,000 leads with `account_rescore` on PostgreSQL (issue 5: >= 20,000 leads/s).

    python -m bench.rescore --database-url postgres://postgres@127.0.0.1:5432/leadbase_bench

Fills the account "bench-score" to exactly --rows leads (COPY, generating only what is missing),
replaces its scoring rules with five realistic ones created through the services, then times
full recalculations of the account, each as the job a rule change runs (chunks, progress):

1. every lead's stored score made stale first, so every row is rewritten;
2. rules unchanged: every row is compared in SQL and none is written;
3. one rule's points changed: only the leads it matches are rewritten.

For scale, the floor: a plain UPDATE (no scoring at all) of 100,000 of the same rows in the same
chunks, rolled back. Rewriting a lead costs what the table's indexes cost, whatever computes it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time

import psycopg

from .common import bench_account, default_database_url, ensure_database, setup_django
from .generate import account_id, copy_leads

ACCOUNT = "bench-score"
ROWS = 1_000_000
TARGET = 20_000  # leads/s
FLOOR_ROWS = 100_000

RULES = [
    {"name": "Decision maker", "field": "job_title", "operator": "in",
     "value": ["CTO", "VP Engineering", "Founder", "Head of Sales"], "points": 25},
    {"name": "250+ employees", "field": "custom_fields.employees", "operator": "gte", "value": 250, "points": 20},
    {"name": "Hot or enterprise", "field": "tags", "operator": "in", "value": ["hot", "enterprise"], "points": 15},
    {"name": "Company address", "field": "email", "operator": "is_free_email", "value": False, "points": 10},
    {"name": "Disqualified", "field": "status", "operator": "in", "value": ["unqualified", "lost"], "points": -40},
]  # fmt: skip


def fill_account(database_url: str, slug: str, rows: int) -> tuple[int, int, float]:
    """The account with exactly `rows` leads: (account id, leads generated now, seconds spent)."""
    bench_account(database_url, slug)
    aid = account_id(database_url, slug)
    with psycopg.connect(database_url, autocommit=True) as conn:
        have = conn.execute("SELECT count(*) FROM leads_lead WHERE account_id = %s", (aid,)).fetchone()[0]
        if have > rows:
            conn.execute(
                "DELETE FROM leads_lead WHERE id IN (SELECT id FROM leads_lead WHERE account_id = %s LIMIT %s)",
                (aid, have - rows),
            )
    missing = max(0, rows - have)
    seconds = copy_leads(database_url, aid, missing, seed=have + 1) if missing else 0.0
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("ANALYZE leads_lead")
    return aid, missing, seconds


def make_stale(database_url: str, aid: int) -> None:
    """Give every lead a breakdown no rule set produces, so the next rescore must rewrite them all;
    drop the lead.scored events earlier runs left (with no webhook, nothing else refers to them)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            """UPDATE leads_lead SET score = 0, scored_at = NULL,
                   score_breakdown = '[{"rule_id": 0, "name": "stale", "points": 0}]'::jsonb
               WHERE account_id = %s""",
            (aid,),
        )
        with contextlib.suppress(psycopg.errors.UndefinedTable, psycopg.errors.ForeignKeyViolation):
            conn.execute("DELETE FROM webhooks_event WHERE account_id = %s AND type = 'lead.scored'", (aid,))
        conn.execute("VACUUM ANALYZE leads_lead")


def update_floor(database_url: str, aid: int, rows: int, chunk: int) -> float:
    """Seconds for a plain UPDATE of `rows` of the account's leads in chunks by id, rolled back."""
    with psycopg.connect(database_url) as conn:
        ids = [
            r[0]
            for r in conn.execute(
                "SELECT id FROM leads_lead WHERE account_id = %s ORDER BY id OFFSET %s LIMIT %s", (aid, rows, rows)
            )
        ]
        started = time.perf_counter()
        for start in range(0, len(ids), chunk):
            conn.execute(
                "UPDATE leads_lead SET score = (score + 1) %% 101, version = version + 1 WHERE id = ANY(%s)",
                (ids[start : start + chunk],),
            )
        seconds = time.perf_counter() - started
        conn.rollback()
    return seconds


def scored_events(account) -> int | None:
    from django.apps import apps

    if not apps.is_installed("webhooks"):
        return None
    return apps.get_model("webhooks", "Event").objects.filter(account=account, type="lead.scored").count()


def run(database_url: str, *, slug: str = ACCOUNT, rows: int | None = ROWS, chunk: int | None = None) -> list[str]:
    """Three timed recalculations of the account (rows=None: the account as it is); the markdown table."""
    ensure_database(database_url)
    if rows is None:
        bench_account(database_url, slug)
        aid = account_id(database_url, slug)
        with psycopg.connect(database_url) as conn:
            rows = conn.execute("SELECT count(*) FROM leads_lead WHERE account_id = %s", (aid,)).fetchone()[0]
        generated, copy_seconds = 0, 0.0
    else:
        aid, generated, copy_seconds = fill_account(database_url, slug, rows)
    print(f"account {slug!r}: {rows:,} leads ({generated:,} generated now in {copy_seconds:.1f} s)", flush=True)

    setup_django(database_url)
    from accounts.models import Account
    from jobs.models import Job
    from scoring import services, tasks
    from scoring.models import ScoringRule

    if chunk:
        services.RECALCULATION_CHUNK = chunk
    account = Account.objects.get(pk=aid)
    # Rule changes enqueue a recalculation each; here the benchmark runs (and times) it itself.
    tasks.recalculate_account.delay = lambda *a, **k: None
    for rule in ScoringRule.objects.filter(account=account):
        services.scoring_rule_delete(account=account, actor=None, rule_id=rule.pk)
    rules = [services.scoring_rule_create(account=account, actor=None, data=data)[0] for data in RULES]
    Job.objects.filter(account=account).delete()
    make_stale(database_url, aid)

    runs = []
    for label in ("every lead stale: all rewritten", "rules unchanged: none rewritten", "one rule's points changed"):
        if label.startswith("one rule"):
            services.scoring_rule_update(account=account, actor=None, rule_id=rules[1].pk, data={"points": 25})
        events_before = scored_events(account)
        job = services.recalculation_enqueue(account=account, actor=None)
        started = time.perf_counter()
        result = services.account_rescore(account_id=aid, job_id=job.pk)
        seconds = time.perf_counter() - started
        job.refresh_from_db()
        assert job.status == "succeeded" and job.progress_done == job.progress_total == rows, job
        events = None if events_before is None else scored_events(account) - events_before
        runs.append((label, result, seconds, events))
        print(f"  {label}: {result['changed']:,} of {result['leads']:,} changed in {seconds:.1f} s", flush=True)

    chunk = services.RECALCULATION_CHUNK
    floor_rows = min(FLOOR_ROWS, rows)
    floor = update_floor(database_url, aid, floor_rows, chunk)
    with psycopg.connect(database_url) as conn:
        version = conn.execute("SHOW server_version").fetchone()[0].split()[0]
        shared_buffers = conn.execute("SHOW shared_buffers").fetchone()[0]
        max_wal = conn.execute("SHOW max_wal_size").fetchone()[0]
        indexes = conn.execute("SELECT count(*) FROM pg_indexes WHERE tablename = 'leads_lead'").fetchone()[0]
        scores = conn.execute(
            "SELECT min(score), round(avg(score), 1), max(score) FROM leads_lead WHERE account_id = %s", (aid,)
        ).fetchone()
    lines = [
        f"account_rescore, {rows:,} leads, {len(RULES)} rules, chunks of {chunk:,}; PostgreSQL {version} "
        f"(shared_buffers {shared_buffers}, max_wal_size {max_wal}), leads_lead with {indexes} indexes, "
        f"{os.cpu_count()} cores; scores min/avg/max {scores[0]}/{scores[1]}/{scores[2]}. One run each.",
        "",
        "| run | leads | rows rewritten | lead.scored events | seconds | leads/s | ≥ 20,000 |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for label, result, seconds, events in runs:
        rate = result["leads"] / seconds
        shown = "n/a" if events is None else f"{events:,}"
        lines.append(f"| {label} | {result['leads']:,} | {result['changed']:,} | {shown} | {seconds:.1f} | "
                     f"{rate:,.0f} | {'met' if rate >= TARGET else '**missed**'} |")  # fmt: skip
    lines.append(f"| floor: plain UPDATE, no scoring (rolled back) | {floor_rows:,} | {floor_rows:,} | – | "
                 f"{floor:.1f} | {floor_rows / floor:,.0f} | – |")  # fmt: skip
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=default_database_url())
    parser.add_argument("--account", default=ACCOUNT)
    parser.add_argument("--rows", type=int, default=ROWS)
    parser.add_argument("--chunk", type=int, default=None, help="RECALCULATION_CHUNK (default: the service's)")
    args = parser.parse_args()
    print("\n".join(run(args.database_url, slug=args.account, rows=args.rows, chunk=args.chunk)))


if __name__ == "__main__":
    main()
