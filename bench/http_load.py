"""Load through gunicorn with wrk (issue 10): `GET /api/v1/leads/{id}` and `POST /api/v1/leads`
beside a bare Django view returning the same JSON from the same gunicorn, in the same run.

The server is one gunicorn (`--workers 4`, sync: as good as any count for the bare view on 2 cores, as
a sweep over 2 to 5 workers the benchmark runs first shows, `--sweep`) started with
`bench.bench_settings`: the project's settings and URLs plus `/bench/bare` (bench/bench_urls.py), which
answers the bytes of a real `GET /api/v1/leads/{id}` response with no authentication, rate limit,
database or serialization, through the same middleware. wrk (`/usr/bin/wrk`, Debian package `wrk`)
drives each target for `--duration` seconds with `--connections` connections on 2 threads: all the reads
(API and bare view alternating, in the other order every other run, so drift on the machine hits them
alike), then all the creates the same way, so the creates' write-back cannot fall on a read. The account
is a pro account whose request budget is lifted, so the limiter runs (one EVALSHA per request) but never
refuses. gunicorn keeps its worker heartbeat files in /dev/shm where there is one (`--worker-tmp-dir`, as
the README's deployment does): on a disk-backed /tmp each request's heartbeat touch is a journaled write.

    python -m bench.http_load --runs 5 --duration 10
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from .common import bench_account, default_database_url, ensure_database, gunicorn, span

WRK = shutil.which("wrk") or "/usr/bin/wrk"
SETTLE_SECONDS = 3
# Sync workers of the gunicorn both targets share. On 2 cores the bare view (the reference) serves as much
# with 4 as with 2, 3 or 5 (within the machine's noise; the sweep prints it beside every run), while the API's
# workers, waiting on PostgreSQL and Redis, no longer leave a core idle. The README's deployment uses 4 too.
DEFAULT_WORKERS = 4
SWEEP_WORKERS = (2, 3, 4, 5)

# Each thread gets an id so POST bodies are unique across threads and runs.
LUA_COMMON = """
local counter = 0
local thread_id = 0
local threads = {}
function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end
function init(args)
  thread_id = tid or 0
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "non2xx": %d, "errors": %d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status, e.connect + e.read + e.write + e.timeout))
end
"""
LUA_GET = """
wrk.method = "GET"
wrk.headers["X-API-Key"] = "{key}"
"""
LUA_POST = """
wrk.method = "POST"
wrk.headers["X-API-Key"] = "{key}"
wrk.headers["Content-Type"] = "application/json"
request = function()
  counter = counter + 1
  local body = string.format(
    '{{"email": "load-{run}-%d-%d@wrk.example", "first_name": "Load", "last_name": "Test", '
    .. '"company": "Acme GmbH", "job_title": "CTO", "tags": ["inbound"], "source": "wrk"}}',
    thread_id, counter)
  return wrk.format(nil, nil, nil, body)
end
"""


def cpu_ticks() -> tuple[int, int] | None:
    """(busy, stolen) clock ticks of the whole machine so far: user, nice, system, irq and softirq time of
    every process (wrk, gunicorn, PostgreSQL, Redis alike), and time the hypervisor gave to others."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:9]]
    except OSError:  # not Linux
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return user + nice + system + irq + softirq, steal


def wrk(url: str, script: Path, duration: int, connections: int) -> dict:
    before = cpu_ticks()
    out = subprocess.run(
        [WRK, "-t2", f"-c{connections}", f"-d{duration}s", "--timeout", "10s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = next(ln for ln in out.splitlines() if ln.startswith("WRK_RESULT "))
    result = json.loads(line.removeprefix("WRK_RESULT "))
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    after = cpu_ticks()
    if before and after and result["requests"]:
        tick_us = 1e6 / os.sysconf("SC_CLK_TCK")
        result["cpu_us"] = (after[0] - before[0]) * tick_us / result["requests"]
        result["steal_us"] = (after[1] - before[1]) * tick_us / result["requests"]
    return result


@contextmanager
def _serve(database_url: str, key: str, workers: int, work: Path) -> Iterator[tuple[str, str]]:
    """gunicorn with `workers` sync workers and the bench-only bare view; yields (base URL, lead id). The
    bare view answers the exact bytes the API answers for that lead (checked)."""
    body_file = work / f"lead-{workers}.json"
    with gunicorn(
        database_url,
        workers=workers,
        settings_module="bench.bench_settings",
        extra_env={"BENCH_BARE_BODY": str(body_file)},
    ) as base:
        session = requests.Session()
        session.headers["X-API-Key"] = key
        lead_id = session.get(f"{base}/api/v1/leads", params={"limit": 1}).json()["results"][0]["id"]
        detail = session.get(f"{base}/api/v1/leads/{lead_id}")
        assert detail.status_code == 200, detail.text[:300]
        body_file.write_bytes(detail.content)
        bare = session.get(f"{base}/bench/bare")
        assert bare.status_code == 200 and bare.content == detail.content
        yield base, lead_id


def sweep_workers(
    database_url: str, key: str, work: Path, script: Path, counts: tuple[int, ...], duration: int, connections: int
) -> dict[int, dict[str, float]]:
    """GET req/s of the API and of the bare view for each gunicorn worker count (a fresh gunicorn each, one
    warm-up round then two measured rounds, the targets alternating): shows that the count of the main runs
    does not handicap the reference."""
    found: dict[int, dict[str, float]] = {}
    for workers in counts:
        with _serve(database_url, key, workers, work) as (base, lead_id):
            urls = {"api": f"{base}/api/v1/leads/{lead_id}", "bare": f"{base}/bench/bare"}
            samples: dict[str, list[float]] = {"api": [], "bare": []}
            for r in range(-1, 2):
                for name, url in urls.items():
                    time.sleep(1)
                    result = wrk(url, script, 2 if r < 0 else duration, connections)
                    if r >= 0:
                        samples[name].append(result["rps"])
            found[workers] = {name: statistics.median(values) for name, values in samples.items()}
    return found


def _alternating(
    pair: list[tuple[str, str]],
    script_for_run: Callable[[int], Path],
    runs: int,
    duration: int,
    connections: int,
    *,
    creates: bool = False,
) -> dict[str, list[dict]]:
    """wrk results of both targets of `pair` ((name, URL), API first), `runs` times: API first on odd runs,
    the bare view first on even ones; run -1 warms up (workers' imports, connections, caches), not kept."""
    results: dict[str, list[dict]] = {name: [] for name, _ in pair}
    for r in range(-1, runs):
        script = script_for_run(r)
        for name, url in pair if r % 2 else pair[::-1]:
            # Requests still in flight when wrk stops (slow creates) would delay the next target's first ones:
            # let the workers finish them first.
            time.sleep(SETTLE_SECONDS)
            result = wrk(url, script, 2 if r < 0 else duration, connections)
            if creates:  # every POST creates a new lead (201): anything else is a benchmark bug, not a figure
                assert result["non2xx"] == 0, (name, result)
            if r >= 0:
                results[name].append(result)
    return results


def run(
    database_url: str,
    *,
    slug: str = "bench",
    runs: int = 5,
    duration: int = 10,
    connections: int = 8,
    workers: int = DEFAULT_WORKERS,
    sweep: tuple[int, ...] = SWEEP_WORKERS,
    sweep_duration: int = 3,
) -> list[str]:
    ensure_database(database_url)
    key = bench_account(database_url, slug)
    work = Path(tempfile.mkdtemp(prefix="leadbase-wrk-"))
    get_script = work / "get.lua"
    get_script.write_text(LUA_COMMON + LUA_GET.format(key=key))
    swept = sweep_workers(database_url, key, work, get_script, sweep, sweep_duration, connections) if sweep else {}
    with _serve(database_url, key, workers, work) as (base, lead_id):
        # The reads first, then the writes: the creates leave PostgreSQL flushing WAL and dirty pages for a while
        # after they stop, which would land on whichever read came next. Within each phase the pair's order
        # alternates run by run (API first, then bare first), so drift and what a target leaves behind fall on
        # both alike.
        gets = [
            ("GET /api/v1/leads/{id}", f"{base}/api/v1/leads/{lead_id}"),
            ("GET bare view (same JSON)", f"{base}/bench/bare"),
        ]
        results = _alternating(gets, lambda r: get_script, runs, duration, connections)

        def post_script(r: int) -> Path:
            script = work / f"post-{r}.lua"
            script.write_text(LUA_COMMON + LUA_POST.format(key=key, run=f"{work.name[-6:]}x{r + 1}"))
            return script

        posts = [("POST /api/v1/leads", f"{base}/api/v1/leads"), ("POST bare view (same JSON)", f"{base}/bench/bare")]
        results |= _alternating(posts, post_script, runs, duration, connections, creates=True)
    shutil.rmtree(work, ignore_errors=True)
    return report(results, runs, duration, connections, workers) + sweep_report(swept, workers, sweep_duration)


def sweep_report(swept: dict[int, dict[str, float]], workers: int, duration: int) -> list[str]:
    if not swept:
        return []
    best = max(swept, key=lambda w: swept[w]["bare"])
    lines = [
        "",
        f"gunicorn worker count (sync workers; before the runs above, a fresh gunicorn per count, GET only, "
        f"2 × {duration} s per target, alternating): the bare view serves most with {best} workers.",
        "",
        "| sync workers | bare view req/s | GET /api/v1/leads/{id} req/s | API / bare |",
        "| ---: | ---: | ---: | ---: |",
    ]
    for count, rps in swept.items():
        mark = " (the runs above)" if count == workers else ""
        lines.append(f"| {count}{mark} | {rps['bare']:,.0f} | {rps['api']:,.0f} | {rps['api'] / rps['bare']:.0%} |")
    if workers in swept:
        share = swept[workers]["bare"] / swept[best]["bare"]
        lines += ["", f"- The bare view with {workers} workers: {share:.0%} of its best in this sweep."]
    return lines


def report(results: dict[str, list[dict]], runs: int, duration: int, connections: int, workers: int) -> list[str]:
    lines = [
        f"wrk, 2 threads, {connections} connections, {duration} s per target and run, {runs} runs (the reads, then "
        "the creates; API and bare view alternate, in the other order every other run); gunicorn with "
        f"{workers} sync workers; wrk, gunicorn, PostgreSQL and Redis share the 2 cores. Median of the runs (min–max).",
        "",
        "| target | req/s | p50 ms | p99 ms | vs bare view (req/s) | socket errors / timeouts |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    bare = {"GET": "GET bare view (same JSON)", "POST": "POST bare view (same JSON)"}
    for name, samples in results.items():
        rps = [s["rps"] for s in samples]
        reference = results[bare[name.split()[0]]]
        ratio = statistics.median(rps) / statistics.median([s["rps"] for s in reference])
        lines.append(
            f"| {name} | {span(rps, digits=0)} | {span([s['p50_us'] for s in samples], 1e-3, 2)} | "
            f"{span([s['p99_us'] for s in samples], 1e-3, 2)} | {ratio:.0%} | {sum(s['errors'] for s in samples)} |"
        )
    get = results["GET /api/v1/leads/{id}"]
    bare_get = results["GET bare view (same JSON)"]
    ratio = statistics.median(s["rps"] for s in get) / statistics.median(s["rps"] for s in bare_get)
    # The pair alternates within a run, so each run's own ratio is the one drift on the machine (other
    # tenants' load) affects least; its median and spread say how firm the verdict is.
    paired = [a["rps"] / b["rps"] for a, b in zip(get, bare_get, strict=True)]
    p99 = statistics.median(s["p99_us"] for s in get) / 1000
    cpu = ""
    if all("cpu_us" in s for s in get + bare_get):
        # Machine-wide CPU time per request: what the request costs, whatever share of the cores other
        # tenants took meanwhile (steal) or the workers left idle while waiting on PostgreSQL and Redis.
        api_cpu = statistics.median(s["cpu_us"] for s in get)
        bare_cpu = statistics.median(s["cpu_us"] for s in bare_get)
        cpu_paired = [b["cpu_us"] / a["cpu_us"] for a, b in zip(get, bare_get, strict=True)]
        steal = statistics.median(s["steal_us"] for s in get + bare_get)
        cpu = (
            f"- CPU time per request, all processes on the machine: GET /leads/{{id}} {api_cpu:,.0f} µs, bare view "
            f"{bare_cpu:,.0f} µs, so at equal CPU the API would serve {bare_cpu / api_cpu:.0%} of the bare view's "
            f"requests (each run's own: {min(cpu_paired):.0%}–{max(cpu_paired):.0%}); the hypervisor took "
            f"{steal:,.0f} µs per request (median) for other tenants."
        )
    lines += [
        "",
        f"- Target: GET /leads/{{id}} ≥ 40% of the bare view's req/s: {ratio:.0%} "
        f"({'met' if ratio >= 0.4 else '**missed**'}); each run's own ratio: median {statistics.median(paired):.0%}, "
        f"{min(paired):.0%}–{max(paired):.0%} ({' '.join(f'{r:.0%}' for r in paired)}); p99 under 50 ms at that "
        f"load: {p99:.1f} ms ({'met' if p99 < 50 else '**missed**'}).",
    ]
    if cpu:
        lines.append(cpu)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=default_database_url())
    parser.add_argument("--account", default="bench")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS, help="gunicorn sync workers of the runs")
    parser.add_argument(
        "--sweep",
        default=",".join(map(str, SWEEP_WORKERS)),
        help="worker counts to compare first (GET, API and bare view); empty: no sweep",
    )
    args = parser.parse_args()
    print(
        "\n".join(
            run(
                args.database_url,
                slug=args.account,
                runs=args.runs,
                duration=args.duration,
                connections=args.connections,
                workers=args.workers,
                sweep=tuple(int(w) for w in args.sweep.split(",") if w.strip()),
            )
        )
    )


if __name__ == "__main__":
    main()
