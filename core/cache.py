"""The Django cache on Redis, kept available through a Redis outage (docs/security.md, "Fault injection").

The cache holds only short-lived counters (the login form's django-ratelimit windows). Django's
RedisCache raises on every call while Redis is unreachable, which turned each login into a 500.
This backend answers from a per-process memory cache instead, logs the outage (at most once a
minute per process) and tries Redis again every few seconds: the same trade as the API limiter
(core/ratelimit.py), availability first, limits still enforced per process meanwhile.
"""

from __future__ import annotations

import functools
import logging
import math
import time

import redis
from django.core.cache.backends.locmem import LocMemCache
from django.core.cache.backends.redis import RedisCache

logger = logging.getLogger("leadbase.cache")

FAILURE_LOG_INTERVAL = 60.0
RETRY_AFTER_FAILURE = 5.0
# Fail fast: a hung Redis must not hold a login request for long.
DEFAULT_SOCKET_TIMEOUT = 0.5


class ResilientRedisCache(RedisCache):
    """RedisCache that falls back to a per-process LocMemCache while Redis is unreachable."""

    def __init__(self, server, params):
        options = dict(params.get("OPTIONS") or {})
        options.setdefault("socket_connect_timeout", DEFAULT_SOCKET_TIMEOUT)
        options.setdefault("socket_timeout", DEFAULT_SOCKET_TIMEOUT)
        super().__init__(server, {**params, "OPTIONS": options})
        self._fallback = LocMemCache(f"resilient-fallback-{id(self)}", {"TIMEOUT": params.get("TIMEOUT", 300)})
        self._down_until = 0.0
        self._last_log = -math.inf  # time.monotonic() counts from boot: 0.0 could hide the first failure

    def _failed(self, exc: Exception) -> None:
        now = time.monotonic()
        self._down_until = now + RETRY_AFTER_FAILURE
        if now - self._last_log >= FAILURE_LOG_INTERVAL:
            self._last_log = now
            logger.error("cache: Redis unavailable (%s); using a per-process memory cache", type(exc).__name__)


def _resilient(name: str):
    redis_method = getattr(RedisCache, name)
    fallback_method = getattr(LocMemCache, name)

    @functools.wraps(redis_method)
    def method(self, *args, **kwargs):
        if time.monotonic() >= self._down_until:
            try:
                return redis_method(self, *args, **kwargs)
            except redis.RedisError as exc:
                self._failed(exc)
        return fallback_method(self._fallback, *args, **kwargs)

    return method


for _name in (
    "add",
    "get",
    "set",
    "touch",
    "delete",
    "get_many",
    "has_key",
    "incr",
    "set_many",
    "delete_many",
    "clear",
):
    setattr(ResilientRedisCache, _name, _resilient(_name))
