"""The one Redis circuit breaker (core/redis_breaker.py) and its three users: the API limiter, the Django
cache and the API-key usage recorder. After a failure Redis is left alone for the retry interval, the
outage is logged once a minute, and the first success after it is logged once. Time is a fake
monotonic clock: nothing sleeps."""

from __future__ import annotations

import logging
import types

import pytest
import redis

from accounts import usage
from core import redis_breaker
from core.cache import ResilientRedisCache
from core.ratelimit import RateLimiter
from core.redis_breaker import FAILURE_LOG_INTERVAL, RETRY_AFTER_FAILURE, RedisBreaker

from .factories import AccountFactory

CLOSED_PORT_URL = "redis://127.0.0.1:1/0"


class FakeMonotonic:
    def __init__(self, start: float = 10_000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def monotonic(monkeypatch) -> FakeMonotonic:
    fake = FakeMonotonic()
    monkeypatch.setattr(redis_breaker, "time", types.SimpleNamespace(monotonic=fake))
    return fake


@pytest.fixture
def breaker() -> RedisBreaker:
    return RedisBreaker(logger=logging.getLogger("leadbase.test_breaker"), what="thing", fallback="doing without")


def records(caplog, level: int, name: str = "leadbase.test_breaker") -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == name and r.levelno == level]


# --- the breaker ----------------------------------------------------------------------------------


def test_a_new_breaker_lets_redis_be_tried(breaker, monotonic):
    assert breaker.available()


def test_after_a_failure_redis_is_left_alone_for_exactly_the_retry_interval(breaker, monotonic):
    breaker.failed(redis.ConnectionError("refused"))
    assert not breaker.available()
    monotonic.now += RETRY_AFTER_FAILURE - 0.01
    assert not breaker.available()
    monotonic.now += 0.01
    assert breaker.available()
    breaker.failed(redis.TimeoutError("slow"))  # the retry failed too: another full interval
    monotonic.now += RETRY_AFTER_FAILURE - 0.01
    assert not breaker.available()


def test_an_outage_is_logged_once_a_minute_with_the_error_class_and_the_fallback(breaker, monotonic, caplog):
    caplog.set_level(logging.INFO, logger="leadbase.test_breaker")
    for _ in range(12):  # a minute of failed retries, every 5 s
        breaker.failed(redis.ConnectionError("refused"))
        monotonic.now += RETRY_AFTER_FAILURE
    assert records(caplog, logging.ERROR) == ["thing: Redis unavailable (ConnectionError); doing without"]
    breaker.failed(redis.ConnectionError("refused"))
    assert len(records(caplog, logging.ERROR)) == 2, "a long outage is logged again after a log interval"


def test_the_first_success_after_an_outage_is_logged_once_and_successes_alone_log_nothing(breaker, monotonic, caplog):
    caplog.set_level(logging.INFO, logger="leadbase.test_breaker")
    breaker.succeeded()
    assert not caplog.records
    breaker.failed(redis.ConnectionError("refused"))
    monotonic.now += RETRY_AFTER_FAILURE
    for _ in range(3):
        breaker.succeeded()
    assert records(caplog, logging.WARNING) == ["thing: Redis available again"]
    assert breaker.available()


def test_a_failure_right_after_the_host_boots_is_still_logged(breaker, monkeypatch, caplog):
    # time.monotonic() counts from boot: a process started in the host's first minute sees small values.
    monkeypatch.setattr(redis_breaker, "time", types.SimpleNamespace(monotonic=FakeMonotonic(start=3.0)))
    caplog.set_level(logging.ERROR, logger="leadbase.test_breaker")
    breaker.failed(redis.ConnectionError("refused"))
    assert len(records(caplog, logging.ERROR)) == 1


def test_the_retry_and_log_intervals_can_be_set_per_breaker(monotonic, caplog):
    caplog.set_level(logging.ERROR, logger="leadbase.test_breaker")
    quick = RedisBreaker(
        logger=logging.getLogger("leadbase.test_breaker"), what="q", fallback="f", retry_after=1, log_interval=2
    )
    quick.failed(redis.ConnectionError())
    monotonic.now += 1
    assert quick.available()
    quick.failed(redis.ConnectionError())
    monotonic.now += 1
    quick.failed(redis.ConnectionError())
    assert len(records(caplog, logging.ERROR)) == 2


# --- its users ------------------------------------------------------------------------------------


class FlakyClient:
    """Stands in for the cache's Redis client: raises while `down`, else answers `value`; counts calls."""

    def __init__(self, value="from redis"):
        self.down = True
        self.calls = 0
        self.value = value

    def get(self, key, default=None):
        self.calls += 1
        if self.down:
            raise redis.ConnectionError("refused")
        return self.value


def test_the_cache_uses_its_memory_fallback_while_the_breaker_is_open_and_redis_again_after(monotonic, caplog):
    caplog.set_level(logging.INFO, logger="leadbase.cache")
    cache = ResilientRedisCache(CLOSED_PORT_URL, {})
    flaky = FlakyClient()
    cache.__dict__["_cache"] = flaky  # RedisCache builds its client lazily in this cached property
    cache._fallback.set("k", "from memory")
    assert [cache.get("k") for _ in range(20)] == ["from memory"] * 20
    assert flaky.calls == 1, "Redis is not retried on every call during an outage"
    flaky.down = False
    assert cache.get("k") == "from memory"  # still inside the retry interval
    monotonic.now += RETRY_AFTER_FAILURE
    assert cache.get("k") == "from redis"
    assert records(caplog, logging.ERROR, "leadbase.cache") == [
        "cache: Redis unavailable (ConnectionError); using a per-process memory cache"
    ]
    assert records(caplog, logging.WARNING, "leadbase.cache") == ["cache: Redis available again"]


@pytest.mark.django_db
def test_the_usage_recorder_writes_each_use_to_the_row_and_retries_redis_only_after_the_interval(
    settings, monotonic, make_key, caplog
):
    caplog.set_level(logging.ERROR, logger="leadbase.api_key_usage")
    settings.REDIS_URL = CLOSED_PORT_URL
    settings.LEADBASE_API_KEY_USAGE_FLUSH_SECONDS = 3600
    usage.reset_recorder()
    recorder = usage.get_recorder()
    attempts = []
    real_record = recorder._record
    recorder._record = lambda **kwargs: attempts.append(kwargs) or real_record(**kwargs)
    account = AccountFactory()
    row = usage.ApiKey.objects.get(prefix=make_key(account)[:11])
    try:
        for _ in range(4):
            usage.api_key_record_use(key=row, ip="198.51.100.4")
        assert len(attempts) == 1
        monotonic.now += RETRY_AFTER_FAILURE
        usage.api_key_record_use(key=row, ip="198.51.100.4")
        assert len(attempts) == 2
    finally:
        usage.reset_recorder()
    row.refresh_from_db()
    assert (row.request_count, row.last_used_ip) == (5, "198.51.100.4")
    assert len(records(caplog, logging.ERROR, "leadbase.api_key_usage")) == 1


def test_the_limiter_retries_redis_after_the_interval_for_hits_and_peeks_alike(monotonic):
    limiter = RateLimiter(redis_url=CLOSED_PORT_URL, prefix="lb:test:breaker", window=10)
    attempts = []
    real_hit, real_peek = limiter.primary.hit, limiter.primary.peek
    limiter.primary.hit = lambda *a: attempts.append("hit") or real_hit(*a)
    limiter.primary.peek = lambda *a: attempts.append("peek") or real_peek(*a)
    assert limiter.hit("account:1", 3, "account").remaining == 2
    assert limiter.peek("account:1", 3, "account").remaining == 2
    assert attempts == ["hit"]
    monotonic.now += RETRY_AFTER_FAILURE
    assert limiter.peek("account:1", 3, "account").remaining == 2
    assert attempts == ["hit", "peek"]


def test_the_log_interval_is_a_minute_and_the_retry_interval_five_seconds():
    # The README ("Rate limits") and docs/security.md promise these figures.
    assert (FAILURE_LOG_INTERVAL, RETRY_AFTER_FAILURE) == (60.0, 5.0)
