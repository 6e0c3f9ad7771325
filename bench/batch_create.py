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
import time

import requests

from .common import DEFAULT_DB, bench_account, ensure_database, gunicorn, lead_payload, new_run_id, summarize
from .generate import account_id, copy_leads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", default=DEFAULT_DB)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--size", type=int, default=500)
    args = parser.parse_args()

    ensure_database(args.database_url)
    key = bench_account(args.database_url)
    acct = account_id(args.database_url, "bench")
    rng = random.Random(7)
    batch_s, copy_s, single_s = [], [], []
    with gunicorn(args.database_url) as base:
        session = requests.Session()
        session.headers.update({"X-API-Key": key})
        # Warm up both paths (imports, connections) before measuring.
        session.post(
            f"{base}/api/v1/leads/batch", json={"leads": [lead_payload(rng, i, new_run_id()) for i in range(5)]}
        )
        session.post(f"{base}/api/v1/leads", json=lead_payload(rng, 0, new_run_id()))
        for _ in range(args.runs):
            leads = [lead_payload(rng, i, new_run_id()) for i in range(args.size)]
            started = time.perf_counter()
            response = session.post(f"{base}/api/v1/leads/batch", json={"leads": leads})
            batch_s.append(time.perf_counter() - started)
            assert response.status_code == 207 and response.json()["summary"]["failed"] == 0, response.text[:500]

            copy_s.append(copy_leads(args.database_url, acct, args.size, seed=rng.randint(0, 10**9)))

            leads = [lead_payload(rng, i, new_run_id()) for i in range(args.size)]
            started = time.perf_counter()
            for lead in leads:
                response = session.post(f"{base}/api/v1/leads", json=lead)
                assert response.status_code == 201, response.text[:500]
            single_s.append(time.perf_counter() - started)

    b, c, s = summarize(batch_s), summarize(copy_s), summarize(single_s)
    ms = lambda x: f"{x * 1000:,.1f}"  # noqa: E731
    print(f"| path ({args.size} leads) | median ms | min–max ms | leads/s |")
    print("| --- | ---: | ---: | ---: |")
    for name, row in (
        ("POST /leads/batch (HTTP, gunicorn)", b),
        ("psycopg COPY (floor)", c),
        (f"{args.size} × POST /leads (HTTP, keep-alive)", s),
    ):
        print(
            f"| {name} | {ms(row['median'])} | {ms(row['min'])}–{ms(row['max'])} | {args.size / row['median']:,.0f} |"
        )
    print()
    print(
        f"batch vs single: {s['median'] / b['median']:.1f}× faster; "
        f"batch vs COPY: {b['median'] / c['median']:.1f}× slower; runs: {args.runs}"
    )


if __name__ == "__main__":
    main()
