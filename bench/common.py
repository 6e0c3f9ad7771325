"""Shared pieces of the benchmarks: a PostgreSQL database, a demo account and key, gunicorn."""

from __future__ import annotations

import contextlib
import os
import random
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from leads import sample_data as sample

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/leadbase_bench"
DEFAULT_REDIS = "redis://127.0.0.1:6379/14"

# The demo's lists (leads.sample_data), widened so a million generated leads vary more.
FIRST = [*sample.FIRST, "Maria", "Wei", "Aisha", "Lars", "Yuki", "Carlos", "Priya", "Olu", "Anna", "Mehmet"]
LAST = [*sample.LAST, "Garcia", "Chen", "Khan", "Nilsson", "Tanaka", "Silva", "Patel", "Okafor", "Schmidt"]
COMPANIES = [
    f"{a} {b}"
    for a in [
        "Acme",
        "Globex",
        "Initech",
        "Umbrella",
        "Hooli",
        "Stark",
        "Wayne",
        "Soylent",
        "Tyrell",
        "Cyberdyne",
        "Wonka",
        "Vandelay",
        "Pied Piper",
        "Aperture",
    ]
    for b in ["Inc", "GmbH", "Ltd", "Labs", "Systems", "Group"]
]
TITLES = sample.TITLES
COUNTRIES = [*sample.COUNTRIES, "JP", "IN", "BR"]
SOURCES = [*sample.SOURCES, "conference"]
STATUSES = ["new", "contacted", "qualified", "unqualified", "converted", "lost"]
TAGS = [*sample.TAGS, "partner", "inbound"]
CITIES = [*sample.CITIES, "Tokyo"]


def lead_payload(rng: random.Random, n: int, run: str) -> dict:
    """One realistic lead as the API takes it; `run` keeps emails unique across runs."""
    first, last = rng.choice(FIRST), rng.choice(LAST)
    company = rng.choice(COMPANIES)
    return {
        "email": f"{first}.{last}.{run}.{n}@{company.split()[0].lower()}.example".lower(),
        "first_name": first,
        "last_name": last,
        "company": company,
        "job_title": rng.choice(TITLES),
        "phone": f"+4930{rng.randint(1000000, 9999999)}",
        "country": rng.choice(COUNTRIES),
        "city": rng.choice(CITIES),
        "source": rng.choice(SOURCES),
        "status": rng.choice(STATUSES),
        "tags": rng.sample(TAGS, rng.randint(0, 3)),
        "external_id": f"crm-{run}-{n}",
        "custom_fields": {"employees": rng.choice([5, 20, 80, 250, 1200]), "newsletter": rng.random() < 0.5},
    }


def default_database_url() -> str:
    """`BENCH_DATABASE_URL`, else the benchmark database on the local server (never the app's own)."""
    return os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB)


def django_env(database_url: str) -> dict:
    env = dict(os.environ)
    env.update(
        {
            "DATABASE_URL": database_url,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            # testserver: the in-process measurements go through django.test.Client.
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
        }
    )
    # Production-like: Redis for the cache and the rate limiter.
    env["REDIS_URL"] = os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS)
    return env


def manage(database_url: str, *args: str) -> str:
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        env=django_env(database_url),
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    ).stdout


# Every table the benchmarks write to (leads and their rank rows, events, deliveries, attempts).
WRITTEN_TABLES = (
    "leads_lead",
    "leads_leadrank",
    "webhooks_event",
    "webhooks_webhookdelivery",
    "webhooks_deliveryattempt",
)


def vacuum(database_url: str) -> None:
    """VACUUM ANALYZE what the benchmarks write. A server with autovacuum off (the development machine's is)
    would otherwise carry every earlier benchmark's dead rows and stale statistics into the next one: after
    a full run leads_leadrank held ~2.2 million dead rows, never vacuumed, and the list's index-only scans
    of its score index rely on the visibility map only VACUUM maintains.

    Then a CHECKPOINT (where the role may), so the pages the last benchmark (or the lead generator) dirtied
    are written now rather than by the checkpointer during the next measurement."""
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        for table in WRITTEN_TABLES:
            conn.execute(f"VACUUM ANALYZE {table}")
        # Needs superuser or pg_checkpoint; without it the benchmarks measure the server as it is.
        with contextlib.suppress(psycopg.errors.InsufficientPrivilege):
            conn.execute("CHECKPOINT")


def ensure_database(database_url: str) -> None:
    """Create the benchmark database if it does not exist, migrate it, and vacuum what benchmarks write
    (every benchmark calls this first, so none inherits the dead rows of the one before)."""
    import psycopg

    name = database_url.rsplit("/", 1)[1]
    admin_url = database_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    manage(database_url, "migrate", "--noinput", "-v0")
    vacuum(database_url)


def bench_account(database_url: str, slug: str = "bench") -> str:
    """Create (once) a pro account and return a fresh all-scopes API key."""
    import psycopg

    with contextlib.suppress(subprocess.CalledProcessError):  # exists already
        manage(database_url, "create_account", slug, "--plan", "pro", "--owner", f"owner@{slug}.example")
    # Benchmarks send thousands of requests: lift the account's request budget out of the way.
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE accounts_account SET rate_limit_override = 1000000000 WHERE slug = %s", (slug,))
    return manage(
        database_url, "create_api_key", "--account", slug, "--name", "bench", "--scopes", "leads:read,leads:write,admin"
    ).strip()


# gunicorn makes its own unlinked mkstemp file there, one per worker: nothing is read back from a shared name.
HEARTBEAT_DIR = "/dev/shm"  # noqa: S108


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def gunicorn(
    database_url: str,
    workers: int = 2,
    extra_env: dict | None = None,
    timeout: int = 120,
    settings_module: str = "config.settings",
) -> Iterator[str]:
    """Serve config.wsgi with gunicorn on a free port; yields the base URL. `timeout`: gunicorn's
    worker timeout in seconds (a sync worker serving one long download must outlive it);
    `settings_module`: e.g. bench.bench_settings, which adds the bench-only bare views."""
    import requests

    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "config.wsgi",
            "-w",
            str(workers),
            "-b",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
            "--timeout",
            str(timeout),
            # The workers' heartbeat files in memory, as gunicorn's documentation advises and the README's
            # deployment does: on a disk-backed /tmp every request's heartbeat is a journaled metadata write.
            *(["--worker-tmp-dir", HEARTBEAT_DIR] if os.path.isdir(HEARTBEAT_DIR) else []),
        ],
        env={**django_env(database_url), "DJANGO_SETTINGS_MODULE": settings_module, **(extra_env or {})},
        cwd=ROOT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                # A cheap page that spends no API budget (the schema takes seconds to generate).
                requests.get(base + "/login/", timeout=10)
                break
            except requests.RequestException:
                time.sleep(0.2)
        else:
            raise RuntimeError("gunicorn did not start")
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def summarize(samples: list[float]) -> dict:
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples), "runs": len(samples)}


def new_run_id() -> str:
    return uuid.uuid4().hex[:8]


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def span(values: list[float], scale: float = 1.0, digits: int = 1) -> str:
    """`median (min-max)` of per-run figures, as the results tables show them."""
    return (
        f"{statistics.median(values) * scale:,.{digits}f} "
        f"({min(values) * scale:,.{digits}f}–{max(values) * scale:,.{digits}f})"
    )


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def setup_django(database_url: str, settings_module: str = "config.settings") -> None:
    """Configure Django in this process against the benchmark database and Redis (in-process figures)."""
    os.environ.update(django_env(database_url))
    os.environ["DJANGO_SETTINGS_MODULE"] = settings_module
    os.environ.pop("CELERY_BROKER_URL", None)
    import django

    django.setup()
