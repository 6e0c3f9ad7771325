"""Every benchmark at scale, in one command (issue 10): load the leads, run each benchmark, write the table.

    python -m bench.run_all --leads 1000000 --runs 5

1. Creates the benchmark database if it is missing (`--database-url`, default `BENCH_DATABASE_URL` or
   postgres://postgres@127.0.0.1:5432/leadbase_bench) and migrates it; Redis from `--redis-url`
   (default `BENCH_REDIS_URL` or redis://127.0.0.1:6379/14) serves the cache and the rate limiter.
2. Makes the table hold `--leads` generated leads across two accounts, 95% in `bench` (the account
   every benchmark measures) and 5% in `bench-b` (the one the webhook fan-out writes to): leads
   earlier benchmark runs created are deleted, missing ones are generated with COPY
   (bench/generate.py), then VACUUM ANALYZE (each benchmark vacuums again first: `common.ensure_database`).
3. Runs each benchmark in a process of its own (a fresh Django and fresh connections each):
   list pages, gunicorn + wrk load, batch create, rate limiter, webhook fan-out, exports, rescoring.
4. Writes bench/results.md (and prints it): the machine, the load average around each benchmark,
   and each benchmark's table, every figure beside its reference measured in the same run.

`--only list,http` runs some of them (names below); `--heavy-runs` sets the runs of the exports and
rescoring, which take minutes each (default 1).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

from .common import DEFAULT_REDIS, ROOT, bench_account, default_database_url, ensure_database, load_average, vacuum
from .generate import account_id, copy_leads

MAIN, SECOND = "bench", "bench-b"
# Generated leads are created in [2024-01-01, 2024-01-01 + 700 days); anything later was made by a benchmark.
GENERATED_UNTIL = "2025-12-01"

SECTIONS: dict[str, str] = {
    "list": "List pages: first page vs a deep cursor page, OFFSET for contrast, EXPLAIN",
    "http": "Single read and create through gunicorn + wrk, beside a bare Django view",
    "batch": "Batch create of 500 vs COPY vs 500 single creates",
    "ratelimit": "Rate limiter cost",
    "webhooks": "Webhook fan-out",
    "export": "Exports",
    "rescore": "Rescoring",
}


def run_section(name: str, args: argparse.Namespace) -> list[str]:
    """One benchmark, in this process (called in a child process by the orchestrator)."""
    db, runs = args.database_url, args.runs
    if name == "list":
        from . import list_pages

        return list_pages.run(db, slug=MAIN, runs=runs, depth=args.depth)
    if name == "http":
        from . import http_load

        return http_load.run(db, slug=MAIN, runs=runs, duration=args.duration)
    if name == "batch":
        from . import batch_create

        return batch_create.run(db, slug=MAIN, runs=runs, singles=args.singles)
    if name == "ratelimit":
        from . import ratelimit

        return ratelimit.run(db, redis_url=args.redis_url, requests_each=args.ratelimit_requests)
    if name == "webhooks":
        from . import webhooks_fanout

        webhooks_fanout.SLUG = SECOND
        return webhooks_fanout.run(db, runs=runs, events=args.events)
    if name == "export":
        from . import export

        return export.run(db, targets=[(MAIN, None)], runs=args.heavy_runs)
    if name == "rescore":
        from . import rescore

        lines: list[str] = []
        for _ in range(args.heavy_runs):
            lines = rescore.run(db, slug=MAIN, rows=None)
        return lines
    raise ValueError(name)


def reset_account(database_url: str, slug: str, rows: int) -> tuple[int, float]:
    """The account holds exactly `rows` generated leads: benchmark-made ones deleted, missing ones
    generated. Returns (leads generated now, seconds)."""
    bench_account(database_url, slug)
    acct = account_id(database_url, slug)
    with psycopg.connect(database_url) as conn:
        doomed = "SELECT id FROM leads_lead WHERE account_id = %s AND created_at >= %s"
        # possible_duplicate_of points at other leads: unlink before deleting what it points at.
        conn.execute(
            f"UPDATE leads_lead SET possible_duplicate_of_id = NULL WHERE possible_duplicate_of_id IN ({doomed})",  # noqa: S608
            (acct, GENERATED_UNTIL),
        )
        conn.execute(f"DELETE FROM leads_lead WHERE id IN ({doomed})", (acct, GENERATED_UNTIL))  # noqa: S608
        have = conn.execute("SELECT count(*) FROM leads_lead WHERE account_id = %s", (acct,)).fetchone()[0]
        if have > rows:
            extra = "SELECT id FROM leads_lead WHERE account_id = %s ORDER BY id LIMIT %s"
            conn.execute(
                f"UPDATE leads_lead SET possible_duplicate_of_id = NULL WHERE possible_duplicate_of_id IN ({extra})",  # noqa: S608
                (acct, have - rows),
            )
            conn.execute(f"DELETE FROM leads_lead WHERE id IN ({extra})", (acct, have - rows))  # noqa: S608
    missing = max(0, rows - have)
    seconds = copy_leads(database_url, acct, missing, seed=have + 17) if missing else 0.0
    return missing, seconds


def machine(database_url: str, redis_url: str) -> list[str]:
    import django
    import redis

    cpu = next(
        (ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines() if "model name" in ln),
        platform.processor() or "unknown",
    )
    mem_kb = next(
        int(ln.split()[1]) for ln in Path("/proc/meminfo").read_text().splitlines() if ln.startswith("MemTotal")
    )
    with psycopg.connect(database_url) as conn:
        pg = conn.execute("SHOW server_version").fetchone()[0].split()[0]
        settings = {
            name: conn.execute(f"SHOW {name}").fetchone()[0]
            for name in ("shared_buffers", "work_mem", "max_wal_size", "synchronous_commit", "autovacuum")
        }
        size = conn.execute("SELECT pg_size_pretty(pg_total_relation_size('leads_lead'))").fetchone()[0]
        indexes = conn.execute("SELECT count(*) FROM pg_indexes WHERE tablename = 'leads_lead'").fetchone()[0]
    redis_version = redis.Redis.from_url(redis_url).info("server")["redis_version"]
    return [
        f"- CPU: {cpu}, {os.cpu_count()} cores; RAM {mem_kb / 1024 / 1024:.0f} GiB; {platform.system()} "
        f"{platform.release()}",
        f"- PostgreSQL {pg} on the same host ({', '.join(f'{k} {v}' for k, v in settings.items())}); "
        f"Redis {redis_version} on the same host",
        f"- Python {platform.python_version()}, Django {django.get_version()}; gunicorn sync workers",
        f"- leads_lead: {size} with {indexes} indexes",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=default_database_url())
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS))
    parser.add_argument("--leads", type=int, default=1_000_000, help="leads in the table, across two accounts")
    parser.add_argument("--runs", type=int, default=5, help="runs of each benchmark (medians, min–max)")
    parser.add_argument("--heavy-runs", type=int, default=1, help="runs of the exports and rescoring")
    parser.add_argument("--depth", type=int, default=900_000, help="rows before the deep list page")
    parser.add_argument("--duration", type=int, default=10, help="seconds of wrk per target and run")
    parser.add_argument("--events", type=int, default=2000, help="webhook events per fan-out measurement")
    parser.add_argument("--ratelimit-requests", type=int, default=2000)
    parser.add_argument("--singles", type=int, default=100, help="single creates per batch-benchmark run")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated of {', '.join(SECTIONS)}")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results.md"))
    parser.add_argument("--section", help=argparse.SUPPRESS)  # internal: run one section, write JSON
    parser.add_argument("--section-out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ["BENCH_REDIS_URL"] = args.redis_url

    if args.section:
        lines = run_section(args.section, args)
        Path(args.section_out).write_text(json.dumps(lines))
        return

    started = time.perf_counter()
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"== database {args.database_url.rsplit('/', 1)[1]}: create if missing, migrate", flush=True)
    ensure_database(args.database_url)
    main_rows = round(args.leads * 0.95)
    load_lines = []
    for slug, rows in ((MAIN, main_rows), (SECOND, args.leads - main_rows)):
        generated, seconds = reset_account(args.database_url, slug, rows)
        rate = f" ({generated / seconds:,.0f} rows/s)" if generated else ""
        load_lines.append(f"- account `{slug}`: {rows:,} leads, {generated:,} generated now in {seconds:.1f} s{rate}")
        print(load_lines[-1], flush=True)
    vacuum(args.database_url)
    with psycopg.connect(args.database_url, autocommit=True) as conn:
        total = conn.execute("SELECT count(*) FROM leads_lead").fetchone()[0]

    out = [
        "# Benchmark results",
        "",
        f"Written by `python -m bench.run_all --leads {args.leads} --runs {args.runs}` on {when}. "
        "See docs/performance.md for what each figure means.",
        "",
        "## Machine",
        "",
        *machine(args.database_url, args.redis_url),
        f"- load average (1/5/15 min) at the start: {load_average()}",
        "",
        "## Data",
        "",
        f"- leads_lead holds {total:,} leads; generated with COPY (bench/generate.py):",
        *load_lines,
    ]
    wanted = [s.strip() for s in args.only.split(",") if s.strip()]
    for name in wanted:
        print(f"== {name}: {SECTIONS[name]}", flush=True)
        before = load_average()
        section_started = time.perf_counter()
        with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as tmp:
            target = tmp.name
        child = [sys.executable, "-m", "bench.run_all", "--section", name, "--section-out", target]
        for flag in ("database_url", "redis_url", "runs", "heavy_runs", "depth", "duration", "events"):
            child += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
        child += ["--ratelimit-requests", str(args.ratelimit_requests), "--singles", str(args.singles)]
        result = subprocess.run(child, cwd=ROOT, check=False)
        minutes = (time.perf_counter() - section_started) / 60
        out += ["", f"## {SECTIONS[name]}", ""]
        if result.returncode == 0:
            out += json.loads(Path(target).read_text())
        else:
            out.append(f"**Failed** (exit code {result.returncode}); see the command's output.")
        out += ["", f"_Load average before / after: {before} / {load_average()}; took {minutes:.1f} min._"]
        Path(target).unlink(missing_ok=True)
        Path(args.out).write_text("\n".join(out) + "\n")  # keep what is done, should a later one fail
    out += ["", f"Total time: {(time.perf_counter() - started) / 60:.1f} min."]
    text = "\n".join(out) + "\n"
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
