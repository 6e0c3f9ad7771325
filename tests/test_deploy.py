"""Production mode: `check --deploy` is clean, and missing secrets stop the process (§1)."""

from __future__ import annotations

import os
import secrets
import string
import subprocess
import sys
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parent.parent
# Variables the settings read; the parent test run's values must not leak into the child.
SETTINGS_VARIABLES = (
    "LEADBASE_",
    "DJANGO_",
    "DATABASE_",
    "REDIS_URL",
    "SQLITE_PATH",
    "CELERY_",
    "MEDIA_ROOT",
)


def random_secret_key(length: int = 60) -> str:
    alphabet = string.ascii_letters + string.digits + "!@#%^&*(-_=+)"
    return "".join(secrets.choice(alphabet) for _ in range(length))


def production_env(tmp_path: Path, **overrides: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(SETTINGS_VARIABLES)}
    env.update(
        LEADBASE_ENV="production",
        DJANGO_SECRET_KEY=random_secret_key(),
        DJANGO_ALLOWED_HOSTS="leads.example.com",
        DATABASE_URL=f"sqlite:///{tmp_path}/x.sqlite3",
        REDIS_URL="redis://127.0.0.1:6379/0",
    )
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(  # noqa: S603 (our own manage.py)
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_check_deploy_is_clean_in_production_mode(tmp_path):
    result = manage(production_env(tmp_path), "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


@pytest.mark.parametrize(
    ("overrides", "expected_check"),
    [
        ({"DJANGO_SECRET_KEY": "too-short"}, "security.W009"),
        ({"DJANGO_DEBUG": "true"}, "security.W018"),
        ({"DJANGO_SECURE_SSL_REDIRECT": "false"}, "security.W008"),
    ],
    ids=["weak-secret-key", "debug-on", "no-ssl-redirect"],
)
def test_check_deploy_still_reports_an_unsafe_production_setting(tmp_path, overrides, expected_check):
    """The clean result above comes from the settings, not from silenced checks."""
    result = manage(production_env(tmp_path, **overrides), "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode != 0
    assert expected_check in result.stdout + result.stderr


@pytest.mark.parametrize("missing", ["DJANGO_SECRET_KEY", "DATABASE_URL", "REDIS_URL"])
def test_production_mode_without_a_required_setting_fails_to_start(tmp_path, missing):
    result = manage(production_env(tmp_path, **{missing: None}), "check")
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert f"{missing} must be set in production mode" in result.stderr


def test_production_mode_with_a_blank_secret_key_fails_to_start(tmp_path):
    result = manage(production_env(tmp_path, DJANGO_SECRET_KEY="   "), "check")
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr


def test_unknown_run_mode_fails_to_start(tmp_path):
    result = manage(production_env(tmp_path, LEADBASE_ENV="staging"), "check")
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr


POOL_PROBE = (
    "from django.conf import settings; d = settings.DATABASES['default']; "
    "print(d['CONN_MAX_AGE'], sorted(d.get('OPTIONS', {}).get('pool', {}).items()))"
)


def test_database_pool_replaces_persistent_connections_when_asked(tmp_path):
    env = production_env(tmp_path, DATABASE_URL="postgres://u@127.0.0.1:5432/leads")

    def probe(extra: dict[str, str]) -> str:
        result = manage({**env, **extra}, "shell", "-c", POOL_PROBE)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip().splitlines()[-1]  # after the shell's own start-up line

    assert probe({}) == "60 []"  # persistent connections, no pool (WSGI)
    assert probe({"DATABASE_POOL": "true", "DATABASE_POOL_MAX_SIZE": "5"}) == (
        "0 [('max_lifetime', 600), ('max_size', 5), ('min_size', 2), ('timeout', 10)]"
    )


def test_the_asgi_entry_point_pools_connections_unless_told_not_to(tmp_path):
    # Under ASGI each request's sync code runs in a thread of its own: without a pool, a session per request.
    env = production_env(tmp_path, DATABASE_URL="postgres://u@127.0.0.1:5432/leads")
    probe = "import config.asgi; " + POOL_PROBE

    def run(extra: dict[str, str]) -> str:
        result = subprocess.run(  # noqa: S603 (our own entry point)
            [sys.executable, "-c", probe],
            cwd=BASE_DIR,
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout.strip().splitlines()[-1]

    assert run({}).startswith("0 [('max_lifetime', 600), ('max_size', 8), ('min_size', 2)")
    assert run({"DATABASE_POOL": "false"}).startswith("60 []")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("pool", ["default", "false"])
def test_under_asgi_concurrent_requests_share_a_few_pooled_sessions(account, make_key, pool):
    """The README's production app (config.asgi under uvicorn) against PostgreSQL: Django runs each request in a
    thread of its own there, and with the pool (on by default) 48 concurrent reads are served by at most the
    pool's 3 sessions; with DATABASE_POOL=false each thread opens its own (what this asserts against)."""
    import threading
    import time
    import uuid

    import psycopg
    import requests
    from django.db import connection

    from leads.services import lead_create

    from .mcp_support import start_uvicorn

    settings_dict = connection.settings_dict
    url = f"postgres://{settings_dict['USER']}@{settings_dict['HOST']}:{settings_dict['PORT']}/{settings_dict['NAME']}"
    key = make_key(account)
    lead = lead_create(account=account, actor=None, data={"email": "pool@example.org"}).lead
    app_name = f"leadbase-pool-{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_XDIST_WORKER", "DATABASE_POOL")}
    env.update(
        DATABASE_URL=url,
        DATABASE_POOL_MIN_SIZE="1",
        DATABASE_POOL_MAX_SIZE="3",
        PGAPPNAME=app_name,  # libpq's default application_name: the server's sessions, told apart from ours
        LEADBASE_RATE_LIMIT_PREFIX=f"lb:test:pool:{app_name}",
        DJANGO_SETTINGS_MODULE="config.settings",
    )
    if pool != "default":
        env["DATABASE_POOL"] = pool
    server, base = start_uvicorn(env=env)
    seen: set[int] = set()
    stop = threading.Event()

    def watch() -> None:  # every session the server opens, however briefly
        with psycopg.connect(url, autocommit=True) as conn:
            while not stop.is_set():
                rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE application_name = %s", [app_name])
                seen.update(pid for (pid,) in rows)
                time.sleep(0.002)

    statuses: list[int] = []

    def read(session: requests.Session) -> None:
        for _ in range(8):
            response = session.get(f"{base}/api/v1/leads/{lead.pk}", headers={"X-API-Key": key})
            statuses.append(response.status_code if response.json().get("id") == str(lead.pk) else -1)

    try:
        watcher = threading.Thread(target=watch)
        watcher.start()
        readers = [threading.Thread(target=read, args=(requests.Session(),)) for _ in range(6)]
        for thread in readers:
            thread.start()
        for thread in readers:
            thread.join()
        time.sleep(0.05)
        stop.set()
        watcher.join()
    finally:
        stop.set()
        server.terminate()
        server.wait(timeout=20)
    assert statuses == [200] * 48
    if pool == "default":
        assert 1 <= len(seen) <= 3, seen
    else:
        assert len(seen) > 3, seen  # the contrast: without the pool the same load opens more sessions
