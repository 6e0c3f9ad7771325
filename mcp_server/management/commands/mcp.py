"""`python manage.py mcp`: the MCP server over stdio, acting with the API key in LEADBASE_API_KEY."""

from __future__ import annotations

import os

import anyio
from django.core.management.base import BaseCommand, CommandError
from django.db import close_old_connections
from mcp.server.stdio import stdio_server

from accounts.services import api_key_authenticate
from mcp_server.server import build_server, current_credential

ENV_VAR = "LEADBASE_API_KEY"


class Command(BaseCommand):
    help = "Serve the MCP server on stdin/stdout (for Claude Desktop and other local MCP clients)."

    def handle(self, *args, **options):
        raw_key = os.environ.get(ENV_VAR, "").strip()
        if not raw_key:
            raise CommandError(f"{ENV_VAR} is not set: create a key (manage.py create_api_key) and export it.")
        actor = api_key_authenticate(raw_key=raw_key, ip=None)
        close_old_connections()
        if actor is None:
            raise CommandError(f"{ENV_VAR} is not a valid API key (unknown, revoked or expired).")
        # Every call re-checks the key, so revoking it stops a running server at its next call.
        current_credential.set(lambda: api_key_authenticate(raw_key=raw_key, ip=None))
        self.stderr.write(
            f"Leadbase MCP server on stdio for account {actor.account.slug!r} "
            f"(scopes: {', '.join(sorted(actor.scopes))})"
        )
        anyio.run(self._serve)

    async def _serve(self) -> None:
        server = build_server()
        async with stdio_server() as (read_stream, write_stream):
            await server.run(read_stream, write_stream, server.create_initialization_options())
