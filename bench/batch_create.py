"""Batch create benchmark (issue 3): three ways to write 500 leads, measured in one run.

1. `POST /api/v1/leads/batch` with 500 leads: real HTTP to gunicorn, API key auth, validation,
   normalization, dedup lookups, soft-duplicate lookups and the bulk insert.
2. The same 500 rows written with psycopg COPY (the physical floor).
3. 500 single `POST /api/v1/leads` calls over one keep-alive session.

    python -m bench.batch_create --runs 5
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import requests

from .common import bench_account, default_database_url, ensure_database, gunicorn, lead_payload, new_run_id, span
from .generate import account_id, copy_leads


def run(
    database_url: str, *, slug: str = "bench", runs: int = 5, size: int = 500, singles: int | None = None
) -> list[str]:
    """Each run: one batch, one COPY of the same size, and `singles` (default `size`) single creates,
    whose time is scaled to `size` creates; returns the markdown."""
    singles = singles or size
    ensure_database(database_url)
    key = bench_account(database_url, slug)
    acct = account_id(database_url, slug)
    rng = random.Random(7)
    batch_s, copy_s, single_s = [], [], []
    with gunicorn(database_url) as base:
        session = requests.Session()
        session.headers.update({"X-API-Key": key})
        # Warm up both paths (imports, connections) before measuring.
        session.post(
            f"{base}/api/v1/leads/batch", json={"leads": [lead_payload(rng, i, new_run_id()) for i in range(5)]}
        )
        session.post(f"{base}/api/v1/leads", json=lead_payload(rng, 0, new_run_id()))
        for _ in range(runs):
            leads = [lead_payload(rng, i, new_run_id()) for i in range(size)]
            started = time.perf_counter()
            response = session.post(f"{base}/api/v1/leads/batch", json={"leads": leads})
            batch_s.append(time.perf_counter() - started)
            assert response.status_code == 207 and response.json()["summary"]["failed"] == 0, response.text[:500]

            copy_s.append(copy_leads(database_url, acct, size, seed=rng.randint(0, 10**9)))

            leads = [lead_payload(rng, i, new_run_id()) for i in range(singles)]
            started = time.perf_counter()
            for lead in leads:
                response = session.post(f"{base}/api/v1/leads", json=lead)
                assert response.status_code == 201, response.text[:500]
            single_s.append((time.perf_counter() - started) * size / singles)

    median = statistics.median
    lines = [
        f"{runs} runs; each writes {size} new leads three ways; median (min–max) of the runs."
        + (f" The single creates: {singles} per run, their time scaled to {size}." if singles != size else ""),
        "",
        f"| path ({size} leads) | ms | leads/s (median) |",
        "| --- | ---: | ---: |",
    ]
    for name, samples in (
        ("POST /leads/batch (HTTP, gunicorn)", batch_s),
        ("psycopg COPY (floor)", copy_s),
        (f"{size} × POST /leads (HTTP, keep-alive)", single_s),
    ):
        lines.append(f"| {name} | {span(samples, 1000)} | {size / median(samples):,.0f} |")
    lines += [
        "",
        f"- batch vs {size} single creates: **{median(single_s) / median(batch_s):.1f}× faster** (target ≥ 20×); "
        f"batch vs COPY: **{median(batch_s) / median(copy_s):.1f}× slower** (target within 15×).",
    ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", default=default_database_url())
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--size", type=int, default=500)
    parser.add_argument("--singles", type=int, default=None, help="single creates timed per run (default: size)")
    args = parser.parse_args()
    print("\n".join(run(args.database_url, runs=args.runs, size=args.size, singles=args.singles)))


if __name__ == "__main__":
    main()
