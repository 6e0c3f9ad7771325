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

from .common import DEFAULT_DB, DEFAULT_REDIS, bench_account, ensure_database, gunicorn


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", default=DEFAULT_DB)
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS))
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--block", type=int, default=100)
    args = parser.parse_args()

    ensure_database(args.database_url)
    key = bench_account(args.database_url)
    on, off = [], []
    path = "/api/v1/leads?limit=1"
    with (
        gunicorn(args.database_url, workers=1, extra_env={"LEADBASE_RATE_LIMIT_ENABLED": "true"}) as base_on,
        gunicorn(args.database_url, workers=1, extra_env={"LEADBASE_RATE_LIMIT_ENABLED": "false"}) as base_off,
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
        while done < args.requests:
            for _ in range(args.block):
                on.append(timed_get(s_on, base_on + path))
            for _ in range(args.block):
                off.append(timed_get(s_off, base_off + path))
            done += args.block

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    hits, pings = limiter_microbench(args.redis_url, 5000)

    def row(name: str, samples: list[float]) -> str:
        return (
            f"| {name} | {percentile(samples, 50) * 1000:.3f} | {percentile(samples, 99) * 1000:.3f} | {len(samples)} |"
        )

    print("| measurement | p50 ms | p99 ms | n |")
    print("| --- | ---: | ---: | ---: |")
    print(row(f"GET {path}, limiter on (HTTP, gunicorn)", on))
    print(row(f"GET {path}, limiter off (HTTP, gunicorn)", off))
    p50 = (percentile(on, 50) - percentile(off, 50)) * 1000
    p99 = (percentile(on, 99) - percentile(off, 99)) * 1000
    print(f"| difference (on - off) | {p50:.3f} | {p99:.3f} | |")
    print(row("one limiter decision (EVALSHA, in-process)", hits))
    print(row("Redis PING (same client library)", pings))
    print()
    print(f"EVALSHA / PING at p50: {statistics.median(hits) / statistics.median(pings):.2f}x")


if __name__ == "__main__":
    main()
