"""The MCP server (official SDK, low-level `Server`): tool and resource handlers around `tools.TOOLS`.

Every tool call and resource read, on any transport:
1. resolves the caller to an Actor (`current_credential`, set by the transport: the stdio command
   re-checks its API key on every call, the HTTP app authenticates every request),
2. checks the tool's scope (leads:read / leads:write), exactly like the REST views,
3. spends one unit of the account's request budget (core.ratelimit, shared with REST),
4. runs the synchronous tool in a worker thread (the ORM is synchronous) with Django's connection
   housekeeping around it, and
5. turns any error into a tool error result `<code>: <detail>` (the REST problem body as structured
   content); an unexpected exception is logged and reported as internal_error, never as a traceback.
"""

from __future__ import annotations

import contextvars
import json
import logging
from collections.abc import Callable
from typing import Any

import mcp_types as types
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections
from mcp.server.lowlevel import Server
from mcp.shared.exceptions import MCPError

from accounts.actor import Actor
from accounts.scopes import LEADS_READ
from core import ratelimit
from core.errors import InsufficientScope, NotFound, RateLimited
from core.exceptions import problem_exception_handler
from leads.exports import filters_to_params
from leads.representation import lead_to_dict, segment_to_dict
from leads.selectors import lead_list, segment_get, segment_list

from .tools import TOOLS, TOOLS_BY_NAME, ReplayedError, ToolCall

logger = logging.getLogger("leadbase.mcp")

SERVER_NAME = "leadbase"
INSTRUCTIONS = (
    "Leadbase is a lead database. Use search_leads to find leads (filters, q, sort, cursor), get_lead for one, "
    "create_lead / update_lead / tag_leads / add_note / score_lead to work them, list_scoring_rules and "
    "account_summary for context. delete_leads is destructive and needs confirm: true after the user agreed. "
    "Saved segments are resources: leadbase://segments and leadbase://segments/{id}."
)
SEGMENTS_URI = "leadbase://segments"
SEGMENT_URI_PREFIX = "leadbase://segments/"
SEGMENT_PAGE_SIZE = 50


class CredentialError(Exception):
    """The caller has no valid credential (any more)."""


# A zero-argument callable resolving the caller to an Actor (or None when the credential is invalid).
# Called in the worker thread, so it may use the ORM.
current_credential: contextvars.ContextVar[Callable[[], Actor | None] | None] = contextvars.ContextVar(
    "leadbase_mcp_credential", default=None
)
ACTOR_SCOPE_KEY = "leadbase.mcp.credential"


def _credential(ctx) -> Callable[[], Actor | None] | None:
    request = getattr(ctx, "request", None)
    scope = getattr(request, "scope", None)
    if isinstance(scope, dict) and scope.get(ACTOR_SCOPE_KEY) is not None:
        return scope[ACTOR_SCOPE_KEY]
    return current_credential.get()


def _admit(resolve: Callable[[], Actor | None] | None, scope: str) -> ToolCall:
    """Authenticate, check the scope, then spend one unit of the account's budget. An invalid credential
    never spends an account's budget; a call refused for its scope does not either."""
    actor = resolve() if resolve is not None else None
    if actor is None:
        raise CredentialError("The API key or token is invalid, revoked or expired.")
    if not actor.has_scope(scope):
        raise InsufficientScope(f"This tool needs the '{scope}' scope; this credential has {sorted(actor.scopes)}.")
    decision = None
    if settings.LEADBASE_RATE_LIMIT_ENABLED:
        decision = ratelimit.hit_account(actor.account)
        if not decision.allowed:
            raise RateLimited(
                f"Rate limited: the account's budget of {decision.limit} requests per {decision.window} s is "
                f"spent; retry in {decision.retry_after} s.",
                retry_after=decision.retry_after,
            )
    return ToolCall(actor=actor, decision=decision)


def _problem(exc: Exception) -> dict[str, Any]:
    if isinstance(exc, ReplayedError):
        return exc.body
    if isinstance(exc, CredentialError):
        return {"code": "invalid_credentials", "detail": str(exc), "status": 401}
    body = dict(problem_exception_handler(exc, {}).data)
    body.pop("request_id", None)
    return body


def _error_text(body: dict[str, Any]) -> str:
    text = f"{body.get('code', 'error')}: {body.get('detail') or body.get('title') or 'The call failed.'}"
    field_errors = [e for e in body.get("errors") or [] if e.get("field")]
    if field_errors:
        text += " (" + "; ".join(f"{e['field']}: {e['message']}" for e in field_errors[:10]) + ")"
    if body.get("existing_id"):
        text += f" existing_id={body['existing_id']}"
    return text


def _run_tool(name: str, arguments: dict[str, Any], resolve) -> types.CallToolResult:
    close_old_connections()
    try:
        spec = TOOLS_BY_NAME.get(name)
        if spec is None:
            raise NotFound(f"Unknown tool {name!r}; see tools/list.")
        call = _admit(resolve, spec.scope)
        result = spec.run(call, arguments)
        return types.CallToolResult(
            content=[types.TextContent(text=json.dumps(result, default=str))], structured_content=result
        )
    except Exception as exc:  # every failure becomes a tool error result, never a traceback
        body = _problem(exc)
        return types.CallToolResult(
            content=[types.TextContent(text=_error_text(body))], structured_content={"error": body}, is_error=True
        )
    finally:
        close_old_connections()


def _read_resource(uri: str, resolve) -> str:
    close_old_connections()
    try:
        call = _admit(resolve, LEADS_READ)
        account = call.account
        if uri == SEGMENTS_URI:
            body: dict[str, Any] = {"segments": [segment_to_dict(s) for s in segment_list(account=account)]}
        elif uri.startswith(SEGMENT_URI_PREFIX):
            segment = segment_get(account=account, segment_id=uri.removeprefix(SEGMENT_URI_PREFIX))
            params = filters_to_params(segment.filters)
            params["limit"] = str(SEGMENT_PAGE_SIZE)
            page = lead_list(account=account, params=params)
            body = {
                "segment": segment_to_dict(segment),
                "leads": [lead_to_dict(lead) for lead in page.items],
                "next_cursor": page.next_cursor,
                "has_more": page.has_more,
            }
        else:
            raise NotFound(f"Unknown resource {uri!r}.")
        return json.dumps(body, default=str)
    except Exception as exc:
        body = _problem(exc)
        raise MCPError(types.INVALID_PARAMS, _error_text(body), body) from None
    finally:
        close_old_connections()


def _list_segments(resolve) -> list[types.Resource]:
    close_old_connections()
    try:
        call = _admit_without_budget(resolve)
        return [
            types.Resource(
                uri=f"{SEGMENT_URI_PREFIX}{s.pk}",
                name=f"segment-{s.pk}",
                title=f"Segment: {s.name}",
                description=f"The saved segment {s.name!r} and the first {SEGMENT_PAGE_SIZE} leads it matches.",
                mime_type="application/json",
            )
            for s in segment_list(account=call.account)
        ]
    except Exception as exc:
        body = _problem(exc)
        raise MCPError(types.INVALID_PARAMS, _error_text(body), body) from None
    finally:
        close_old_connections()


def _admit_without_budget(resolve) -> ToolCall:
    actor = resolve() if resolve is not None else None
    if actor is None:
        raise CredentialError("The API key or token is invalid, revoked or expired.")
    if not actor.has_scope(LEADS_READ):
        raise InsufficientScope(f"Listing segments needs the '{LEADS_READ}' scope.")
    return ToolCall(actor=actor)


def _tool(spec) -> types.Tool:
    return types.Tool(
        name=spec.name,
        title=spec.title,
        description=f"{spec.description} Needs the {spec.scope} scope.",
        input_schema=spec.input_schema,
        output_schema=spec.output_schema,
        annotations=types.ToolAnnotations(
            title=spec.title,
            read_only_hint=spec.read_only,
            destructive_hint=spec.destructive,
            idempotent_hint=spec.idempotent,
            open_world_hint=False,
        ),
    )


async def _on_list_tools(ctx, params) -> types.ListToolsResult:
    return types.ListToolsResult(tools=[_tool(spec) for spec in TOOLS])


async def _on_call_tool(ctx, params: types.CallToolRequestParams) -> types.CallToolResult:
    run = sync_to_async(_run_tool, thread_sensitive=False)
    return await run(params.name, dict(params.arguments or {}), _credential(ctx))


async def _on_list_resources(ctx, params) -> types.ListResourcesResult:
    segments = await sync_to_async(_list_segments, thread_sensitive=False)(_credential(ctx))
    index = types.Resource(
        uri=SEGMENTS_URI,
        name="segments",
        title="Segments",
        description="The account's saved segments (named lead filters).",
        mime_type="application/json",
    )
    return types.ListResourcesResult(resources=[index, *segments])


async def _on_list_resource_templates(ctx, params) -> types.ListResourceTemplatesResult:
    return types.ListResourceTemplatesResult(
        resource_templates=[
            types.ResourceTemplate(
                uri_template=SEGMENT_URI_PREFIX + "{id}",
                name="segment",
                title="Segment",
                description=f"A saved segment and the first {SEGMENT_PAGE_SIZE} leads it matches.",
                mime_type="application/json",
            )
        ]
    )


async def _on_read_resource(ctx, params: types.ReadResourceRequestParams) -> types.ReadResourceResult:
    uri = str(params.uri)
    text = await sync_to_async(_read_resource, thread_sensitive=False)(uri, _credential(ctx))
    return types.ReadResourceResult(
        contents=[types.TextResourceContents(uri=uri, mime_type="application/json", text=text)]
    )


def build_server() -> Server:
    return Server(
        SERVER_NAME,
        version="0.1.0",
        title="Leadbase",
        instructions=INSTRUCTIONS,
        on_list_tools=_on_list_tools,
        on_call_tool=_on_call_tool,
        on_list_resources=_on_list_resources,
        on_list_resource_templates=_on_list_resource_templates,
        on_read_resource=_on_read_resource,
    )
