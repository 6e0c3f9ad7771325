"""A real HTTP receiver for webhook tests: a ThreadingHTTPServer on 127.0.0.1 (port 0) in a thread.

It records every request (method, path, headers, raw body) and answers from a programmable
sequence: `receiver.respond(500, 500, 200)`; once the sequence is used up it answers `default`.
An answer is a status code, or a `Reply` for a body, extra headers, a hang or a slow drip.
"""

from __future__ import annotations

import json
import re
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs" / "webhooks.md"


def documented_verify():
    """The `verify` function exactly as docs/webhooks.md shows it to receivers (its one python block)."""
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(), flags=re.DOTALL)
    assert len(blocks) == 1, "docs/webhooks.md should hold exactly one python example"
    namespace: dict = {}
    exec(compile(blocks[0], str(DOCS), "exec"), namespace)  # noqa: S102  (our own documentation)
    return namespace["verify"]


@dataclass
class Reply:
    status: int = 200
    body: bytes = b"ok"
    headers: dict[str, str] = field(default_factory=dict)
    hang: float = 0.0  # seconds to wait before answering (cut short when the receiver stops)
    drip: float = 0.0  # seconds between single bytes of a never-ending header (a slow-loris receiver)


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)

    @property
    def event(self) -> str:
        return self.headers["X-Leadbase-Event"]

    @property
    def delivery(self) -> str:
        return self.headers["X-Leadbase-Delivery"]

    @property
    def signature(self) -> str:
        return self.headers["X-Leadbase-Signature"]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        receiver = self.server.receiver
        reply = receiver.record(Received(self.command, self.path, dict(self.headers.items()), body))
        if reply.hang and receiver.stopping.wait(reply.hang):
            return
        try:
            if reply.drip:
                self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
                while not receiver.stopping.wait(reply.drip):
                    self.wfile.write(b"x")
                    self.wfile.flush()
                return
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)
        except OSError:  # the client gave up (timeout): nothing to answer
            pass

    do_GET = do_PUT = do_POST  # a followed redirect would show up as a second request

    def log_message(self, format, *args):  # quiet test output
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    receiver: Receiver


class Receiver:
    """`tls`: a server-side SSLContext, to answer https on `host` (a name the test makes resolve to
    127.0.0.1); without it, plain http on 127.0.0.1."""

    def __init__(
        self,
        path: str = "/hooks/leadbase",
        default: int | Reply = 200,
        tls: ssl.SSLContext | None = None,
        host: str = "127.0.0.1",
    ):
        self.path = path
        self.default = default
        self.scheme = "https" if tls else "http"
        self.host = host
        self.requests: list[Received] = []
        self._replies: list[int | Reply] = []
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self.stopping = threading.Event()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.receiver = self
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}{self.path}"

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def respond(self, *replies: int | Reply) -> None:
        """Answer the next requests with these, in order (then `default`)."""
        with self._lock:
            self._replies.extend(replies)

    def record(self, request: Received) -> Reply:
        with self._lock:
            self.requests.append(request)
            self._arrived.notify_all()
            reply = self._replies.pop(0) if self._replies else self.default
        return reply if isinstance(reply, Reply) else Reply(status=reply, body=f"status {reply}".encode())

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self.requests) < count and self._arrived.wait(max(0.0, deadline - time.monotonic())):
                pass
            return list(self.requests)

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
