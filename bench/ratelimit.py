"""Rate limiter cost (issue 4): the same request through two gunicorns, limiter on and off.

Both servers run in the same benchmark, against the same PostgreSQL and Redis; requests
alternate between them in blocks so drift on the machine hits both alike. Also measured
in-process: one limiter decision (EVALSHA of the Lua script) beside a Redis PING.

    python -m bench.ratelimit --requests 2000
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import requests

from .common import (
    DEFAULT_REDIS,
    bench_account,
    default_database_url,
    ensure_database,
    gunicorn,
    percentile,
    setup_django,
)


def timed_get(session: requests.Session, url: str) -> float:
    started = time.perf_counter()
    response = session.get(url)
    elapsed = time.perf_counter() - started
    assert response.status_code == 200, response.text[:300]
    return elapsed


def limiter_microbench(redis_url: str, n: int) -> tuple[list[float], list[float]]:
    import redis

    from core.ratelimit import RedisWindow

    window = RedisWindow(redis_url)
    client = redis.Redis.from_url(redis_url)
    hits, pings = [], []
    for i in range(n):
        started = time.perf_counter()
        window.hit(f"bench:micro:{i % 50}", 1_000_000, 600, "account")
        hits.append(time.perf_counter() - started)
        started = time.perf_counter()
        client.ping()
        pings.append(time.perf_counter() - started)
    return hits, pings


def run(database_url: str, *, redis_url: str, requests_each: int = 2000, block: int = 100) -> list[str]:
    ensure_database(database_url)
    key = bench_account(database_url)
    on, off = [], []
    path = "/api/v1/leads?limit=1"
    with (
        gunicorn(database_url, workers=1, extra_env={"LEADBASE_RATE_LIMIT_ENABLED": "true"}) as base_on,
        gunicorn(database_url, workers=1, extra_env={"LEADBASE_RATE_LIMIT_ENABLED": "false"}) as base_off,
    ):
        s_on, s_off = requests.Session(), requests.Session()
        for s in (s_on, s_off):
            s.headers["X-API-Key"] = key
        for _ in range(50):  # warm-up
            timed_get(s_on, base_on + path)
            timed_get(s_off, base_off + path)
        assert "X-RateLimit-Limit" in s_on.get(base_on + path).headers
        assert "X-RateLimit-Limit" not in s_off.get(base_off + path).headers
        done = 0
        while done < requests_each:
            for _ in range(block):
                on.append(timed_get(s_on, base_on + path))
            for _ in range(block):
                off.append(timed_get(s_off, base_off + path))
            done += block

    setup_django(database_url)
    hits, pings = limiter_microbench(redis_url, 5000)

    def row(name: str, samples: list[float]) -> str:
        return (
            f"| {name} | {percentile(samples, 50) * 1000:.3f} | {percentile(samples, 99) * 1000:.3f} | {len(samples)} |"
        )

    p50 = (percentile(on, 50) - percentile(off, 50)) * 1000
    p99 = (percentile(on, 99) - percentile(off, 99)) * 1000
    return [
        f"Two gunicorns (1 sync worker each), limiter on and off, {requests_each:,} requests each in alternating "
        f"blocks of {block}; then 5,000 limiter decisions and 5,000 PINGs in-process.",
        "",
        "| measurement | p50 ms | p99 ms | n |",
        "| --- | ---: | ---: | ---: |",
        row(f"GET {path}, limiter on (HTTP, gunicorn)", on),
        row(f"GET {path}, limiter off (HTTP, gunicorn)", off),
        f"| difference (on - off) | {p50:.3f} | {p99:.3f} | |",
        row("one limiter decision (EVALSHA, in-process)", hits),
        row("Redis PING (same client library)", pings),
        "",
        f"- The limiter adds {p50:.2f} ms at p50 (target < 1 ms); one decision costs "
        f"{statistics.median(hits) / statistics.median(pings):.2f}× a PING.",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", default=default_database_url())
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS))
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--block", type=int, default=100)
    args = parser.parse_args()
    lines = run(args.database_url, redis_url=args.redis_url, requests_each=args.requests, block=args.block)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
