"""The request budget's sliding window (§4.7): exact budgets, requests ageing out one by one, the
headers' arithmetic, the same behaviour in Redis and in memory, atomicity under concurrency, and
what happens when Redis is unreachable. Time is an injected clock (microseconds): nothing sleeps.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import types
import uuid
from collections import Counter

import pytest
import redis
from django.conf import settings
from django.db import connection
from rest_framework.test import APIClient

from core import ratelimit, redis_breaker
from core.ratelimit import Decision, MemoryWindow, RateLimiter, RedisWindow

from .factories import AccountFactory

CLOSED_PORT_URL = "redis://127.0.0.1:1/0"
TIMEOUT = 30


class FakeClock:
    """The limiter's clock, in microseconds; `at(seconds)` moves it to `seconds` after the start."""

    def __init__(self, start_seconds: int = 1_700_000_000):
        self.origin = start_seconds * 1_000_000
        self.now = self.origin

    def at(self, seconds: float) -> FakeClock:
        self.now = self.origin + round(seconds * 1_000_000)
        return self

    def __call__(self) -> int:
        return self.now


class FakeMonotonic:
    """Stands in for time.monotonic inside core.redis_breaker (the retry and log intervals)."""

    def __init__(self, start: float = 10_000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def key() -> str:
    return f"lb:test:unit:{uuid.uuid4().hex}"


@pytest.fixture
def redis_client():
    client = redis.Redis.from_url(settings.REDIS_URL)
    yield client
    client.close()


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def make_window(request, key):
    """make_window(clock=None) -> a MemoryWindow or a RedisWindow; each test runs with both."""

    def _make(clock=None):
        if request.param == "memory":
            return MemoryWindow(clock)
        return RedisWindow(settings.REDIS_URL, clock)

    yield _make
    if request.param == "redis":
        client = redis.Redis.from_url(settings.REDIS_URL)
        client.delete(key)
        client.close()


def hit(window, clock: FakeClock, key: str, at: float, limit: int = 3, seconds: int = 10) -> Decision:
    clock.at(at)
    return window.hit(key, limit, seconds, "account")


# --- the sliding window -------------------------------------------------------------------------


def test_a_full_window_refuses_and_its_requests_age_out_one_by_one_not_at_a_boundary(make_window, clock, key):
    window = make_window(clock)
    # Budget 3 per 10 s: t=0, 4 and 8 fill it.
    assert [hit(window, clock, key, t).allowed for t in (0, 4, 8)] == [True, True, True]
    assert not hit(window, clock, key, 9).allowed
    # Only the t=0 request has left the window: one more fits, a second does not.
    assert hit(window, clock, key, 10.000001).allowed
    assert not hit(window, clock, key, 10.000002).allowed
    assert not hit(window, clock, key, 12).allowed
    # The t=4 request leaves next, and again frees exactly one slot.
    assert hit(window, clock, key, 14.5).allowed
    assert not hit(window, clock, key, 14.6).allowed
    # Then t=8's; t=10.000001 and t=14.5 still count.
    assert hit(window, clock, key, 18.1).allowed
    assert not hit(window, clock, key, 18.2).allowed


def test_a_budget_admits_exactly_its_size_at_one_instant_and_remaining_counts_down_to_zero(make_window, clock, key):
    window = make_window(clock)
    decisions = [hit(window, clock, key, 0, limit=5) for _ in range(8)]
    assert [d.allowed for d in decisions] == [True] * 5 + [False] * 3
    assert [d.remaining for d in decisions] == [4, 3, 2, 1, 0, 0, 0, 0]
    assert {d.limit for d in decisions} == {5}


def test_reset_is_the_seconds_until_the_oldest_counted_request_leaves_the_window(make_window, clock, key):
    window = make_window(clock)
    assert hit(window, clock, key, 0).reset == 10
    assert hit(window, clock, key, 4).reset == 6  # the t=0 request leaves at t=10
    assert hit(window, clock, key, 8.5).reset == 2  # 1.5 s, rounded up: never tells a client to come back early
    refused = hit(window, clock, key, 9)
    assert (refused.allowed, refused.remaining, refused.reset) == (False, 0, 1)
    # Once t=0 ages out the oldest counted request is the one at t=4.
    assert hit(window, clock, key, 10.25).reset == 4


def test_a_client_that_waits_retry_after_seconds_is_admitted(make_window, clock, key):
    window = make_window(clock)
    for t in (0, 1, 2):
        hit(window, clock, key, t)
    refused = hit(window, clock, key, 3.3)
    assert not refused.allowed
    assert refused.retry_after == 7  # t=0 leaves at 10; 6.7 s rounds up
    assert hit(window, clock, key, 3.3 + refused.retry_after).allowed


def test_refused_requests_are_not_counted_and_do_not_push_the_window_back(make_window, clock, key):
    window = make_window(clock)
    for t in (0, 4, 8):
        hit(window, clock, key, t)
    for _ in range(50):
        assert not hit(window, clock, key, 9).allowed
    after = hit(window, clock, key, 10)
    assert after.allowed
    assert after.remaining == 0


def test_after_a_whole_window_of_silence_the_full_budget_is_back(make_window, clock, key):
    window = make_window(clock)
    for t in (0, 1, 2):
        hit(window, clock, key, t)
    fresh = hit(window, clock, key, 60)
    assert (fresh.allowed, fresh.remaining, fresh.reset) == (True, 2, 10)


def test_each_key_has_its_own_window(make_window, clock, key):
    window = make_window(clock)
    for _ in range(3):
        hit(window, clock, key, 0)
    assert not hit(window, clock, key, 0).allowed
    other = hit(window, clock, f"{key}:other", 0)
    assert (other.allowed, other.remaining) == (True, 2)


def test_a_raised_budget_applies_at_once_within_the_current_window(make_window, clock, key):
    window = make_window(clock)
    for _ in range(3):
        hit(window, clock, key, 0)
    assert not hit(window, clock, key, 1, limit=3).allowed
    upgraded = hit(window, clock, key, 1, limit=5)
    assert (upgraded.allowed, upgraded.remaining, upgraded.limit) == (True, 1, 5)


def test_a_lowered_budget_refuses_with_zero_remaining_never_a_negative_number(make_window, clock, key):
    window = make_window(clock)
    for _ in range(4):
        hit(window, clock, key, 0, limit=5)
    lowered = hit(window, clock, key, 1, limit=2)
    assert (lowered.allowed, lowered.remaining, lowered.limit) == (False, 0, 2)


def test_decisions_name_their_policy_and_window(make_window, clock, key):
    clock.at(0)
    decision = make_window(clock).hit(key, 7, 600, "ip")
    assert (decision.policy, decision.window, decision.limit, decision.reset) == ("ip", 600, 7, 600)


# --- peek: reading a window without spending from it ----------------------------------------------


def peek(window, clock: FakeClock, key: str, at: float, limit: int = 3, seconds: int = 10) -> Decision:
    clock.at(at)
    return window.peek(key, limit, seconds, "account")


def test_peeking_any_number_of_times_leaves_remaining_unchanged_and_a_real_hit_lowers_it_by_one(
    make_window, clock, key
):
    window = make_window(clock)
    hit(window, clock, key, 0, limit=5)
    peeks = [peek(window, clock, key, 1, limit=5) for _ in range(20)]
    assert {(d.allowed, d.remaining, d.reset) for d in peeks} == {(True, 4, 9)}
    assert hit(window, clock, key, 1, limit=5).remaining == 3
    assert peek(window, clock, key, 1, limit=5).remaining == 3


def test_a_peek_at_an_unused_window_shows_the_whole_budget_and_creates_nothing(make_window, clock, key):
    window = make_window(clock)
    fresh = peek(window, clock, key, 0, limit=7)
    assert (fresh.allowed, fresh.remaining, fresh.reset, fresh.limit, fresh.policy) == (True, 7, 0, 7, "account")
    # Peeking never used a slot: the whole budget is still there for real requests.
    assert [hit(window, clock, key, 0, limit=7).allowed for _ in range(8)] == [True] * 7 + [False]


def test_a_peek_reports_what_the_next_request_would_find_as_the_window_slides(make_window, clock, key):
    window = make_window(clock)
    for t in (0, 4, 8):
        hit(window, clock, key, t)
    full = peek(window, clock, key, 9)
    assert (full.allowed, full.remaining, full.reset, full.retry_after) == (False, 0, 1, 1)
    # t=0 has left at t=10 (exactly one window later, as the hit script counts it): one slot is free.
    assert (peek(window, clock, key, 10).allowed, peek(window, clock, key, 10).remaining) == (True, 1)
    after_four = peek(window, clock, key, 14.5)
    assert (after_four.remaining, after_four.reset) == (2, 4)  # t=8 leaves at 18: 3.5 s, rounded up
    assert peek(window, clock, key, 60).remaining == 3
    # The peeks trimmed nothing that a request would still count: a hit at t=9.5 sees the full window.
    assert not hit(window, clock, key, 9.5).allowed


def test_a_peek_agrees_with_the_hit_that_follows_it_for_any_traffic(make_window, clock, key):
    window = make_window(clock)
    rng = random.Random(11)
    t = 0.0
    for _ in range(200):
        t += rng.choice([0, 0.000001, 0.5, 1, 3, 9.999999, 10])
        limit = rng.choice([3, 3, 4])
        seen = peek(window, clock, key, t, limit=limit)
        spent = hit(window, clock, key, t, limit=limit)
        assert seen.allowed == spent.allowed, f"at t={t}"
        assert spent.remaining == (seen.remaining - 1 if seen.allowed else 0), f"at t={t}"
        # The oldest counted request is the same for both, unless the window was empty before the hit.
        assert spent.reset == (10 if seen.remaining == limit else seen.reset), f"at t={t}"


@pytest.mark.redis
def test_a_redis_peek_writes_nothing_not_even_the_expiry(clock, key, redis_client):
    window = RedisWindow(settings.REDIS_URL, clock)
    hit(window, clock, key, 0)
    hit(window, clock, key, 4)
    before = (redis_client.zrange(key, 0, -1, withscores=True), redis_client.pttl(key))
    for _ in range(5):
        assert peek(window, clock, key, 12).remaining == 2  # t=0 no longer counts ...
    after = (redis_client.zrange(key, 0, -1, withscores=True), redis_client.pttl(key))
    assert after[0] == before[0]  # ... but is still there: a peek trims nothing
    assert after[1] <= before[1]  # and the key's expiry was not pushed back
    assert not redis_client.exists(f"{key}:never-used") and peek(window, clock, f"{key}:never-used", 0).remaining == 3
    assert not redis_client.exists(f"{key}:never-used")
    redis_client.delete(key)


@pytest.mark.redis
def test_a_redis_peek_takes_the_time_from_redis_when_no_clock_is_injected(key, redis_client):
    window = RedisWindow(settings.REDIS_URL)
    window.hit(key, 3, 600, "account")
    seen = window.peek(key, 3, 600, "account")
    assert (seen.allowed, seen.remaining) == (True, 2)
    assert 599 <= seen.reset <= 600
    redis_client.delete(key)


@pytest.mark.redis
def test_redis_and_memory_peeks_give_identical_decisions_for_the_same_traffic(key):
    rng = random.Random(7)
    memory_clock, redis_clock = FakeClock(), FakeClock()
    memory, remote = MemoryWindow(memory_clock), RedisWindow(settings.REDIS_URL, redis_clock)
    t = 0.0
    try:
        for _ in range(200):
            t += rng.choice([0, 0.000001, 0.3, 1, 4, 9.999999, 10])
            if rng.random() < 0.6:
                hit(memory, memory_clock, key, t)
                hit(remote, redis_clock, key, t)
            assert peek(remote, redis_clock, key, t) == peek(memory, memory_clock, key, t), f"at t={t}"
    finally:
        redis.Redis.from_url(settings.REDIS_URL).delete(key)


def test_the_process_wide_limiter_peeks_an_account_budget_without_spending_it(db):
    ratelimit.reset_limiter()
    account = AccountFactory(plan="free")
    assert ratelimit.hit_account(account).remaining == 99
    assert [ratelimit.peek_account(account).remaining for _ in range(5)] == [99] * 5
    assert ratelimit.hit_account(account).remaining == 98
    assert ratelimit.peek_account(account).remaining == 98


# --- headers --------------------------------------------------------------------------------------


def test_headers_carry_the_x_ratelimit_fields_and_the_ietf_policy_and_ratelimit_fields():
    decision = Decision(allowed=True, limit=100, remaining=42, reset=17, window=600, policy="account")
    assert decision.headers() == {
        "X-RateLimit-Limit": "100",
        "X-RateLimit-Remaining": "42",
        "X-RateLimit-Reset": "17",
        "RateLimit-Policy": '"account";q=100;w=600',
        "RateLimit": '"account";r=42;t=17',
    }


def test_retry_after_is_at_least_one_second_even_when_reset_is_zero():
    refused = Decision(allowed=False, limit=0, remaining=0, reset=0, window=600, policy="ip")
    assert refused.retry_after == 1
    assert Decision(allowed=False, limit=5, remaining=0, reset=42, window=600, policy="ip").retry_after == 42


# --- memory and Redis are the same algorithm ------------------------------------------------------


@pytest.mark.redis
def test_redis_and_memory_windows_give_identical_decisions_for_the_same_traffic(key):
    rng = random.Random(4)
    memory_clock, redis_clock = FakeClock(), FakeClock()
    memory, remote = MemoryWindow(memory_clock), RedisWindow(settings.REDIS_URL, redis_clock)
    t = 0.0
    try:
        for _ in range(300):
            t += rng.choice([0, 0.000001, 0.3, 1, 2.5, 4, 9.999999, 10])
            limit = rng.choice([3, 3, 3, 5])
            expected = hit(memory, memory_clock, key, t, limit=limit)
            assert hit(remote, redis_clock, key, t, limit=limit) == expected, f"at t={t}"
    finally:
        redis.Redis.from_url(settings.REDIS_URL).delete(key)


@pytest.mark.redis
def test_redis_window_takes_the_time_from_redis_when_no_clock_is_injected(key, redis_client):
    window = RedisWindow(settings.REDIS_URL)
    decisions = [window.hit(key, 3, 600, "account") for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert decisions[0].reset == 600
    assert 599 <= decisions[-1].reset <= 600
    redis_client.delete(key)


@pytest.mark.redis
def test_redis_window_keys_expire_after_one_window_so_idle_identities_cost_no_memory(clock, key, redis_client):
    RedisWindow(settings.REDIS_URL, clock).hit(key, 3, 10, "account")
    assert 0 < redis_client.pttl(key) <= 10_000
    assert redis_client.zcard(key) == 1
    redis_client.delete(key)


def test_memory_window_forgets_identities_that_were_idle_for_a_whole_window(clock):
    window = MemoryWindow(clock)
    clock.at(0)
    for n in range(50):
        window.hit(f"ip:10.0.0.{n}", 3, 10, "ip")
    clock.at(11)
    for _ in range(10_000):
        window.hit("ip:10.0.1.1", 3, 10, "ip")
    assert set(window._logs) == {"ip:10.0.1.1"}


# --- concurrency ----------------------------------------------------------------------------------


def run_threads(count: int, target) -> None:
    failures: list[BaseException] = []

    def guarded(index: int) -> None:
        try:
            target(index)
        except BaseException as exc:  # reported by the test, not lost in the thread
            failures.append(exc)

    threads = [threading.Thread(target=guarded, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=TIMEOUT)
    assert not any(thread.is_alive() for thread in threads), "a thread hung"
    assert not failures, failures


@pytest.mark.parametrize("kind", ["memory", pytest.param("redis", marks=pytest.mark.redis)])
def test_two_hundred_hits_from_twenty_threads_on_a_budget_of_one_hundred_admit_exactly_one_hundred(kind, key):
    shared_memory = MemoryWindow()
    barrier = threading.Barrier(20)
    decisions: list[Decision] = []
    lock = threading.Lock()

    def worker(_index: int) -> None:
        # With Redis each thread has its own client, like separate gunicorn processes.
        window = RedisWindow(settings.REDIS_URL) if kind == "redis" else shared_memory
        barrier.wait(timeout=TIMEOUT)
        for _ in range(10):
            decision = window.hit(key, 100, 600, "account")
            with lock:
                decisions.append(decision)

    try:
        run_threads(20, worker)
    finally:
        if kind == "redis":
            redis.Redis.from_url(settings.REDIS_URL).delete(key)
    allowed = [d for d in decisions if d.allowed]
    assert len(decisions) == 200
    assert len(allowed) == 100
    # Every slot was handed out exactly once: no two requests saw the same count.
    assert sorted(d.remaining for d in allowed) == list(range(100))
    assert {d.remaining for d in decisions if not d.allowed} == {0}


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_two_hundred_api_requests_from_twenty_threads_get_exactly_one_hundred_200s_and_one_hundred_429s(make_key):
    account = AccountFactory(slug="busy", plan="free", rate_limit_override=100)
    raw_key = make_key(account, scopes=["leads:read"])
    barrier = threading.Barrier(20)
    responses: list[tuple[int, str, str | None]] = []
    lock = threading.Lock()

    def worker(_index: int) -> None:
        try:
            client = APIClient()
            client.credentials(HTTP_X_API_KEY=raw_key)
            barrier.wait(timeout=TIMEOUT)
            for _ in range(10):
                response = client.get("/api/v1/leads?limit=1")
                code = response.json().get("code") if response.status_code != 200 else None
                with lock:
                    responses.append((response.status_code, response["X-RateLimit-Remaining"], code))
        finally:
            connection.close()

    run_threads(20, worker)
    assert Counter(status for status, _, _ in responses) == {200: 100, 429: 100}
    assert sorted(int(remaining) for status, remaining, _ in responses if status == 200) == list(range(100))
    assert {(remaining, code) for status, remaining, code in responses if status == 429} == {("0", "rate_limited")}


# --- Redis unreachable: serve, log, fall back to a per-process window -----------------------------


@pytest.fixture
def monotonic(monkeypatch) -> FakeMonotonic:
    fake = FakeMonotonic()
    monkeypatch.setattr(redis_breaker, "time", types.SimpleNamespace(monotonic=fake))
    return fake


@pytest.fixture
def unreachable(clock) -> RateLimiter:
    """A limiter whose Redis is a closed port; it counts how often Redis was tried."""
    limiter = RateLimiter(redis_url=CLOSED_PORT_URL, prefix="lb:test:down", window=10, clock=clock)
    real_hit = limiter.primary.hit
    limiter.primary_attempts = 0

    def counting_hit(*args, **kwargs):
        limiter.primary_attempts += 1
        return real_hit(*args, **kwargs)

    limiter.primary.hit = counting_hit
    return limiter


def outage_records(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "leadbase.ratelimit" and r.levelno == logging.ERROR]


def test_with_redis_unreachable_requests_are_served_from_a_per_process_window_with_the_same_budget(
    unreachable, clock, monotonic
):
    decisions = []
    for t in (0, 1, 2, 3):
        clock.at(t)
        decisions.append(unreachable.hit("account:1", 3, "account"))
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert decisions[-1].headers()["RateLimit-Policy"] == '"account";q=3;w=10'
    # It is the same sliding window: the oldest request ages out and frees one slot.
    clock.at(10)
    assert unreachable.hit("account:1", 3, "account").allowed
    assert not unreachable.hit("account:1", 3, "account").allowed


def test_with_redis_unreachable_the_outage_is_logged_once_not_on_every_request(unreachable, clock, monotonic, caplog):
    caplog.set_level(logging.ERROR, logger="leadbase.ratelimit")
    for _ in range(30):
        monotonic.now += 1  # half a minute of traffic, retrying Redis every 5 s
        unreachable.hit("ip:10.0.0.1", 100, "ip")
    records = outage_records(caplog)
    assert len(records) == 1
    assert "Redis unavailable" in records[0].getMessage()
    monotonic.now += redis_breaker.FAILURE_LOG_INTERVAL
    unreachable.hit("ip:10.0.0.1", 100, "ip")
    assert len(outage_records(caplog)) == 2, "a long outage is logged again once a log interval has passed"


def test_a_redis_failure_right_after_the_host_boots_is_still_logged(unreachable, monkeypatch, caplog):
    caplog.set_level(logging.ERROR, logger="leadbase.ratelimit")
    # time.monotonic() counts from boot: a process started in the host's first minute sees small values.
    early = FakeMonotonic(start=3.0)
    monkeypatch.setattr(redis_breaker, "time", types.SimpleNamespace(monotonic=early))
    unreachable.hit("ip:10.0.0.1", 100, "ip")
    assert len(outage_records(caplog)) == 1


def test_with_redis_unreachable_redis_is_retried_only_every_retry_after_failure_seconds(unreachable, monotonic):
    unreachable.hit("account:1", 100, "account")
    assert unreachable.primary_attempts == 1
    for _ in range(50):
        unreachable.hit("account:1", 100, "account")
    assert unreachable.primary_attempts == 1
    monotonic.now += redis_breaker.RETRY_AFTER_FAILURE - 0.01
    unreachable.hit("account:1", 100, "account")
    assert unreachable.primary_attempts == 1
    monotonic.now += 0.01
    unreachable.hit("account:1", 100, "account")
    assert unreachable.primary_attempts == 2
    unreachable.hit("account:1", 100, "account")
    assert unreachable.primary_attempts == 2


def test_with_redis_unreachable_a_peek_reads_the_fallback_window_and_spends_nothing(unreachable, clock, monotonic):
    clock.at(0)
    unreachable.hit("account:1", 3, "account")
    assert [unreachable.peek("account:1", 3, "account").remaining for _ in range(5)] == [2] * 5
    assert unreachable.hit("account:1", 3, "account").remaining == 1
    # Peeks go through the same breaker: Redis was tried once, not on every call.
    assert unreachable.primary_attempts == 1


def test_a_closed_redis_port_fails_fast_instead_of_stalling_requests(clock):
    limiter = RateLimiter(redis_url=CLOSED_PORT_URL, prefix="lb:test:down", window=10, clock=clock)
    start = time.perf_counter()
    decision = limiter.hit("account:1", 5, "account")
    assert decision.allowed
    assert time.perf_counter() - start < 1.0


@pytest.mark.redis
def test_when_redis_comes_back_the_limiter_returns_to_it_after_the_retry_interval(clock, monotonic, redis_client):
    prefix = f"lb:test:{uuid.uuid4().hex}"
    limiter = RateLimiter(redis_url=settings.REDIS_URL, prefix=prefix, window=10, clock=clock)
    working_hit = limiter.primary.hit

    def broken_hit(*args, **kwargs):
        raise redis.ConnectionError("Redis is down")

    clock.at(0)
    limiter.primary.hit = broken_hit
    assert limiter.hit("account:9", 3, "account").remaining == 2  # from the fallback
    limiter.primary.hit = working_hit  # Redis is back ...
    assert limiter.hit("account:9", 3, "account").remaining == 1  # ... but not retried yet
    assert redis_client.zcard(f"{prefix}:account:9") == 0
    monotonic.now += redis_breaker.RETRY_AFTER_FAILURE
    assert limiter.hit("account:9", 3, "account").remaining == 2  # Redis's own count
    assert redis_client.zcard(f"{prefix}:account:9") == 1
    redis_client.delete(f"{prefix}:account:9")


# --- the process-wide limiter ---------------------------------------------------------------------


def test_unauthenticated_clients_without_an_address_share_one_budget(settings):
    settings.LEADBASE_ANON_RATE_LIMIT = 2
    ratelimit.reset_limiter()
    assert [ratelimit.hit_ip(None).allowed for _ in range(3)] == [True, True, False]
    assert ratelimit.hit_ip("10.0.0.7").allowed


def test_the_process_wide_limiter_uses_redis_exactly_when_redis_url_is_set(settings):
    ratelimit.reset_limiter()
    assert (ratelimit.get_limiter().primary is not None) == bool(settings.REDIS_URL)
    settings.REDIS_URL = ""
    ratelimit.reset_limiter()
    assert ratelimit.get_limiter().primary is None
    assert ratelimit.get_limiter().window == settings.LEADBASE_RATE_WINDOW_SECONDS


def _counting_connections(window: RedisWindow) -> list:
    """Every Redis connection the window opens from now on."""
    pool = window._client.connection_pool
    created: list = []

    class Counting(pool.connection_class):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            created.append(self)

    pool.connection_class = Counting
    return created


@pytest.mark.redis
def test_redis_connections_outlive_the_threads_that_used_them(key, redis_client):
    # Under ASGI Django runs each request's sync code in a new thread: a connection per thread was a new
    # Redis connection per request.
    window = RedisWindow(settings.REDIS_URL)
    created = _counting_connections(window)
    for _ in range(5):
        thread = threading.Thread(target=window.hit, args=(key, 100, 600, "account"))
        thread.start()
        thread.join()
    assert len(created) == 1
    assert redis_client.zcard(key) == 5  # every hit counted, over the one connection
    redis_client.delete(key)


@pytest.mark.redis
def test_calls_at_the_same_time_never_share_a_redis_connection(key, redis_client):
    window = RedisWindow(settings.REDIS_URL)
    created = _counting_connections(window)
    first, second = window._connection(), window._connection()  # two calls in flight
    assert first is not second and len(created) == 2
    window._release(first)
    window._release(second)
    gate = threading.Barrier(2)
    taken: list = []

    def call():
        connection = window._connection()
        taken.append(connection)
        gate.wait()  # both hold a connection at once
        window._release(connection)

    threads = [threading.Thread(target=call) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {id(c) for c in taken} == {id(first), id(second)}  # the idle ones, one each
    assert len(created) == 2  # and nothing new opened


@pytest.mark.redis
def test_a_connection_that_failed_is_given_back_closed_and_reconnects(key, redis_client):
    window = RedisWindow(settings.REDIS_URL)
    created = _counting_connections(window)
    window.hit(key, 100, 600, "account")
    (connection,) = created
    broken = connection._sock
    broken.close()  # the server went away under it
    with pytest.raises(redis.exceptions.ConnectionError):
        window.hit(key, 100, 600, "account")
    assert window._idle == [connection] and connection._sock is None  # back, disconnected
    assert window.hit(key, 100, 600, "account").remaining == 98  # connects again on its next use
    assert len(created) == 1
    redis_client.delete(key)


@pytest.mark.redis
def test_a_forked_child_never_uses_its_parents_redis_connections(key, redis_client, monkeypatch):
    window = RedisWindow(settings.REDIS_URL)
    created = _counting_connections(window)
    window.hit(key, 100, 600, "account")
    parents = list(window._idle)
    monkeypatch.setattr(ratelimit, "_fork_generation", ratelimit._fork_generation + 1)  # as after a fork
    window.hit(key, 100, 600, "account")
    assert len(created) == 2 and window._idle and window._idle[0] not in parents
    redis_client.delete(key)


@pytest.mark.redis
def test_a_burst_leaves_at_most_the_cap_of_idle_redis_connections_open(key, redis_client):
    window = RedisWindow(settings.REDIS_URL)
    created = _counting_connections(window)
    held = [window._connection() for _ in range(ratelimit.MAX_IDLE_CONNECTIONS + 3)]  # a burst of calls in flight
    for redis_connection in held:
        redis_connection.connect()
        window._release(redis_connection)
    assert len(created) == ratelimit.MAX_IDLE_CONNECTIONS + 3
    assert window._idle == held[: ratelimit.MAX_IDLE_CONNECTIONS]  # kept for the next calls
    assert all(c._sock is None for c in held[ratelimit.MAX_IDLE_CONNECTIONS :])  # the surplus closed
