"""The MCP server over streamable HTTP at /mcp/ of the ASGI app, against a live uvicorn (§4.13, issue 9)."""

from __future__ import annotations

import shutil

import anyio
import pytest
import requests
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from . import mcp_support as support


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    path = tmp_path_factory.mktemp("mcp_http") / "template.sqlite3"
    return path, support.prepare_database(path)


@pytest.fixture
def live(template, tmp_path):
    """uvicorn serving config.asgi (Django and /mcp/) on a fresh copy of the seeded database."""
    path, seed = template
    copy = tmp_path / "db.sqlite3"
    shutil.copy(path, copy)
    proc, base = support.start_uvicorn(copy)
    try:
        yield base, seed
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def run_http(live, key_name: str, scenario) -> None:
    base, seed = live

    async def main():
        headers = {"Authorization": f"Bearer {seed['keys'][key_name]}"}
        async with (
            create_mcp_http_client(headers=headers) as http,
            streamable_http_client(f"{base}/mcp/", http_client=http) as (read, write),
            ClientSession(read, write) as session,
        ):
            await scenario(session, seed)

    anyio.run(main)


def test_http_full_workflow_lists_searches_creates_updates_tags_notes_scores_and_summarises(live):
    run_http(live, "a", support.full_workflow)


def test_http_works_with_an_oauth_access_token(live):
    async def scenario(session, seed):
        await session.initialize()
        summary = support.ok(await session.call_tool("account_summary", {}))
        assert summary["account"]["slug"] == "acme" and summary["role"] == "owner"
        created = support.ok(await session.call_tool("create_lead", {"lead": {"email": "oauth@example.com"}}))
        assert created["outcome"] == "created"

    run_http(live, "a_oauth", scenario)


def test_http_read_only_key_cannot_call_write_tools_and_nothing_changes(live):
    run_http(live, "a_read", support.read_only_key_cannot_write)


def test_http_other_accounts_key_never_sees_the_accounts_leads(live):
    run_http(live, "b", support.other_account_sees_nothing)


def test_http_delete_leads_without_confirm_changes_nothing(live):
    run_http(live, "a", support.delete_needs_confirm)


def test_http_rate_limited_account_gets_a_clear_error(live):
    run_http(live, "c", support.rate_limited)


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "authentication_required"),
        ({"Authorization": "Bearer lb_" + "x" * 43}, "invalid_credentials"),
        ({"Authorization": "Bearer not-a-token"}, "invalid_credentials"),
        ({"X-API-Key": "lb_nope"}, "invalid_credentials"),
    ],
)
def test_http_without_valid_credentials_is_401_problem_json(live, headers, code):
    base, _ = live
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    response = requests.post(
        f"{base}/mcp/",
        json=body,
        headers={**headers, "Accept": "application/json, text/event-stream"},
        timeout=10,
    )
    assert response.status_code == 401
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.json()["code"] == code


def test_the_same_asgi_app_serves_the_rest_api_beside_mcp(live):
    base, seed = live
    response = requests.get(f"{base}/api/v1/me", headers={"X-API-Key": seed["keys"]["a"]}, timeout=10)
    assert response.status_code == 200 and response.json()["account"]["slug"] == "acme"
    listed = requests.get(f"{base}/api/v1/leads?country=DE", headers={"X-API-Key": seed["keys"]["a"]}, timeout=10)
    assert listed.status_code == 200 and len(listed.json()["results"]) == 2
