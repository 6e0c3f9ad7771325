"""ASGI entry point: Django for everything, the MCP streamable HTTP transport at /mcp/.

Run with `gunicorn config.asgi -k uvicorn.workers.UvicornWorker` (or `uvicorn config.asgi:application`).
The MCP transport needs the ASGI lifespan (uvicorn sends it by default) to start its task group;
Django itself does not take part in the lifespan.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# Django runs every request's sync code (views, the ORM) in a thread of its own under ASGI: without a pool
# each request would open a PostgreSQL session (settings.py, DATABASE_POOL). DATABASE_POOL=false opts out.
os.environ.setdefault("DATABASE_POOL", "true")

django_application = get_asgi_application()

from core.startup import warm_and_freeze  # noqa: E402
from mcp_server.http import MCPHttpApp, is_mcp_path  # noqa: E402  (needs Django set up first)

mcp_application = MCPHttpApp()
warm_and_freeze()


async def application(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await mcp_application.startup()
                except Exception as exc:  # report it, as the lifespan protocol asks
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await mcp_application.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] == "http" and is_mcp_path(scope.get("path", "")):
        await mcp_application(scope, receive, send)
        return
    await django_application(scope, receive, send)
