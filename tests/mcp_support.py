"""Helpers for the MCP tests: a SQLite database file of their own, seeded through the services.

The MCP server under test runs in another process (spawned by the SDK's stdio client, or uvicorn for
streamable HTTP), which cannot see the test's transaction, so these tests prepare a database file the
server process opens itself. The same files run on the SQLite and the PostgreSQL CI runs.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SEED = r"""
import json, secrets
from datetime import timedelta
from django.utils import timezone
from oauth2_provider.models import get_access_token_model, get_application_model
from accounts.models import Account, User
from accounts.services import account_create, api_key_create
from leads.models import Segment
from leads.services import lead_create
from scoring.services import scoring_rule_create

def account(slug, **kw):
    owner = User.objects.create_user(email=f"owner@{slug}.test", password="x")
    acc = account_create(slug=slug, plan="pro", owner=owner)
    for k, v in kw.items():
        setattr(acc, k, v)
    acc.save()
    return acc, owner

a, a_owner = account("acme")
b, b_owner = account("globex")
c, c_owner = account("tiny", rate_limit_override=2)
keys = {
    "a": api_key_create(account=a, created_by=a_owner, name="all", scopes=["leads:read", "leads:write"])[1],
    "a_read": api_key_create(account=a, created_by=a_owner, name="ro", scopes=["leads:read"])[1],
    "b": api_key_create(account=b, created_by=b_owner, name="all", scopes=["leads:read", "leads:write"])[1],
    "c": api_key_create(account=c, created_by=c_owner, name="all", scopes=["leads:read", "leads:write"])[1],
}
scoring_rule_create(account=a, actor=None, data={"name": "German", "field": "country", "operator": "equals",
                                                 "value": "DE", "points": 30})
ids = {}
for email, data in [
    ("anna@acme-customer.test", {"first_name": "Anna", "country": "DE", "status": "new", "tags": ["hot"]}),
    ("bob@acme-customer.test", {"first_name": "Bob", "country": "US", "status": "contacted", "tags": ["cold"]}),
    ("carla@acme-customer.test", {"first_name": "Carla", "country": "DE", "status": "qualified"}),
]:
    ids[email] = str(lead_create(account=a, actor=None, data={"email": email, **data}).lead.pk)
ids["b_lead"] = str(lead_create(account=b, actor=None, data={"email": "zed@globex-customer.test"}).lead.pk)
segment = Segment.objects.create(account=a, name="German leads", filters={"country": "DE"})
app = get_application_model().objects.create(
    name="Assistant", client_type="public", authorization_grant_type="authorization-code",
    redirect_uris="https://client.test/cb", user=a_owner,
)
raw_token = secrets.token_urlsafe(24)
get_access_token_model().objects.create(
    user=a_owner, application=app, token=raw_token, expires=timezone.now() + timedelta(hours=1),
    scope=f"leads:read leads:write account:{a.pk}",
)
keys["a_oauth"] = raw_token
print("SEED:" + json.dumps({"keys": keys, "ids": ids, "segment": segment.pk}))
"""


def server_env(db_path: Path) -> dict[str, str]:
    """Environment of the server process: its own SQLite file, its own rate-limit key space."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "PYTEST_XDIST_WORKER")}
    env.update(
        SQLITE_PATH=str(db_path),
        DJANGO_SETTINGS_MODULE="config.settings",
        LEADBASE_RATE_LIMIT_PREFIX=f"lb:test:mcp:{uuid.uuid4().hex}",
        PYTHONUNBUFFERED="1",
    )
    return env


def prepare_database(db_path: Path) -> dict:
    """Migrate a fresh SQLite file and seed accounts, keys, leads, a rule and a segment; returns their ids."""
    env = server_env(db_path)
    subprocess.run([sys.executable, "manage.py", "migrate", "--verbosity", "0"], cwd=ROOT, env=env, check=True)
    out = subprocess.run(  # noqa: S603
        [sys.executable, "manage.py", "shell", "--no-imports", "-c", SEED],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    line = next(line for line in out.splitlines() if line.startswith("SEED:"))
    return json.loads(line.removeprefix("SEED:"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_uvicorn(db_path: Path | None = None, *, env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    """Serve config.asgi (Django + /mcp/) with uvicorn on a free port; returns the process and base URL. The
    server's environment: `server_env(db_path)` (its own SQLite file), or `env` as given."""
    port = free_port()
    proc = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "uvicorn", "config.asgi:application", "--port", str(port), "--log-level", "warning"],
        cwd=ROOT,
        env=env if env is not None else server_env(db_path),
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc, base
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError("uvicorn exited") from None
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("uvicorn did not start")


# --- scenarios shared by the stdio and HTTP tests -----------------------------------------------------

EXPECTED_TOOLS = {
    "search_leads": (True, False),
    "get_lead": (True, False),
    "create_lead": (False, False),
    "update_lead": (False, True),
    "tag_leads": (False, True),
    "add_note": (False, False),
    "score_lead": (False, False),
    "list_scoring_rules": (True, False),
    "account_summary": (True, False),
    "delete_leads": (False, True),
}


def ok(result) -> dict:
    assert not result.is_error, result.content[0].text
    return result.structured_content


def error_text(result) -> str:
    assert result.is_error, result.structured_content
    text = result.content[0].text
    assert "Traceback" not in text
    return text


async def full_workflow(session, seed: dict) -> None:
    """Done-means 1: list tools, search with filters, create, update, tag, note, score, account summary."""
    await session.initialize()
    tools = {tool.name: tool for tool in (await session.list_tools()).tools}
    assert set(tools) == set(EXPECTED_TOOLS)
    for name, (read_only, destructive) in EXPECTED_TOOLS.items():
        assert tools[name].annotations.read_only_hint is read_only, name
        assert tools[name].annotations.destructive_hint is destructive, name
        assert tools[name].output_schema["type"] == "object"
    filters = tools["search_leads"].input_schema["properties"]["filters"]["properties"]
    assert {"status__in", "score__gte", "tag", "country", "segment", "created_at__gte"} <= set(filters)
    assert tools["delete_leads"].input_schema["properties"]["confirm"]["type"] == "boolean"

    found = ok(
        await session.call_tool("search_leads", {"filters": {"country": "DE", "status__in": ["new", "qualified"]}})
    )
    assert {lead["email"] for lead in found["results"]} == {"anna@acme-customer.test", "carla@acme-customer.test"}
    found = ok(await session.call_tool("search_leads", {"filters": {"tag": ["hot"]}, "q": "anna"}))
    assert [lead["first_name"] for lead in found["results"]] == ["Anna"]
    page = ok(await session.call_tool("search_leads", {"sort": "email", "limit": 2}))
    assert len(page["results"]) == 2 and page["has_more"] is True
    rest = ok(await session.call_tool("search_leads", {"sort": "email", "limit": 2, "cursor": page["next_cursor"]}))
    assert [lead["email"] for lead in rest["results"]] == ["carla@acme-customer.test"]
    assert "unknown_filter" in error_text(await session.call_tool("search_leads", {"filters": {"stauts": "new"}}))

    created = ok(
        await session.call_tool(
            "create_lead", {"lead": {"email": " Dora@Example.COM ", "first_name": "Dora", "country": "de"}}
        )
    )
    assert created["outcome"] == "created"
    lead = created["lead"]
    assert lead["email"] == "dora@example.com" and lead["country"] == "DE" and lead["score"] == 30
    duplicate = await session.call_tool("create_lead", {"lead": {"email": "dora@example.com"}})
    assert "duplicate_lead" in error_text(duplicate) and lead["id"] in error_text(duplicate)

    updated = ok(await session.call_tool("update_lead", {"id": lead["id"], "changes": {"status": "contacted"}}))
    assert updated["status"] == "contacted" and updated["first_name"] == "Dora"
    assert "unknown_field" in error_text(
        await session.call_tool("update_lead", {"id": lead["id"], "changes": {"colour": "red"}})
    )

    anna = seed["ids"]["anna@acme-customer.test"]
    tagged = ok(await session.call_tool("tag_leads", {"ids": [lead["id"], anna], "add": ["VIP"], "remove": ["hot"]}))
    assert [r["outcome"] for r in tagged["results"]] == ["updated", "updated"]
    assert tagged["results"][0]["tags"] == ["vip"] and tagged["results"][1]["tags"] == ["vip"]
    fetched = ok(await session.call_tool("get_lead", {"id": anna}))
    assert fetched["tags"] == ["vip"]

    note = ok(await session.call_tool("add_note", {"lead_id": lead["id"], "body": "Called, wants a demo."}))
    assert note["lead"] == lead["id"] and note["body"] == "Called, wants a demo."

    scored = ok(await session.call_tool("score_lead", {"id": lead["id"]}))
    assert scored["score"] == 30 and scored["score_breakdown"][0]["points"] == 30
    rules = ok(await session.call_tool("list_scoring_rules", {}))
    assert [r["name"] for r in rules["rules"]] == ["German"]

    summary = ok(await session.call_tool("account_summary", {}))
    assert summary["account"]["slug"] == "acme" and summary["account"]["plan"] == "pro"
    assert summary["lead_count"] == 4 and summary["request_budget"] == 1000
    assert 0 < summary["requests_remaining"] < 1000

    resources = {str(r.uri) for r in (await session.list_resources()).resources}
    segment_uri = f"leadbase://segments/{seed['segment']}"
    assert {"leadbase://segments", segment_uri} <= resources
    content = json.loads((await session.read_resource(segment_uri)).contents[0].text)
    assert content["segment"]["name"] == "German leads"
    assert {row["email"] for row in content["leads"]} == {
        "anna@acme-customer.test",
        "carla@acme-customer.test",
        "dora@example.com",
    }


async def read_only_key_cannot_write(session, seed: dict) -> None:
    await session.initialize()
    anna = seed["ids"]["anna@acme-customer.test"]
    before = ok(await session.call_tool("get_lead", {"id": anna}))
    for name, args in [
        ("create_lead", {"lead": {"email": "new@example.com"}}),
        ("update_lead", {"id": anna, "changes": {"status": "lost"}}),
        ("tag_leads", {"ids": [anna], "add": ["x"]}),
        ("add_note", {"lead_id": anna, "body": "hi"}),
        ("score_lead", {"id": anna}),
        ("delete_leads", {"ids": [anna], "confirm": True}),
    ]:
        text = error_text(await session.call_tool(name, args))
        assert "insufficient_scope" in text and "leads:write" in text, name
    assert ok(await session.call_tool("get_lead", {"id": anna})) == before
    found = ok(await session.call_tool("search_leads", {"filters": {"email": "new@example.com"}}))
    assert found["results"] == []


async def other_account_sees_nothing(session, seed: dict) -> None:
    await session.initialize()
    found = ok(await session.call_tool("search_leads", {"limit": 100}))
    assert [lead["id"] for lead in found["results"]] == [seed["ids"]["b_lead"]]
    anna = seed["ids"]["anna@acme-customer.test"]
    assert "not_found" in error_text(await session.call_tool("get_lead", {"id": anna}))
    assert "not_found" in error_text(await session.call_tool("update_lead", {"id": anna, "changes": {"city": "X"}}))
    assert "not_found" in error_text(await session.call_tool("add_note", {"lead_id": anna, "body": "x"}))
    assert "not_found" in error_text(await session.call_tool("score_lead", {"id": anna}))
    tagged = ok(await session.call_tool("tag_leads", {"ids": [anna], "add": ["x"]}))
    assert tagged["results"][0]["outcome"] == "error" and tagged["results"][0]["error"]["code"] == "not_found"
    deleted = ok(await session.call_tool("delete_leads", {"ids": [anna], "confirm": True}))
    assert deleted["deleted"] == [] and deleted["not_found"] == [anna]
    assert "invalid_filter" in error_text(
        await session.call_tool("search_leads", {"filters": {"segment": seed["segment"]}})
    )
    resources = {str(r.uri) for r in (await session.list_resources()).resources}
    assert resources == {"leadbase://segments"}
    summary = ok(await session.call_tool("account_summary", {}))
    assert summary["account"]["slug"] == "globex" and summary["lead_count"] == 1


async def delete_needs_confirm(session, seed: dict) -> None:
    await session.initialize()
    bob = seed["ids"]["bob@acme-customer.test"]
    for args in ({"ids": [bob]}, {"ids": [bob], "confirm": False}, {"ids": [bob], "confirm": "yes"}):
        result = ok(await session.call_tool("delete_leads", args))
        assert result["confirmed"] is False and result["deleted"] == [] and result["would_delete"] == [bob]
        assert "Nothing was deleted" in result["message"]
    assert ok(await session.call_tool("get_lead", {"id": bob}))["id"] == bob
    result = ok(await session.call_tool("delete_leads", {"ids": [bob], "confirm": True}))
    assert result["confirmed"] is True and result["deleted"] == [bob]
    assert "not_found" in error_text(await session.call_tool("get_lead", {"id": bob}))


async def rate_limited(session, seed: dict) -> None:
    """Account `tiny` has rate_limit_override=2: the third call is refused with a clear message."""
    await session.initialize()
    ok(await session.call_tool("account_summary", {}))
    ok(await session.call_tool("search_leads", {}))
    text = error_text(await session.call_tool("search_leads", {}))
    assert text.startswith("rate_limited:") and "retry in" in text
