"""Load realistic leads into PostgreSQL with COPY (up to 1,000,000 rows in a minute or so).

    python -m bench.generate --database-url postgres://postgres@127.0.0.1:5432/leadbase_bench \
        --account bench --rows 1000000
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import time
import uuid

import psycopg

from .common import (
    CITIES,
    COMPANIES,
    COUNTRIES,
    FIRST,
    LAST,
    SOURCES,
    STATUSES,
    TAGS,
    TITLES,
    bench_account,
    default_database_url,
    ensure_database,
)

COLUMNS = (
    "id",
    "account_id",
    "email",
    "first_name",
    "last_name",
    "company",
    "job_title",
    "website",
    "city",
    "phone",
    "country",
    "source",
    "status",
    "score",
    "score_breakdown",
    "tags",
    "external_id",
    "custom_fields",
    "version",
    "created_at",
    "updated_at",
)


def rows(account_id: int, count: int, seed: int, run: str):
    rng = random.Random(seed)
    start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    for n in range(count):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        company = rng.choice(COMPANIES)
        created = start + dt.timedelta(seconds=rng.randint(0, 60 * 60 * 24 * 700))
        yield (
            uuid.uuid4(),
            account_id,
            f"{first}.{last}.{run}.{n}@{company.split()[0].lower()}.example".lower(),
            first,
            last,
            company,
            rng.choice(TITLES),
            "",
            rng.choice(CITIES),
            f"+4930{rng.randint(1000000, 9999999)}",
            rng.choice(COUNTRIES),
            rng.choice(SOURCES),
            rng.choice(STATUSES),
            rng.randint(0, 100),
            "[]",
            json.dumps(rng.sample(TAGS, rng.randint(0, 3))),
            f"gen-{run}-{n}",
            json.dumps({"employees": rng.choice([5, 20, 80, 250, 1200])}),
            1,
            created,
            created,
        )


def copy_leads(conninfo: str, account_id: int, count: int, seed: int = 1, run: str | None = None) -> float:
    """COPY `count` leads for the account; returns seconds spent."""
    run = run or uuid.uuid4().hex[:6]
    started = time.perf_counter()
    with (
        psycopg.connect(conninfo) as conn,
        conn.cursor() as cur,
        cur.copy(f"COPY leads_lead ({', '.join(COLUMNS)}) FROM STDIN") as copy,
    ):
        for row in rows(account_id, count, seed, run):
            copy.write_row(row)
    return time.perf_counter() - started


def account_id(conninfo: str, slug: str) -> int:
    with psycopg.connect(conninfo) as conn:
        return conn.execute("SELECT id FROM accounts_account WHERE slug = %s", (slug,)).fetchone()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", default=default_database_url())
    parser.add_argument("--account", default="bench")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    ensure_database(args.database_url)
    bench_account(args.database_url, args.account)
    seconds = copy_leads(args.database_url, account_id(args.database_url, args.account), args.rows, args.seed)
    with psycopg.connect(args.database_url, autocommit=True) as conn:
        conn.execute("ANALYZE leads_lead")
    print(
        f"Loaded {args.rows} leads into account {args.account!r} in {seconds:.1f} s ({args.rows / seconds:,.0f} rows/s)"
    )


if __name__ == "__main__":
    main()
