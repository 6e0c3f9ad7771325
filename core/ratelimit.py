"""The API request budget (§4.7): a sliding-window log per account (or per client IP).

Redis (production): one EVALSHA per request runs a Lua script that drops entries older than the
window, counts, and admits or refuses atomically, so the budget holds with any number of gunicorn
processes and hosts. The script takes the time from Redis itself unless a clock is injected (tests).

Embedded mode (no REDIS_URL): the same algorithm in process memory under a lock. It is exact for
one process only, which is what the embedded mode runs.

Redis unreachable: we serve and log (at most once a minute per process) and each
process falls back to its own in-memory window with the same budget, so an outage can neither take
the API down nor lift limits altogether; with N processes the effective budget is then up to
N x the plan's. After a failure Redis is retried every 5 seconds, not on every
request, so requests are not slowed by connection timeouts during the outage (core/redis_breaker.py).

Riders: other Redis commands of the same request (the API key's usage record and credential check,
accounts/credentials.py) travel in the same pipeline as the hit, so an API request costs one Redis
round trip in all. A rider gives one `command`, gets its reply in `settle`, or is told
`unavailable` when Redis could not be asked (it then falls back on its own).

`peek` reads a window without spending from it (the plan page shows the budget left that way): on
Redis one read-only script (ZCOUNT over the window and its oldest entry), in memory the same count.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import math
import os
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import hiredis
from django.conf import settings

from .redis_breaker import RedisBreaker

logger = logging.getLogger("leadbase.ratelimit")

# KEYS[1] = window key; ARGV = window_us, limit, member, now_us (or "" to use Redis TIME)
SLIDING_WINDOW_LUA = """
local now
if ARGV[4] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
else
  now = tonumber(ARGV[4])
end
local window = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
local allowed = 0
if count < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  count = count + 1
  allowed = 1
end
redis.call('PEXPIRE', KEYS[1], math.ceil(window / 1000))
local reset = 0
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if oldest[2] then
  reset = tonumber(oldest[2]) + window - now
end
return {allowed, count, reset}
"""

# The same window read without writing: nothing trimmed, added or expired. KEYS[1] = window key;
# ARGV = window_us, now_us (or "" to use Redis TIME). Returns {count, reset_us}. Entries at or before
# now - window are the ones the hit script would trim, so they are left out; times are whole
# microseconds, so "after now - window" is "from now - window + 1" (a number argument, which Redis
# passes on exactly, where a Lua string of it would be rounded to 14 digits).
PEEK_LUA = """
local now
if ARGV[2] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
else
  now = tonumber(ARGV[2])
end
local window = tonumber(ARGV[1])
local floor = now - window + 1
local count = redis.call('ZCOUNT', KEYS[1], floor, '+inf')
local reset = 0
local oldest = redis.call('ZRANGEBYSCORE', KEYS[1], floor, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
if oldest[2] then
  reset = tonumber(oldest[2]) + window - now
end
return {count, reset}
"""


# Lua scripts riders run (by sha), loaded again with the limiter's own after a NOSCRIPT.
RIDER_SCRIPTS: dict[str, str] = {}


def rider_script(lua: str) -> str:
    """Register a script for riders; returns its sha for `pipe.evalsha`."""
    sha = hashlib.sha1(lua.encode()).hexdigest()  # noqa: S324  (Redis names scripts by SHA-1)
    RIDER_SCRIPTS[sha] = lua
    return sha


class Rider(Protocol):
    """A Redis command that rides along with a budget hit, in the same round trip."""

    def command(self) -> tuple:
        """The command's arguments, e.g. ("EVALSHA", rider_script(LUA), 1, key, arg)."""

    def settle(self, reply) -> None:
        """The command's reply."""

    def unavailable(self) -> None:
        """Redis could not be asked (no Redis, an outage, an error): do without it."""


# Window entries must be unique across processes and hosts: a random token per process (drawn again in
# a forked child) and a counter, instead of a uuid4 and its getrandom() system call on every request.
_member_token = uuid.uuid4().hex[:16]
_member_counter = itertools.count()


_fork_generation = 0


def _draw_member_token() -> None:
    global _member_token, _fork_generation
    _member_token = uuid.uuid4().hex[:16]
    _fork_generation += 1


os.register_at_fork(after_in_child=_draw_member_token)


def window_member() -> str:
    return f"{_member_token}{next(_member_counter)}"


@dataclass(frozen=True)
class Decision:
    """One request's verdict and what the headers say about the budget."""

    allowed: bool
    limit: int
    remaining: int
    reset: int  # seconds until the oldest counted request leaves the window
    window: int  # seconds
    policy: str  # "account" or "ip"

    @property
    def retry_after(self) -> int:
        return max(1, self.reset)

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset),
            # IETF draft-ietf-httpapi-ratelimit-headers (structured fields).
            "RateLimit-Policy": f'"{self.policy}";q={self.limit};w={self.window}',
            "RateLimit": f'"{self.policy}";r={self.remaining};t={self.reset}',
        }


def _decision(allowed: bool, count: int, reset_us: int, limit: int, window: int, policy: str) -> Decision:
    return Decision(
        allowed=allowed,
        limit=limit,
        remaining=max(0, limit - count),
        reset=max(0, math.ceil(reset_us / 1_000_000)),
        window=window,
        policy=policy,
    )


class MemoryWindow:
    """The sliding-window log in process memory (embedded mode, and the Redis-outage fallback)."""

    def __init__(self, clock: Callable[[], int] | None = None):
        self._lock = threading.Lock()
        self._logs: dict[str, deque[int]] = {}
        self._clock = clock or (lambda: time.time_ns() // 1000)
        self._hits = 0

    def hit(self, key: str, limit: int, window: int, policy: str) -> Decision:
        window_us = window * 1_000_000
        with self._lock:
            now = self._clock()
            log = self._logs.setdefault(key, deque())
            while log and log[0] <= now - window_us:
                log.popleft()
            allowed = len(log) < limit
            if allowed:
                log.append(now)
            reset_us = (log[0] + window_us - now) if log else 0
            if not log:
                self._logs.pop(key, None)
            self._hits += 1
            if self._hits % 10_000 == 0:  # forget identities idle for a whole window
                for idle in [k for k, v in self._logs.items() if not v or v[-1] <= now - window_us]:
                    del self._logs[idle]
            return _decision(allowed, len(log), reset_us, limit, window, policy)

    def peek(self, key: str, limit: int, window: int, policy: str) -> Decision:
        """The budget as the next request would find it, without spending from it or trimming the log."""
        window_us = window * 1_000_000
        with self._lock:
            now = self._clock()
            log = self._logs.get(key, ())
            counted = [t for t in log if t > now - window_us]
            reset_us = (counted[0] + window_us - now) if counted else 0
            return _decision(len(counted) < limit, len(counted), reset_us, limit, window, policy)


# Idle Redis connections a window keeps between calls (a sync worker uses one; an ASGI worker one per
# request in flight).
MAX_IDLE_CONNECTIONS = 16


class RedisWindow:
    """The sliding-window log in a Redis sorted set, one EVALSHA per request.

    Hits (and their riders) go over connections this object keeps idle between calls, written and read
    directly: a command through redis-py's pool costs two getpid() and a readiness poll() per call on top
    of the round trip, which on the API's hottest path was a measurable share of a request. A call takes an
    idle connection (or opens one) and gives it back, so a thread never shares one with another, and the
    connections outlive threads: under ASGI Django runs each request's sync code in a thread of its own,
    and a connection per thread was a new Redis connection per request (757 for 749 requests). At most
    `MAX_IDLE_CONNECTIONS` stay open between bursts. The pool still serves everything else."""

    def __init__(self, url: str, clock: Callable[[], int] | None = None):
        import redis

        self._client = redis.Redis.from_url(
            url, socket_connect_timeout=0.25, socket_timeout=0.25, health_check_interval=30
        )
        self._script = self._client.register_script(SLIDING_WINDOW_LUA)
        self._peek = self._client.register_script(PEEK_LUA)
        self._clock = clock
        self._idle: list = []  # connections not in use; list.pop and list.append are atomic
        self._generation = _fork_generation

    def _now(self) -> str:
        return "" if self._clock is None else str(self._clock())

    def _connection(self):
        """An idle connection for this call alone, or a new one (never one opened before a fork: a socket is
        never shared with the parent). Give it back with `_release`."""
        if self._generation != _fork_generation:
            self._idle = []
            self._generation = _fork_generation
        try:
            return self._idle.pop()
        except IndexError:
            pool = self._client.connection_pool
            return pool.connection_class(**pool.connection_kwargs)

    def _release(self, connection) -> None:
        if self._generation == _fork_generation and len(self._idle) < MAX_IDLE_CONNECTIONS:
            self._idle.append(connection)
        else:  # a burst's surplus (or a connection from before a fork): not kept open
            connection.disconnect()

    def hit(self, key: str, limit: int, window: int, policy: str, riders: Sequence[Rider] = ()) -> Decision:
        args = (window * 1_000_000, limit, window_member(), self._now())
        replies = self.pipeline(riders, (self._script, (key,), args))
        allowed, count, reset_us = replies[-1]
        return _decision(bool(allowed), int(count), int(reset_us), limit, window, policy)

    def pipeline(self, riders: Sequence[Rider], *scripts: tuple) -> list:
        """Run the riders' commands and then `scripts` ((Script, keys, args), ...) in one round trip.
        Riders get their replies; the scripts' replies are returned. A command refused with NOSCRIPT
        (Redis restarted, SCRIPT FLUSH) did not run: its script is loaded and it alone runs again."""
        import redis

        commands = [rider.command() for rider in riders]
        commands += [("EVALSHA", script.sha, len(keys), *keys, *args) for script, keys, args in scripts]
        replies = self._send(commands)
        missing = [i for i, reply in enumerate(replies) if isinstance(reply, redis.exceptions.NoScriptError)]
        if missing:
            for script in {s for s, _, _ in scripts}:
                script.sha = self._client.script_load(script.script)
            for lua in RIDER_SCRIPTS.values():
                self._client.script_load(lua)
            for i, reply in zip(missing, self._send([commands[i] for i in missing]), strict=True):
                replies[i] = reply
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        for rider, reply in zip(riders, replies, strict=False):
            rider.settle(reply)
        return replies[len(riders) :]

    def _send(self, commands: list[tuple]) -> list:
        """Write every command, then read every reply (an error reply is returned, not raised, so the
        replies after it are still read). Any connection failure drops the connection and raises."""
        import redis

        connection = self._connection()
        try:
            # hiredis (a declared dependency) packs each command in C; redis-py's pack_commands adds a
            # chunking loop in Python around the same call.
            connection.send_packed_command([b"".join([hiredis.pack_command(command) for command in commands])])
            replies = []
            for _ in commands:
                try:
                    replies.append(connection.read_response())
                except redis.exceptions.ResponseError as exc:
                    replies.append(exc)
            return replies
        except BaseException:
            connection.disconnect()  # given back closed: the next call that takes it connects again
            raise
        finally:
            self._release(connection)

    def peek(self, key: str, limit: int, window: int, policy: str) -> Decision:
        """The budget as the next request would find it: one read-only script, nothing written."""
        count, reset_us = self._peek(keys=[key], args=[window * 1_000_000, self._now()])
        return _decision(int(count) < limit, int(count), int(reset_us), limit, window, policy)


class RateLimiter:
    """Front door used by the API and MCP: `hit(identity, limit)` spends, `peek(identity, limit)` only reads."""

    def __init__(self, *, redis_url: str | None, prefix: str, window: int, clock: Callable[[], int] | None = None):
        self.prefix = prefix
        self.window = window
        self.primary = RedisWindow(redis_url, clock) if redis_url else None
        self.fallback = MemoryWindow(clock)
        self.breaker = RedisBreaker(
            logger=logger, what="rate limiter", fallback="enforcing per-process fallback limits"
        )
        self._refused_until: dict[str, float] = {}

    def _decide(self, operation: str, identity: str, limit: int, policy: str, riders: Sequence[Rider] = ()) -> Decision:
        key = f"{self.prefix}:{identity}"
        if self.primary is not None and self.breaker.available():
            try:
                if riders:
                    decision = self.primary.hit(key, limit, self.window, policy, riders)
                else:
                    decision = getattr(self.primary, operation)(key, limit, self.window, policy)
            except Exception as exc:  # any Redis failure: serve, log, fall back
                self.breaker.failed(exc)
            else:
                self.breaker.succeeded()
                return decision
        for rider in riders:
            rider.unavailable()
        return getattr(self.fallback, operation)(key, limit, self.window, policy)

    def hit(self, identity: str, limit: int, policy: str, riders: Sequence[Rider] = ()) -> Decision:
        """Spend one request of `identity`'s budget, or refuse it when the window is full; `riders`
        travel in the same Redis round trip."""
        decision = self._decide("hit", identity, limit, policy, riders)
        refused = self._refused_until
        if not decision.allowed:
            if len(refused) >= 10_000:  # forget everyone rather than grow without bound
                refused.clear()
            refused[identity] = time.monotonic() + decision.retry_after
        elif refused:
            refused.pop(identity, None)
        return decision

    def refused_lately(self, identity: str) -> bool:
        """This process's last hit for `identity` was refused and its Retry-After has not passed: its next
        request will most likely be refused too (so no work is started ahead of the decision)."""
        until = self._refused_until.get(identity)
        return until is not None and time.monotonic() < until

    def ride(self, riders: Sequence[Rider], *, force: bool = False) -> None:
        """Run riders without a hit (the limiter is turned off): one round trip, or `unavailable`.
        `force` tries Redis even while the breaker is open (writes that must not be skipped)."""
        if self.primary is not None and (force or self.breaker.available()):
            try:
                self.primary.pipeline(riders)
            except Exception as exc:
                self.breaker.failed(exc)
            else:
                self.breaker.succeeded()
                return
        for rider in riders:
            rider.unavailable()

    def peek(self, identity: str, limit: int, policy: str) -> Decision:
        """What `identity`'s budget holds now, without spending from it (`allowed`: would a request pass)."""
        return self._decide("peek", identity, limit, policy)


_limiter: RateLimiter | None = None
_limiter_lock = threading.Lock()


def get_limiter() -> RateLimiter:
    global _limiter
    if _limiter is None:
        with _limiter_lock:
            if _limiter is None:
                _limiter = RateLimiter(
                    redis_url=settings.REDIS_URL or None,
                    prefix=settings.LEADBASE_RATE_LIMIT_PREFIX,
                    window=settings.LEADBASE_RATE_WINDOW_SECONDS,
                )
    return _limiter


def reset_limiter() -> None:
    """Forget the process-wide limiter (tests, or after changing settings)."""
    global _limiter
    _limiter = None


def hit_account(account, riders: Sequence[Rider] = ()) -> Decision:
    """Spend one request of the account's budget (every API and MCP request does)."""
    return get_limiter().hit(f"account:{account.pk}", account.request_budget, "account", riders)


def account_refused_lately(account) -> bool:
    return get_limiter().refused_lately(f"account:{account.pk}")


def peek_account(account) -> Decision:
    """The account's budget as its next request would find it, spending nothing (the plan page)."""
    return get_limiter().peek(f"account:{account.pk}", account.request_budget, "account")


def hit_ip(ip: str | None) -> Decision:
    return get_limiter().hit(f"ip:{ip or 'unknown'}", settings.LEADBASE_ANON_RATE_LIMIT, "ip")
