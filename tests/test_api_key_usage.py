"""The API-key usage audit (§3): last_used_at, last_used_ip and request_count.

With Redis the uses are gathered there and the periodic flush task writes each key's row once per
interval, so requests never write it; without Redis, or with the interval set to 0, every request
writes the row. Either way the row ends up exact: nothing lost, nothing counted twice, and the
latest use wins.
"""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
import redis
from django.conf import settings as django_settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from accounts import usage
from accounts.models import ApiKey
from accounts.tasks import flush_api_key_usage

pytestmark = pytest.mark.django_db


def key_client(raw: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=raw)
    return client


def usage_updates(ctx: CaptureQueriesContext) -> int:
    return sum(1 for q in ctx.captured_queries if q["sql"].startswith('UPDATE "accounts_apikey"'))


@pytest.fixture
def batched(settings):
    """Batched mode on a real Redis, in a key space of this test's own, with an interval no test outlasts."""
    settings.LEADBASE_API_KEY_USAGE_FLUSH_SECONDS = 3600
    settings.LEADBASE_API_KEY_USAGE_PREFIX = f"lb:test-usage:{uuid.uuid4().hex}"
    usage.reset_recorder()
    yield redis.Redis.from_url(django_settings.REDIS_URL)
    usage.reset_recorder()


@pytest.fixture
def key(account, make_key):
    raw = make_key(account)
    return raw, ApiKey.objects.get(prefix=raw[:11])


def test_with_the_interval_at_zero_every_request_writes_the_row_exactly(settings, key):
    settings.LEADBASE_API_KEY_USAGE_FLUSH_SECONDS = 0
    raw, row = key
    client = key_client(raw)
    before = timezone.now()
    for ip in ("203.0.113.7", "198.51.100.9", "198.51.100.10"):
        with CaptureQueriesContext(connection) as ctx:
            assert client.get("/api/v1/me", REMOTE_ADDR=ip).status_code == 200
        assert usage_updates(ctx) == 1
    row.refresh_from_db()
    assert row.request_count == 3
    assert row.last_used_ip == "198.51.100.10"
    assert before <= row.last_used_at <= timezone.now()


@pytest.mark.redis
def test_batched_requests_never_write_the_row_and_the_flush_task_writes_it_once(batched, key):
    raw, row = key
    client = key_client(raw)
    with CaptureQueriesContext(connection) as ctx:
        for _ in range(5):
            assert client.get("/api/v1/me", REMOTE_ADDR="198.51.100.9").status_code == 200
    assert usage_updates(ctx) == 0
    row.refresh_from_db()
    assert (row.request_count, row.last_used_at) == (0, None)

    with CaptureQueriesContext(connection) as ctx:
        assert flush_api_key_usage() == 5
    assert usage_updates(ctx) == 1
    row.refresh_from_db()
    assert (row.request_count, row.last_used_ip) == (5, "198.51.100.9")


@pytest.mark.redis
def test_batched_the_flush_task_writes_the_pending_uses_with_the_latest_time_and_address(batched, key):
    raw, row = key
    client = key_client(raw)
    client.get("/api/v1/me", REMOTE_ADDR="203.0.113.7")
    flush_api_key_usage()
    first_written = ApiKey.objects.get(pk=row.pk).last_used_at
    before_last = timezone.now()
    for ip in ("198.51.100.1", "198.51.100.2", "198.51.100.3"):
        client.get("/api/v1/me", REMOTE_ADDR=ip)
    after_last = timezone.now()

    assert flush_api_key_usage() == 3
    row.refresh_from_db()
    assert row.request_count == 4
    assert row.last_used_ip == "198.51.100.3"
    assert before_last <= row.last_used_at <= after_last
    assert row.last_used_at > first_written
    # Taken once: a second flush finds nothing and changes nothing.
    assert flush_api_key_usage() == 0
    row.refresh_from_db()
    assert row.request_count == 4


@pytest.mark.redis
def test_batched_uses_after_a_flush_are_added_to_the_row_by_the_next_one(batched, key):
    raw, row = key
    client = key_client(raw)
    for _ in range(3):
        client.get("/api/v1/me", REMOTE_ADDR="203.0.113.7")
    flush_api_key_usage()
    client.get("/api/v1/me", REMOTE_ADDR="198.51.100.4")
    flush_api_key_usage()
    row.refresh_from_db()
    assert (row.request_count, row.last_used_ip) == (4, "198.51.100.4")


@pytest.mark.redis
def test_batched_uses_of_two_keys_are_kept_apart(batched, account, make_key):
    raws = [make_key(account), make_key(account)]
    clients = [key_client(raw) for raw in raws]
    for n, client in enumerate(clients, start=1):
        for _ in range(n * 3):
            client.get("/api/v1/me", REMOTE_ADDR=f"192.0.2.{n}")
    flush_api_key_usage()
    rows = [ApiKey.objects.get(prefix=raw[:11]) for raw in raws]
    assert [(r.request_count, r.last_used_ip) for r in rows] == [(3, "192.0.2.1"), (6, "192.0.2.2")]


@pytest.mark.redis
def test_a_rejected_request_records_no_use_in_batched_mode_either(batched, account, owner):
    from accounts.services import api_key_create, api_key_revoke

    row, raw = api_key_create(account=account, created_by=owner, name="ci", scopes=["leads:read"])
    api_key_revoke(account=account, key_id=row.pk, user=owner)
    assert key_client(raw).get("/api/v1/leads").status_code == 401
    flush_api_key_usage()
    row.refresh_from_db()
    assert (row.request_count, row.last_used_at) == (0, None)


@pytest.mark.redis
def test_with_redis_unreachable_each_request_writes_the_row_itself(batched, settings, key):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    usage.reset_recorder()
    raw, row = key
    client = key_client(raw)
    for _ in range(3):
        assert client.get("/api/v1/me", REMOTE_ADDR="203.0.113.9").status_code == 200
    row.refresh_from_db()
    assert (row.request_count, row.last_used_ip) == (3, "203.0.113.9")


def test_an_older_use_written_late_never_moves_last_used_back(key):
    _, row = key
    newer = timezone.now()
    usage.record_use_now(row, "198.51.100.1", count=2, at=newer)
    usage.record_use_now(row, "203.0.113.1", count=3, at=newer - dt.timedelta(seconds=5))
    row.refresh_from_db()
    assert (row.request_count, row.last_used_ip, row.last_used_at) == (5, "198.51.100.1", newer)
