"""Streamable HTTP transport at /mcp/: per-request authentication in front of the SDK's session manager.

Stateless mode with JSON responses: every POST carries its own credential and is served by whichever
process gets it, so scaling out behind gunicorn needs no sticky sessions and keeps no state in process
memory (§1). Each request is authenticated from its own `Authorization: Bearer` (API key `lb_…` or OAuth
access token) or `X-API-Key` header; missing or invalid credentials are a 401 problem+json before the
MCP layer sees the request, and spend the client address's budget, never an account's (§4.7).
"""

from __future__ import annotations

import contextlib
import json

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections
from django.http.request import split_domain_port, validate_host
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from starlette.datastructures import Headers

from accounts.oauth import oauth_token_authenticate
from accounts.services import API_KEY_PREFIX, api_key_authenticate
from core import ratelimit
from core.problems import PROBLEM_CONTENT_TYPE, problem_body

from .server import ACTOR_SCOPE_KEY, build_server, current_credential


async def _send_json(send, status: int, body: dict, headers: dict[str, str] | None = None) -> None:
    raw = json.dumps(body).encode()
    head = [(b"content-type", PROBLEM_CONTENT_TYPE.encode()), (b"content-length", str(len(raw)).encode())]
    head += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": raw})


def _client_ip(scope) -> str | None:
    client = scope.get("client")
    return client[0] if client else None


def _presented_credential(headers: Headers) -> str | None:
    raw = headers.get("x-api-key")
    if raw is not None:
        return raw.strip()
    scheme, _, value = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip()


def _authenticate(raw: str, ip: str | None, uri: str):
    close_old_connections()
    try:
        if raw.startswith(API_KEY_PREFIX):
            return api_key_authenticate(raw_key=raw, ip=ip)
        return oauth_token_authenticate(raw_token=raw, ip=ip, uri=uri)
    finally:
        close_old_connections()


def _spend_ip_budget(ip: str | None):
    close_old_connections()
    return ratelimit.hit_ip(ip) if settings.LEADBASE_RATE_LIMIT_ENABLED else None


class MCPHttpApp:
    """ASGI app for /mcp and /mcp/; its lifespan runs the SDK's session manager (task group)."""

    def __init__(self) -> None:
        self.server = build_server()
        self.manager = StreamableHTTPSessionManager(
            app=self.server,
            stateless=True,
            json_response=True,
            # Host is checked against ALLOWED_HOSTS below; every request also needs a credential that a
            # browser cannot attach cross-origin, so the SDK's DNS-rebinding allow-list is not needed.
            security_settings=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        )
        self._stack: contextlib.AsyncExitStack | None = None

    async def startup(self) -> None:
        self._stack = contextlib.AsyncExitStack()
        await self._stack.enter_async_context(self.manager.run())

    async def shutdown(self) -> None:
        if self._stack is not None:
            await self._stack.aclose()
            self._stack = None

    async def __call__(self, scope, receive, send) -> None:
        headers = Headers(scope=scope)
        domain, _port = split_domain_port(headers.get("host", ""))
        if not domain or not validate_host(domain, settings.ALLOWED_HOSTS):
            await _send_json(send, 400, problem_body("malformed_request", "Host not allowed."))
            return
        if self._stack is None:
            await _send_json(
                send,
                503,
                problem_body("service_unavailable", "The MCP transport is not running (ASGI lifespan is off)."),
            )
            return
        raw = _presented_credential(headers)
        ip = _client_ip(scope)
        actor = None
        if raw:
            uri = f"{scope.get('scheme', 'http')}://{headers.get('host', '')}{scope.get('path', '')}"
            actor = await sync_to_async(_authenticate, thread_sensitive=False)(raw, ip, uri)
        if actor is None:
            decision = await sync_to_async(_spend_ip_budget, thread_sensitive=False)(ip)
            if decision is not None and not decision.allowed:
                await _send_json(
                    send,
                    429,
                    problem_body(
                        "rate_limited", f"Too many requests from this address; retry in {decision.retry_after} s."
                    ),
                    {"Retry-After": str(decision.retry_after)},
                )
                return
            code = "invalid_credentials" if raw else "authentication_required"
            detail = (
                "The API key or token is invalid, revoked or expired."
                if raw
                else "Send an API key or OAuth access token in Authorization: Bearer <credential>."
            )
            await _send_json(send, 401, problem_body(code, detail), {"WWW-Authenticate": 'Bearer realm="mcp"'})
            return

        # The request was authenticated just now; tool calls inside it use this actor.
        def resolve(actor=actor):
            return actor

        scope = {**scope, ACTOR_SCOPE_KEY: resolve}
        token = current_credential.set(resolve)
        try:
            await self.manager.handle_request(scope, receive, send)
        finally:
            current_credential.reset(token)


def is_mcp_path(path: str) -> bool:
    return path in ("/mcp", "/mcp/")
