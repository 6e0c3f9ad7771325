"""Export benchmark (issue 5): GET /leads/export over HTTP against PostgreSQL's own COPY, in one run.

For each size (default 100,000 and 1,000,000 leads; each size has an account of its own,
`bench-export-<size>`, filled with bench.generate's COPY until it holds exactly that many):

1. `GET /api/v1/leads/export?format=csv` from a gunicorn with ONE sync worker (the COPY fast path);
2. the same with the Python csv writer (`LEADBASE_EXPORT_CSV_COPY=false`: the portable path);
3. `format=json` and `format=xlsx` (openpyxl write-only into a temporary file, then FileResponse);
4. `COPY (SELECT <the same columns> FROM leads_lead WHERE account_id = ... ORDER BY created_at DESC,
   id DESC) TO STDOUT (FORMAT CSV)` through psycopg: the database's floor for the same rows.

Every HTTP measurement gets a fresh gunicorn; after a warm-up request the worker's peak RSS is reset
(`/proc/<pid>/clear_refs`) and read back (`VmHWM` in `/proc/<pid>/status`) once the download ends, so
the peak is the export's own. Linux only.

    python -m bench.export --runs 2
    python -m bench.export --sizes 100000 --formats csv,xlsx
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import requests

from .common import bench_account, default_database_url, ensure_database, gunicorn
from .generate import account_id, copy_leads

RAW_COLUMNS = (
    "id, email, first_name, last_name, company, job_title, website, city, phone, country, source, status, score, "
    "score_breakdown, tags, owner_id, external_id, custom_fields, possible_duplicate_of_id, created_at, updated_at, "
    "scored_at"
)
# name -> (format query parameter, extra gunicorn environment)
VARIANTS: dict[str, tuple[str, dict]] = {
    "csv": ("csv", {}),
    "csv-python": ("csv", {"LEADBASE_EXPORT_CSV_COPY": "false"}),
    "json": ("json", {}),
    "ndjson": ("ndjson", {}),
    "xlsx": ("xlsx", {}),
}
LABELS = {
    "csv": "GET /leads/export?format=csv (COPY path)",
    "csv-python": "GET /leads/export?format=csv (Python csv writer)",
    "json": "GET /leads/export?format=json",
    "ndjson": "GET /leads/export?format=ndjson",
    "xlsx": "GET /leads/export?format=xlsx",
}


@dataclass
class Sample:
    seconds: float
    first_byte: float
    size_bytes: int
    rss_before_kb: int = 0
    peak_kb: int = 0


@dataclass
class Result:
    samples: list[Sample] = field(default_factory=list)

    def median(self, attribute: str) -> float:
        return statistics.median(getattr(s, attribute) for s in self.samples)


def exact_account(database_url: str, slug: str, rows: int) -> int:
    """The account `slug` with exactly `rows` leads: generated with COPY if it has fewer, trimmed if more."""
    bench_account(database_url, slug)
    acct = account_id(database_url, slug)
    with psycopg.connect(database_url, autocommit=True) as conn:
        have = conn.execute("SELECT count(*) FROM leads_lead WHERE account_id = %s", (acct,)).fetchone()[0]
        if have > rows:
            conn.execute(
                "DELETE FROM leads_lead WHERE id IN (SELECT id FROM leads_lead WHERE account_id = %s LIMIT %s)",
                (acct, have - rows),
            )
    if have < rows:
        seconds = copy_leads(database_url, acct, rows - have, seed=rows + have)
        print(f"  generated {rows - have:,} leads for {slug} in {seconds:.1f} s")
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("ANALYZE leads_lead")
        have = conn.execute("SELECT count(*) FROM leads_lead WHERE account_id = %s", (acct,)).fetchone()[0]
    assert have == rows, (slug, have, rows)
    return acct


def gunicorn_worker_pid(base: str) -> int:
    """The one worker of the gunicorn bound to `base`: the process with that command line whose parent
    has it too (the master's parent is this script)."""
    port = base.rsplit(":", 1)[1]
    matches: dict[int, int] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if "gunicorn" not in cmdline or f"127.0.0.1:{port}" not in cmdline:
                continue
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        matches[int(proc.name)] = ppid
    workers = [pid for pid, ppid in matches.items() if ppid in matches]
    if len(workers) != 1:
        raise RuntimeError(f"expected one gunicorn worker on port {port}, found {workers}")
    return workers[0]


def status_kb(pid: int, name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    raise KeyError(name)


def reset_peak(pid: int) -> None:
    """Linux >= 4.0: writing 5 to clear_refs resets VmHWM to the current RSS."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def http_export(database_url: str, key: str, fmt: str, env: dict) -> Sample:
    with gunicorn(database_url, workers=1, extra_env=env, timeout=1800) as base:
        session = requests.Session()
        session.headers.update({"X-API-Key": key})
        url = f"{base}/api/v1/leads/export"
        warm = session.get(url, params={"format": fmt, "email": "nobody@nowhere.example"})
        assert warm.status_code == 200, warm.text[:300]
        pid = gunicorn_worker_pid(base)
        before = status_kb(pid, "VmRSS")
        reset_peak(pid)
        started = time.perf_counter()
        first_byte = None
        size = 0
        head = b""
        with session.get(url, params={"format": fmt}, stream=True, timeout=3600) as response:
            assert response.status_code == 200, response.text[:300]
            for chunk in response.iter_content(chunk_size=1 << 20):
                if first_byte is None:
                    first_byte = time.perf_counter() - started
                    head = chunk[:4]
                size += len(chunk)
        seconds = time.perf_counter() - started
        peak = status_kb(pid, "VmHWM")
    if fmt == "xlsx":
        assert head.startswith(b"PK"), head
    return Sample(seconds, first_byte or seconds, size, before, peak)


def raw_copy(database_url: str, acct: int) -> Sample:
    statement = (
        f"COPY (SELECT {RAW_COLUMNS} FROM leads_lead WHERE account_id = {int(acct)} "  # noqa: S608
        "ORDER BY created_at DESC, id DESC) TO STDOUT (FORMAT CSV)"
    )
    with psycopg.connect(database_url) as conn, conn.cursor() as cur:
        started = time.perf_counter()
        first_byte = None
        size = 0
        with cur.copy(statement) as copy:
            for data in copy:
                if first_byte is None:
                    first_byte = time.perf_counter() - started
                size += len(data)
        seconds = time.perf_counter() - started
    return Sample(seconds, first_byte or seconds, size)


def run(
    database_url: str, *, targets: list[tuple[str, int | None]], runs: int = 1, variants: list[str] | None = None
) -> list[str]:
    """`targets`: (account slug, lead count) pairs; a count makes the account hold exactly that many
    (generated or trimmed), None measures the account as it is. Returns the markdown table."""
    variants = variants or ["csv", "csv-python", "json", "xlsx"]
    ensure_database(database_url)
    results: dict[tuple[int, str], Result] = {}
    sizes = []
    for slug, wanted in targets:
        if wanted is None:
            key = bench_account(database_url, slug)
            acct = account_id(database_url, slug)
            with psycopg.connect(database_url) as conn:
                rows = conn.execute("SELECT count(*) FROM leads_lead WHERE account_id = %s", (acct,)).fetchone()[0]
        else:
            rows = wanted
            acct = exact_account(database_url, slug, rows)
            key = bench_account(database_url, slug)
        sizes.append(rows)
        print(f"== export: {rows:,} leads (account {slug})", flush=True)
        for _ in range(runs):
            results.setdefault((rows, "copy"), Result()).samples.append(raw_copy(database_url, acct))
            for name in variants:
                fmt, env = VARIANTS[name]
                sample = http_export(database_url, key, fmt, env)
                results.setdefault((rows, name), Result()).samples.append(sample)
                print(
                    f"  {name:<10} {sample.seconds:8.2f} s  {rows / sample.seconds:>10,.0f} rows/s  "
                    f"peak RSS {sample.peak_kb / 1024:7.1f} MB (before {sample.rss_before_kb / 1024:.1f} MB)",
                    flush=True,
                )

    lines = [
        f"{runs} run(s) per measurement, medians; every HTTP export from a fresh gunicorn with one sync worker.",
        "",
        "| export | leads | seconds (min–max) | rows/s | first byte s | MB out | worker RSS before → peak MB "
        "| vs COPY |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for rows in sizes:
        copy_seconds = results[(rows, "copy")].median("seconds")
        for name in ["copy", *variants]:
            result = results[(rows, name)]
            seconds = result.median("seconds")
            every = [s.seconds for s in result.samples]
            label = "psycopg `COPY (SELECT …) TO STDOUT (FORMAT CSV)`" if name == "copy" else LABELS[name]
            memory = (
                "—"
                if name == "copy"
                else f"{result.median('rss_before_kb') / 1024:,.0f} → {result.median('peak_kb') / 1024:,.0f}"
            )
            lines.append(
                f"| {label} | {rows:,} | {seconds:,.2f} ({min(every):,.2f}–{max(every):,.2f}) | "
                f"{rows / seconds:,.0f} | "
                f"{result.median('first_byte'):.2f} | {result.median('size_bytes') / 1e6:,.1f} | {memory} | "
                f"{seconds / copy_seconds:,.1f}× |"
            )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=default_database_url())
    parser.add_argument("--sizes", default="100000,1000000", help="comma-separated lead counts")
    parser.add_argument("--formats", default="csv,csv-python,json,xlsx", help=f"of {', '.join(VARIANTS)}")
    parser.add_argument("--runs", type=int, default=1, help="runs per measurement (medians are reported)")
    args = parser.parse_args()
    targets: list[tuple[str, int | None]] = [(f"bench-export-{s}", int(s)) for s in args.sizes.split(",")]
    variants = [v.strip() for v in args.formats.split(",")]
    print("\n".join(run(args.database_url, targets=targets, runs=args.runs, variants=variants)))


if __name__ == "__main__":
    main()
