"""The MCP server over stdio (`manage.py mcp`), driven by the official SDK's client (§4.13, issue 9)."""

from __future__ import annotations

import shutil
import subprocess
import sys

import anyio
import pytest
from mcp import ClientSession, StdioServerParameters, stdio_client

from . import mcp_support as support


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    path = tmp_path_factory.mktemp("mcp_stdio") / "template.sqlite3"
    return path, support.prepare_database(path)


@pytest.fixture
def db(template, tmp_path):
    """A fresh copy of the seeded database for each test."""
    path, seed = template
    copy = tmp_path / "db.sqlite3"
    shutil.copy(path, copy)
    return copy, seed


def run_stdio(db, key_name: str, scenario) -> None:
    path, seed = db
    env = support.server_env(path) | {"LEADBASE_API_KEY": seed["keys"][key_name]}
    params = StdioServerParameters(command=sys.executable, args=["manage.py", "mcp"], env=env, cwd=str(support.ROOT))

    async def main():
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await scenario(session, seed)

    anyio.run(main)


def test_stdio_full_workflow_lists_searches_creates_updates_tags_notes_scores_and_summarises(db):
    run_stdio(db, "a", support.full_workflow)


def test_stdio_read_only_key_cannot_call_write_tools_and_nothing_changes(db):
    run_stdio(db, "a_read", support.read_only_key_cannot_write)


def test_stdio_other_accounts_key_never_sees_the_accounts_leads(db):
    run_stdio(db, "b", support.other_account_sees_nothing)


def test_stdio_delete_leads_without_confirm_changes_nothing(db):
    run_stdio(db, "a", support.delete_needs_confirm)


def test_stdio_rate_limited_account_gets_a_clear_error(db):
    run_stdio(db, "c", support.rate_limited)


async def _idempotent_create(session, seed):
    await session.initialize()
    args = {"lead": {"email": "once@example.com"}, "idempotency_key": "assistant-retry-1"}
    first = support.ok(await session.call_tool("create_lead", args))
    again = support.ok(await session.call_tool("create_lead", args))
    assert first["outcome"] == "created" and first.get("replayed") is False
    assert again["lead"]["id"] == first["lead"]["id"] and again["replayed"] is True
    other = {"lead": {"email": "twice@example.com"}, "idempotency_key": "assistant-retry-1"}
    assert "idempotency_key_reused" in support.error_text(await session.call_tool("create_lead", other))
    found = support.ok(
        await session.call_tool("search_leads", {"filters": {"email__in": ["once@example.com", "twice@example.com"]}})
    )
    assert len(found["results"]) == 1


def test_stdio_create_lead_with_idempotency_key_creates_once(db):
    run_stdio(db, "a", _idempotent_create)


@pytest.mark.parametrize(
    ("key", "message"),
    [(None, "LEADBASE_API_KEY is not set"), ("lb_" + "x" * 43, "not a valid API key")],
)
def test_stdio_refuses_to_start_without_a_valid_key(db, key, message):
    path, _ = db
    env = support.server_env(path)
    env.pop("LEADBASE_API_KEY", None)
    if key:
        env["LEADBASE_API_KEY"] = key
    done = subprocess.run(
        [sys.executable, "manage.py", "mcp"],
        cwd=support.ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode != 0
    assert message in done.stderr and "Traceback" not in done.stderr
    assert done.stdout == ""
