"""The MCP tools: a third front door onto the same services and selectors as the REST API and the UI.

Each tool is a plain synchronous function `(call, arguments) -> dict` that validates its arguments,
calls a service or selector and renders the result with the API's own representation. Scopes, tenancy,
the rate limit and error mapping are applied around it by `mcp_server.server`, once for every tool.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.http import QueryDict
from rest_framework.response import Response

from accounts.actor import Actor
from accounts.scopes import LEADS_READ, LEADS_WRITE
from core.errors import InvalidParameter, NotFound, ValidationFailed, field_error
from core.idempotency import idempotent_execute
from core.ratelimit import Decision
from leads import selectors as lead_selectors
from leads import services as lead_services
from leads.api.serializers import LeadInputSerializer
from leads.batch import MAX_BATCH_ITEMS, leads_batch_delete, leads_batch_update
from leads.exports import filters_to_params
from leads.representation import lead_to_dict, note_to_dict
from scoring.selectors import rule_list
from scoring.services import lead_score_now

from . import schemas

SEARCH_MAX_LIMIT = 100
SEARCH_DEFAULT_LIMIT = 20


@dataclass(frozen=True)
class ToolCall:
    """Who calls, and the budget decision this call was admitted under (None when limits are off)."""

    actor: Actor
    decision: Decision | None = None

    @property
    def account(self):
        return self.actor.account


@dataclass(frozen=True)
class ToolSpec:
    name: str
    title: str
    description: str
    scope: str
    input_schema: dict[str, Any]
    output_schema: dict[str, Any]
    run: Callable[[ToolCall, dict[str, Any]], dict[str, Any]]
    read_only: bool
    destructive: bool
    idempotent: bool


def _object(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required or [], "additionalProperties": False}


def _lead_id(raw: Any) -> uuid.UUID:
    try:
        return uuid.UUID(str(raw))
    except ValueError as exc:
        raise NotFound("No such lead.") from exc


def _validated_lead_data(data: Any, field: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ValidationFailed(f"{field} must be an object of lead fields.", errors=[field_error(field, "Object.")])
    serializer = LeadInputSerializer(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


# --- read tools ------------------------------------------------------------------------------------


def search_leads(call: ToolCall, args: dict[str, Any]) -> dict[str, Any]:
    filters = args.get("filters") or {}
    if not isinstance(filters, dict):
        raise ValidationFailed("filters must be an object.", errors=[field_error("filters", "Object.")])
    params: QueryDict = filters_to_params(filters)
    limit = args.get("limit", SEARCH_DEFAULT_LIMIT)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= SEARCH_MAX_LIMIT:
        raise InvalidParameter(
            f"limit must be an integer from 1 to {SEARCH_MAX_LIMIT}.",
            errors=[field_error("limit", f"1-{SEARCH_MAX_LIMIT}.")],
        )
    params["limit"] = str(limit)
    for name in ("q", "sort", "cursor"):
        if args.get(name):
            params[name] = str(args[name])
    page = lead_selectors.lead_list(account=call.account, params=params)
    return {
        "results": [lead_to_dict(lead) for lead in page.items],
        "next_cursor": page.next_cursor,
        "has_more": page.has_more,
    }


def get_lead(call: ToolCall, args: dict[str, Any]) -> dict[str, Any]:
    return lead_to_dict(lead_selectors.lead_get(account=call.account, lead_id=args.get("id")))


def list_scoring_rules(call: ToolCall, args: dict[str, Any]) -> dict[str, Any]:
    rules = rule_list(account=call.account)
    return {
        "rules": [
            {
                "id": r.pk,
                "name": r.name,
                "field": r.field,
                "operator": r.operator,
                "value": r.value,
                "points": r.points,
                "active": r.active,
            }
            for r in rules
        ]
    }


def account_summary(call: ToolCall, args: dict[str, Any]) -> dict[str, Any]:
    account = call.account
    decision = call.decision
    return {
        "account": {"id": account.pk, "slug": account.slug, "name": account.name, "plan": account.plan},
        "role": call.actor.role,
        "scopes": sorted(call.actor.scopes),
        "lead_count": lead_selectors.lead_queryset(account=account).count(),
        "lead_limit": account.lead_limit,
        "request_budget": account.request_budget,
        "rate_limit_window_seconds": settings.LEADBASE_RATE_WINDOW_SECONDS,
        "requests_remaining": decision.remaining if decision else None,
    }


# --- write tools -----------------------------------------------------------------------------------


def create_lead(call: ToolCall, args: dict[str, Any]) -> dict[str, Any]:
    on_duplicate = args.get("on_duplicate") or "error"
    if on_duplicate not in lead_services.ON_DUPLICATE_CHOICES:
        raise InvalidParameter(
            "on_duplicate must be error, update or skip.", errors=[field_error("on_duplicate", "error|update|skip")]
        )
    data = _validated_lead_data(args.get("lead"), "lead")

    def run() -> Response:
        result = lead_services.lead_create(account=call.account, actor=call.actor, data=data, on_duplicate=on_duplicate)
        body = {"outcome": result.outcome, "lead": lead_to_dict(result.lead)}
        return Response(body, status=201 if result.outcome == "created" else 200)

    key = args.get("idempotency_key")
    if key is None:
        return run().data
    canonical = json.dumps({"lead": args.get("lead"), "on_duplicate": on_duplicate}, sort_keys=True, default=str)
    response = idempotent_execute(
        account=call.account,
        key=str(key),
        method="MCP",
        path="mcp:create_lead",
        fingerprint=hashlib.sha256(canonical.encode()).hexdigest(),
        run=run,
        field="idempotency_key",
    )
    if response.status_code >= 400:  # a stored error, replayed
        raise ReplayedError(response.data)
    return {**response.data, "replayed": response.headers.get("Idempotent-Replayed") == "true"}


class ReplayedError(Exception):
    """A replayed idempotent call whose first run failed: carries the stored problem body."""

    def __init__(self, body: dict[str, Any]):
        super().__init__(body.get("detail"))
        self.body = body


def update_lead(call: ToolCall, args: dict[str, Any]) -> dict[str, Any]:
    data = _validated_lead_data(args.get("changes"), "changes")
    lead = lead_services.lead_update(account=call.account, actor=call.actor, lead_id=args.get("id"), data=data)
    return lead_to_dict(lead)


def _ids(args: dict[str, Any]) -> list[Any]:
    ids = args.get("ids")
    if not isinstance(ids, list) or not ids:
        raise ValidationFailed("ids must be a non-empty list of lead ids.", errors=[field_error("ids", "Required.")])
    if len(ids) > MAX_BATCH_ITEMS:
        raise ValidationFailed(
            f"At most {MAX_BATCH_ITEMS} ids per call.", errors=[field_error("ids", f"At most {MAX_BATCH_ITEMS}.")]
        )
    return ids


def _tag_list(args: dict[str, Any], name: str) -> list[str]:
    value = args.get(name) or []
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise ValidationFailed(f"{name} must be a list of strings.", errors=[field_error(name, "List of strings.")])
    return value


def tag_leads(call: ToolCall, args: dict[str, Any]) -> dict[str, Any]:
    ids = _ids(args)
    add, remove = _tag_list(args, "add"), _tag_list(args, "remove")
    if not add and not remove:
        raise ValidationFailed("Give tags to add and/or remove.", errors=[field_error("add", "Required.")])
    items: list[Any] = []
    for raw in ids:
        try:
            items.append({"id": _lead_id(raw), "add_tags": add, "remove_tags": remove})
        except NotFound as exc:
            items.append(exc)
    batch = leads_batch_update(account=call.account, actor=call.actor, items=items)
    results = []
    for raw, item in zip(ids, batch.results, strict=True):
        if item.error is not None:
            results.append(
                {"id": str(raw), "outcome": "error", "error": {"code": item.error.code, "detail": item.error.detail}}
            )
        else:
            results.append({"id": str(item.lead.pk), "outcome": item.outcome, "tags": item.lead.tags})
    return {"results": results, "summary": batch.summary}


def add_note(call: ToolCall, args: dict[str, Any]) -> dict[str, Any]:
    note = lead_services.note_add(
        account=call.account, actor=call.actor, lead_id=args.get("lead_id"), body=args.get("body")
    )
    return note_to_dict(note)


def score_lead(call: ToolCall, args: dict[str, Any]) -> dict[str, Any]:
    lead = lead_score_now(account=call.account, actor=call.actor, lead_id=args.get("id"))
    return {
        "id": str(lead.pk),
        "score": lead.score,
        "score_breakdown": lead.score_breakdown,
        "scored_at": lead_to_dict(lead)["scored_at"],
    }


def delete_leads(call: ToolCall, args: dict[str, Any]) -> dict[str, Any]:
    ids = _ids(args)
    confirmed = args.get("confirm") is True
    batch = leads_batch_delete(account=call.account, actor=call.actor, ids=ids, dry_run=not confirmed)
    found = [item.deleted_id for item in batch.results if item.error is None]
    not_found = [str(raw) for raw, item in zip(ids, batch.results, strict=True) if item.error is not None]
    if not confirmed:
        return {
            "confirmed": False,
            "deleted": [],
            "would_delete": found,
            "not_found": not_found,
            "message": (
                f"Nothing was deleted: {len(found)} lead(s) would be. Deleting cannot be undone; ask the user, "
                "then call delete_leads again with confirm: true."
            ),
        }
    return {
        "confirmed": True,
        "deleted": found,
        "would_delete": [],
        "not_found": not_found,
        "message": f"Deleted {len(found)} lead(s).",
    }


# --- the catalogue ---------------------------------------------------------------------------------

LEAD_LIST_OUTPUT = _object(
    {
        "results": {"type": "array", "items": schemas.LEAD_SCHEMA},
        "next_cursor": {"type": ["string", "null"], "description": "Pass as cursor to get the next page."},
        "has_more": {"type": "boolean"},
    },
    ["results", "next_cursor", "has_more"],
)
ID_LIST = {
    "type": "array",
    "items": {"type": "string"},
    "minItems": 1,
    "maxItems": MAX_BATCH_ITEMS,
    "description": f"Lead ids (UUIDs), at most {MAX_BATCH_ITEMS}.",
}
TAGS = {"type": "array", "items": {"type": "string"}}
NOTE_SCHEMA = _object(
    {
        "id": {"type": "integer"},
        "lead": {"type": "string"},
        "author": {"type": ["integer", "null"]},
        "body": {"type": "string"},
        "created_at": {"type": "string"},
    },
    ["id", "lead", "body", "created_at"],
)
DELETE_OUTPUT = _object(
    {
        "confirmed": {"type": "boolean"},
        "deleted": TAGS,
        "would_delete": TAGS,
        "not_found": TAGS,
        "message": {"type": "string"},
    },
    ["confirmed", "deleted", "would_delete", "not_found", "message"],
)

TOOLS: list[ToolSpec] = [
    ToolSpec(
        name="search_leads",
        title="Search leads",
        description=(
            "Find leads of the account: filters (exact, lists, text contains, ranges, tags, custom fields, saved "
            "segment), free-text q, sort and cursor paging. Returns one page of leads (at most `limit`) and a "
            "next_cursor to continue. " + schemas.ERROR_FREE_NOTE
        ),
        scope=LEADS_READ,
        input_schema=_object(
            {
                "filters": schemas.filters_schema(),
                "q": {"type": "string", "description": "Search words in first/last name, email and company."},
                "sort": {"type": "string", "description": schemas.SORT_DESCRIPTION},
                "limit": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": SEARCH_MAX_LIMIT,
                    "default": SEARCH_DEFAULT_LIMIT,
                    "description": f"Page size, 1-{SEARCH_MAX_LIMIT} (default {SEARCH_DEFAULT_LIMIT}).",
                },
                "cursor": {
                    "type": "string",
                    "description": "next_cursor of the previous page, with the same filters, q and sort.",
                },
            }
        ),
        output_schema=LEAD_LIST_OUTPUT,
        run=search_leads,
        read_only=True,
        destructive=False,
        idempotent=True,
    ),
    ToolSpec(
        name="get_lead",
        title="Get a lead",
        description="Get one lead by id, with its score breakdown, tags and custom fields.",
        scope=LEADS_READ,
        input_schema=_object({"id": schemas.ID_SCHEMA}, ["id"]),
        output_schema=schemas.LEAD_SCHEMA,
        run=get_lead,
        read_only=True,
        destructive=False,
        idempotent=True,
    ),
    ToolSpec(
        name="create_lead",
        title="Create a lead",
        description=(
            "Create a lead, deduplicated by email (else external_id). A duplicate is an error (duplicate_lead, with "
            "existing_id) unless on_duplicate is update (merge the new fields into the existing lead: tags are "
            "added, custom fields merged) or skip (return the existing lead unchanged). Pass an idempotency_key to "
            "make a retry safe: the same key and arguments within 24 h return the first result without creating "
            "twice. The lead is scored on create."
        ),
        scope=LEADS_WRITE,
        input_schema=_object(
            {
                "lead": schemas.LEAD_INPUT_SCHEMA,
                "on_duplicate": {
                    "type": "string",
                    "enum": list(lead_services.ON_DUPLICATE_CHOICES),
                    "default": "error",
                    "description": "error (default), update or skip: what to do when the lead exists.",
                },
                "idempotency_key": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 255,
                    "description": "Optional unique key for this create (e.g. a UUID); reuse it only to retry.",
                },
            },
            ["lead"],
        ),
        output_schema=_object(
            {
                "outcome": {"type": "string", "enum": ["created", "updated", "skipped"]},
                "lead": schemas.LEAD_SCHEMA,
                "replayed": {"type": "boolean", "description": "true: an idempotent retry, nothing was done."},
            },
            ["outcome", "lead"],
        ),
        run=create_lead,
        read_only=False,
        destructive=False,
        idempotent=False,
    ),
    ToolSpec(
        name="update_lead",
        title="Update a lead",
        description=(
            "Change some fields of one lead; fields not given stay as they are. `tags` here replaces all tags "
            "(use tag_leads to add or remove some). The lead is rescored."
        ),
        scope=LEADS_WRITE,
        input_schema=_object(
            {"id": schemas.ID_SCHEMA, "changes": {**schemas.LEAD_INPUT_SCHEMA, "minProperties": 1}}, ["id", "changes"]
        ),
        output_schema=schemas.LEAD_SCHEMA,
        run=update_lead,
        read_only=False,
        destructive=True,
        idempotent=True,
    ),
    ToolSpec(
        name="tag_leads",
        title="Tag leads",
        description=(
            "Add and/or remove tags on up to 500 leads at once; other tags stay. Tags are lower-cased. Each id gets "
            "its own outcome (updated, unchanged or error such as not_found)."
        ),
        scope=LEADS_WRITE,
        input_schema=_object(
            {
                "ids": ID_LIST,
                "add": {**TAGS, "description": 'Tags to add, e.g. ["hot"].'},
                "remove": {**TAGS, "description": "Tags to remove."},
            },
            ["ids"],
        ),
        output_schema=_object(
            {
                "results": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "id": {"type": "string"},
                            "outcome": {"type": "string", "enum": ["updated", "unchanged", "error"]},
                            "tags": TAGS,
                            "error": {"type": "object"},
                        },
                        "required": ["id", "outcome"],
                    },
                },
                "summary": {"type": "object"},
            },
            ["results", "summary"],
        ),
        run=tag_leads,
        read_only=False,
        destructive=True,
        idempotent=True,
    ),
    ToolSpec(
        name="add_note",
        title="Add a note to a lead",
        description="Add a free-text note (a call summary, a next step; at most 10,000 characters) to one lead.",
        scope=LEADS_WRITE,
        input_schema=_object(
            {
                "lead_id": schemas.ID_SCHEMA,
                "body": {"type": "string", "minLength": 1, "maxLength": 10_000, "description": "The note's text."},
            },
            ["lead_id", "body"],
        ),
        output_schema=NOTE_SCHEMA,
        run=add_note,
        read_only=False,
        destructive=False,
        idempotent=False,
    ),
    ToolSpec(
        name="score_lead",
        title="Rescore a lead",
        description="Recalculate one lead's score now with the account's active scoring rules; returns the breakdown.",
        scope=LEADS_WRITE,
        input_schema=_object({"id": schemas.ID_SCHEMA}, ["id"]),
        output_schema=_object(
            {
                "id": {"type": "string"},
                "score": {"type": "integer", "minimum": 0, "maximum": 100},
                "score_breakdown": {"type": "array", "description": "The rules that matched and their points."},
                "scored_at": {"type": ["string", "null"]},
            },
            ["id", "score", "score_breakdown"],
        ),
        run=score_lead,
        read_only=False,
        destructive=False,
        idempotent=True,
    ),
    ToolSpec(
        name="list_scoring_rules",
        title="List scoring rules",
        description=(
            "The account's scoring rules: a lead's score is the sum of the points of the active rules it matches, "
            "clamped to 0-100."
        ),
        scope=LEADS_READ,
        input_schema=_object({}),
        output_schema=_object(
            {
                "rules": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "id": {"type": "integer"},
                            "name": {"type": "string"},
                            "field": {"type": "string"},
                            "operator": {"type": "string"},
                            "value": {},
                            "points": {"type": "integer"},
                            "active": {"type": "boolean"},
                        },
                    },
                }
            },
            ["rules"],
        ),
        run=list_scoring_rules,
        read_only=True,
        destructive=False,
        idempotent=True,
    ),
    ToolSpec(
        name="account_summary",
        title="Account summary",
        description=(
            "The account this credential acts in: plan, lead count and cap, request budget and what remains of it, "
            "and the credential's role and scopes."
        ),
        scope=LEADS_READ,
        input_schema=_object({}),
        output_schema=_object(
            {
                "account": {"type": "object"},
                "role": {"type": "string"},
                "scopes": TAGS,
                "lead_count": {"type": "integer"},
                "lead_limit": {"type": ["integer", "null"], "description": "null: no cap."},
                "request_budget": {"type": "integer", "description": "Requests per rate-limit window."},
                "rate_limit_window_seconds": {"type": "integer"},
                "requests_remaining": {"type": ["integer", "null"]},
            },
            ["account", "lead_count", "request_budget"],
        ),
        run=account_summary,
        read_only=True,
        destructive=False,
        idempotent=True,
    ),
    ToolSpec(
        name="delete_leads",
        title="Delete leads",
        description=(
            "Permanently delete up to 500 leads (and their notes). Without confirm: true nothing is deleted and the "
            "result says how many would be: show that to the user and only call again with confirm: true once "
            "they agreed."
        ),
        scope=LEADS_WRITE,
        input_schema=_object(
            {
                "ids": ID_LIST,
                "confirm": {
                    "type": "boolean",
                    "default": False,
                    "description": "Must be true to delete; anything else only reports what would be deleted.",
                },
            },
            ["ids"],
        ),
        output_schema=DELETE_OUTPUT,
        run=delete_leads,
        read_only=False,
        destructive=True,
        idempotent=True,
    ),
]
TOOLS_BY_NAME = {tool.name: tool for tool in TOOLS}
