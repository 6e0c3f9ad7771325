"""One webhook POST to an address we already checked: no redirects, bounded time and bytes."""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

SNIPPET_BYTES = 500


@dataclass
class PostResult:
    status: int | None
    duration_ms: int
    snippet: str
    error: str = ""


def _check_deadline(conn: http.client.HTTPConnection, sock: socket.socket) -> None:
    """The watchdog may fire while connecting, before there is a socket to shut: stop here then."""
    if getattr(conn, "deadline_passed", lambda: False)():
        sock.close()
        raise TimeoutError("the deadline passed while connecting")


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to a fixed IP while verifying the certificate (and SNI) for the URL's host name."""

    def __init__(self, host: str, ip: str, **kwargs):
        super().__init__(host, **kwargs)
        self._ip = ip

    def connect(self):
        sock = socket.create_connection((self._ip, self.port), self.timeout)
        _check_deadline(self, sock)
        # Handshake after `self.sock` is set, so the watchdog can cut a handshake that drips too.
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host, do_handshake_on_connect=False)
        _check_deadline(self, self.sock)
        self.sock.do_handshake()


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, host: str, ip: str, **kwargs):
        super().__init__(host, **kwargs)
        self._ip = ip

    def connect(self):
        self.sock = socket.create_connection((self._ip, self.port), self.timeout)
        _check_deadline(self, self.sock)


def post(url: str, ip: str, body: bytes, headers: dict[str, str], timeout: float) -> PostResult:
    """POST `body` to `url`, connecting to `ip`. Redirects are not followed (a 3xx is a failure)."""
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if parts.scheme == "https":
        conn: http.client.HTTPConnection = _PinnedHTTPSConnection(
            parts.hostname, ip, port=port, timeout=timeout, context=ssl.create_default_context()
        )
    else:
        conn = _PinnedHTTPConnection(parts.hostname, ip, port=port, timeout=timeout)
    started = time.perf_counter()
    # The socket timeout bounds each read, not the whole exchange: a receiver dripping one byte at
    # a time would hold the worker for hours. The watchdog shuts the socket at the deadline.
    expired = threading.Event()

    def cut_off() -> None:
        expired.set()
        sock = conn.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    watchdog = threading.Timer(timeout, cut_off)
    watchdog.daemon = True
    watchdog.start()
    conn.deadline_passed = expired.is_set
    try:
        conn.request("POST", path, body=body, headers={**headers, "Content-Length": str(len(body))})
        response = conn.getresponse()
        snippet = response.read(SNIPPET_BYTES).decode("utf-8", "replace")
        if expired.is_set():  # what was read before the cut-off is not an answer
            raise TimeoutError(f"no complete answer within {timeout:g} s")
        return PostResult(response.status, _ms_since(started), snippet)
    except (OSError, ValueError, http.client.HTTPException) as exc:  # ValueError: e.g. a non-ASCII path
        if expired.is_set() or isinstance(exc, TimeoutError):  # the watchdog's or one read's timeout
            exc = TimeoutError(f"no complete answer within {timeout:g} s")
        return PostResult(None, _ms_since(started), "", f"{type(exc).__name__}: {exc}"[:300])
    finally:
        watchdog.cancel()
        conn.close()


def _ms_since(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)
