"""The embedded run path of a fresh clone: migrate, seed_demo, runserver, one real HTTP request (§1, §4.14).

Everything runs in child processes against a SQLite file in the test's own tmp_path and a free
port, so parallel pytest-xdist workers never share state; the xdist group keeps the one slow test
on one worker under `--dist loadgroup`.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parent.parent
SETTINGS_VARIABLES = (
    "LEADBASE_",
    "DJANGO_",
    "DATABASE_",
    "REDIS_URL",
    "SQLITE_PATH",
    "CELERY_",
    "MEDIA_ROOT",
)
KEY_PATTERN = re.compile(r"lb_[A-Za-z0-9_\-]{32,}")
STARTUP_DEADLINE_SECONDS = 20

pytestmark = [pytest.mark.xdist_group("demo_smoke")]


def embedded_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(SETTINGS_VARIABLES)}
    env["SQLITE_PATH"] = str(tmp_path / "demo.sqlite3")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run(  # noqa: S603 (our own manage.py)
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url: str, key: str) -> tuple[int, dict]:
    request = urllib.request.Request(  # noqa: S310 (a local http URL)
        url, headers={"X-API-Key": key, "Accept": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 (a local http URL)
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def wait_until_answering(server: subprocess.Popen, url: str, key: str, log: Path) -> tuple[int, dict] | None:
    """Poll until the server answers; None when it could not bind its port."""
    deadline = time.monotonic() + STARTUP_DEADLINE_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            output = log.read_text()
            if "port is already in use" in output:
                return None
            pytest.fail(f"runserver exited with {server.returncode}:\n{output}")
        try:
            return get(url, key)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.1)
    pytest.fail(f"runserver did not answer within {STARTUP_DEADLINE_SECONDS} s:\n{log.read_text()}")


def stop(server: subprocess.Popen) -> None:
    server.terminate()
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait(timeout=10)


def test_fresh_embedded_install_serves_the_demo_leads_over_http(tmp_path):
    env = embedded_env(tmp_path)
    manage(env, "migrate", "--no-input", "-v", "0")
    seeded = manage(env, "seed_demo")
    match = KEY_PATTERN.search(seeded.stdout)
    assert match, seeded.stdout
    key = match.group(0)

    log = tmp_path / "runserver.log"
    for _attempt in range(3):  # another process may take the free port before runserver binds it
        port = free_port()
        with log.open("w") as log_file:
            server = subprocess.Popen(  # noqa: S603 (our own manage.py)
                [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
                cwd=BASE_DIR,
                env=env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
            try:
                answer = wait_until_answering(server, f"http://127.0.0.1:{port}/api/v1/leads?limit=5", key, log)
            finally:
                stop(server)
        if answer is not None:
            break
    else:
        pytest.fail(f"no free port for runserver:\n{log.read_text()}")

    status, body = answer
    assert status == 200, body
    assert len(body["results"]) == 5
    assert body["has_more"] is True
    assert all(lead["email"] for lead in body["results"])
