"""The API-key usage audit (§3): `last_used_at`, `last_used_ip` and `request_count` of each key.

Written exactly, one `UPDATE` per request was the largest single cost of an API call: a row lock
on the key (every request of a busy key queues behind the previous one's commit) and a commit that
waits for a WAL flush. With Redis (production) a request instead records its use in Redis with one
atomic script call (count + 1, time and address of this use, the key marked dirty), and the
periodic task `accounts.flush_api_key_usage` (Celery beat, every
`LEADBASE_API_KEY_USAGE_FLUSH_SECONDS`) writes each dirty key's row once with everything gathered:
`request_count + n`, and the time and address of the latest use.

So a key's row is written at most once per interval and is never more than about one interval
behind the truth; nothing is lost or counted twice (a flush takes and clears a key's pending uses
atomically), and a flush never moves `last_used_at` back in time (two flushes of one key may
commit out of order). Requests themselves never write the row, so the per-request cost is fixed
(one Redis round trip) and does not depend on when the previous flush ran.

Without Redis (embedded mode), with the interval set to 0, or while Redis is unreachable, each
request writes the row itself, as before: exact, and one UPDATE per request.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time

from django.conf import settings
from django.db.models import Case, DateTimeField, F, GenericIPAddressField, Q, Value, When

from core.redis_breaker import RedisBreaker

from .models import ApiKey

logger = logging.getLogger("leadbase.api_key_usage")
# Pending uses nobody flushes (no beat running) expire from Redis after this long.
PENDING_TTL_SECONDS = 7 * 24 * 3600

# KEYS[1] = the key's pending hash, KEYS[2] = the dirty set; ARGV = time of use (µs since the
# epoch), client address, pending TTL (s), the key's prefix. The latest use's time and address win.
RECORD_LUA = """
redis.call('HINCRBY', KEYS[1], 'n', 1)
local last = tonumber(redis.call('HGET', KEYS[1], 'at') or '0')
if tonumber(ARGV[1]) >= last then
  redis.call('HSET', KEYS[1], 'at', ARGV[1], 'ip', ARGV[2])
end
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('SADD', KEYS[2], ARGV[4])
redis.call('EXPIRE', KEYS[2], ARGV[3])
return 1
"""

# KEYS[1] = the key's pending hash, KEYS[2] = the dirty set; ARGV[1] = the key's prefix.
# Takes and clears the pending uses atomically: {n, at, ip} or an empty list.
TAKE_LUA = """
local pending = redis.call('HMGET', KEYS[1], 'n', 'at', 'ip')
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[1])
if not pending[1] then
  return {}
end
return pending
"""


def flush_seconds() -> int:
    return int(settings.LEADBASE_API_KEY_USAGE_FLUSH_SECONDS)


def batched() -> bool:
    """True when uses are gathered in Redis and written by the periodic flush, once per key and interval."""
    return bool(settings.REDIS_URL) and flush_seconds() > 0


def record_use_now(key: ApiKey, ip: str | None, *, count: int = 1, at: dt.datetime | None = None) -> None:
    """Write uses to the key's row: `count` more requests, the latest at `at` from `ip`. The time and
    address only move forward, so flushes committing out of order keep the latest use."""
    at = at or dt.datetime.now(dt.UTC)
    newer = Q(last_used_at__isnull=True) | Q(last_used_at__lte=at)
    ApiKey.objects.filter(pk=key.pk).update(
        request_count=F("request_count") + count,
        last_used_at=Case(When(newer, then=Value(at)), default=F("last_used_at"), output_field=DateTimeField()),
        last_used_ip=Case(When(newer, then=Value(ip)), default=F("last_used_ip"), output_field=GenericIPAddressField()),
    )


def usage_keys(prefix: str) -> tuple[str, str]:
    """Redis keys of one API key's pending uses and of the set of keys with pending uses."""
    ns = settings.LEADBASE_API_KEY_USAGE_PREFIX
    return f"{ns}:pending:{prefix}", f"{ns}:dirty"


class UsageRecorder:
    """Records uses in Redis and flushes them to PostgreSQL; falls back to direct writes on failure."""

    def __init__(self, url: str):
        import redis

        self._client = redis.Redis.from_url(
            url, socket_connect_timeout=0.25, socket_timeout=0.25, health_check_interval=30
        )
        self._record = self._client.register_script(RECORD_LUA)
        self._take = self._client.register_script(TAKE_LUA)
        self.breaker = RedisBreaker(logger=logger, what="API key usage", fallback="writing each use directly")

    def record(self, key: ApiKey, ip: str | None) -> None:
        import redis

        if self.breaker.available():
            pending, dirty = usage_keys(key.prefix)
            try:
                self._record(
                    keys=[pending, dirty], args=[time.time_ns() // 1000, ip or "", PENDING_TTL_SECONDS, key.prefix]
                )
            except redis.RedisError as exc:  # Redis down: count this use in the row itself
                self.breaker.failed(exc)
            else:
                self.breaker.succeeded()
                return
        record_use_now(key, ip)

    def flush(self, prefix: str) -> int:
        """Write one key's pending uses to its row; returns how many requests were written."""
        pending, dirty = usage_keys(prefix)
        taken = self._take(keys=[pending, dirty], args=[prefix])
        if not taken:
            return 0
        count, at_us, ip = int(taken[0]), int(taken[1] or 0), (taken[2] or b"").decode() or None
        key = ApiKey.objects.filter(prefix=prefix).only("pk").first()
        if key is None:  # deleted since: nothing left to account to
            return 0
        at = dt.datetime.fromtimestamp(at_us / 1_000_000, tz=dt.UTC) if at_us else None
        record_use_now(key, ip, count=count, at=at)
        return count

    def flush_all(self) -> int:
        """Write every key's pending uses (the periodic task); returns how many requests were written."""
        _, dirty = usage_keys("")
        written = 0
        for prefix in self._client.sscan_iter(dirty, count=500):
            written += self.flush(prefix.decode())
        return written


_recorder: UsageRecorder | None = None
_recorder_lock = threading.Lock()


def get_recorder() -> UsageRecorder:
    global _recorder
    if _recorder is None:
        with _recorder_lock:
            if _recorder is None:
                _recorder = UsageRecorder(settings.REDIS_URL)
    return _recorder


def reset_recorder() -> None:
    """Forget the process-wide recorder (tests, or after changing settings)."""
    global _recorder
    _recorder = None


def api_key_record_use(*, key: ApiKey, ip: str | None) -> None:
    """Account one request to the key: batched through Redis when available, else written now."""
    if batched():
        get_recorder().record(key, ip)
    else:
        record_use_now(key, ip)


def api_key_usage_flush() -> int:
    """Write every key's pending uses to the database (periodic task); returns the requests written."""
    if not settings.REDIS_URL:
        return 0
    return get_recorder().flush_all()
