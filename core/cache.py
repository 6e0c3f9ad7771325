"""The Django cache on Redis, kept available through a Redis outage (docs/security.md, "Fault injection").

The cache holds only short-lived counters (the login form's django-ratelimit windows). Django's
RedisCache raises on every call while Redis is unreachable, which turned each login into a 500.
This backend answers from a per-process memory cache instead, logs the outage (at most once a
minute per process) and tries Redis again every few seconds, through the breaker it shares with the
API limiter and the key usage recorder (core/redis_breaker.py): the same trade as the API limiter
(core/ratelimit.py), availability first, limits still enforced per process meanwhile.
"""

from __future__ import annotations

import functools
import logging

import redis
from django.core.cache.backends.locmem import LocMemCache
from django.core.cache.backends.redis import RedisCache

from .redis_breaker import RedisBreaker

logger = logging.getLogger("leadbase.cache")

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
        self.breaker = RedisBreaker(logger=logger, what="cache", fallback="using a per-process memory cache")


def _resilient(name: str):
    redis_method = getattr(RedisCache, name)
    fallback_method = getattr(LocMemCache, name)

    @functools.wraps(redis_method)
    def method(self, *args, **kwargs):
        if self.breaker.available():
            try:
                result = redis_method(self, *args, **kwargs)
            except redis.RedisError as exc:
                self.breaker.failed(exc)
            else:
                self.breaker.succeeded()
                return result
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
