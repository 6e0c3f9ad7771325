"""API-key credentials cached per process and confirmed by Redis on every request (accounts/credentials.py),
and the database helpers of the hot path (core/backends/postgresql, core/db.py).

"Another process" is simulated by putting back the entry this process held before a change: exactly what
a second gunicorn worker, which saw none of the change, still holds.
"""

from __future__ import annotations

import logging
import time

import pytest
import redis
from django.conf import settings
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from accounts import credentials
from accounts.models import ApiKey, Membership, Role
from accounts.services import API_KEY_LOOKUP_LENGTH, api_key_revoke
from core import ratelimit
from leads.models import Lead

pytestmark = pytest.mark.redis

ME = "/api/v1/me"


def client_for(raw: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=raw)
    return client


def key_lookups(ctx) -> int:
    """Queries of the API-key lookup (the hand-written join in accounts/credentials.py)."""
    return sum('"accounts_apikey" k' in q["sql"] or '"accounts_apikey" "k"' in q["sql"] for q in ctx.captured_queries)


@pytest.fixture
def warm(make_key, account):
    """A key, its client, and the cache entry its first request left in this process."""
    raw = make_key(account, scopes=["leads:read", "leads:write", "admin"])
    client = client_for(raw)
    assert client.get(ME).status_code == 200
    prefix = raw[:API_KEY_LOOKUP_LENGTH]
    entry = credentials._cache[prefix]
    return raw, client, prefix, entry


def test_a_cached_key_is_served_with_no_query_of_its_own(make_key, account):
    client = client_for(make_key(account))
    with CaptureQueriesContext(connection) as first:
        assert client.get(ME).status_code == 200
    with CaptureQueriesContext(connection) as second:
        assert client.get(ME).status_code == 200
    assert key_lookups(first) == 1
    assert key_lookups(second) == 0


def test_a_key_revoked_through_the_service_is_refused_by_a_process_that_still_holds_it(warm, account):
    _raw, client, prefix, entry = warm
    key = ApiKey.objects.get(prefix=prefix)
    api_key_revoke(account=account, key_id=key.pk)
    credentials._cache[prefix] = entry  # another process's copy, loaded before the revocation
    response = client.get(ME)
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_credentials"
    assert prefix not in credentials._cache


def test_a_key_revoked_in_django_admin_is_refused_at_once(warm, admin_client):
    _raw, client, prefix, entry = warm
    key = ApiKey.objects.get(prefix=prefix)
    key.revoked_at = timezone.now()
    key.save()  # what the admin's change form does
    credentials._cache[prefix] = entry
    assert client.get(ME).status_code == 401


def test_a_role_change_reaches_a_process_that_still_holds_the_key(warm, account):
    _raw, client, prefix, entry = warm
    key = ApiKey.objects.get(prefix=prefix)
    membership = Membership.objects.get(account=account, user=key.created_by)
    membership.role = Role.MEMBER
    membership.save(update_fields=["role"])
    credentials._cache[prefix] = entry
    assert client.get(ME).json()["scopes"] == ["leads:read", "leads:write"]


def test_a_removed_member_s_key_is_refused(warm, account):
    _raw, client, prefix, entry = warm
    key = ApiKey.objects.get(prefix=prefix)
    Membership.objects.get(account=account, user=key.created_by).delete()
    credentials._cache[prefix] = entry
    assert client.get(ME).status_code == 401


def test_a_deactivated_user_s_key_is_refused(warm):
    _raw, client, prefix, entry = warm
    user = ApiKey.objects.get(prefix=prefix).created_by
    user.is_active = False
    user.save()
    credentials._cache[prefix] = entry
    assert client.get(ME).status_code == 401


def test_a_login_does_not_invalidate_the_user_s_keys(warm):
    _raw, client, prefix, _entry = warm
    user = ApiKey.objects.get(prefix=prefix).created_by
    user.last_login = timezone.now()
    user.save(update_fields=["last_login"])
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(ME).status_code == 200
    assert key_lookups(ctx) == 0


def test_a_new_budget_reaches_a_process_that_still_holds_the_key(warm, account):
    _raw, client, prefix, entry = warm
    account.rate_limit_override = 7
    account.save()
    credentials._cache[prefix] = entry
    assert client.get(ME)["X-RateLimit-Limit"] == "7"


def test_a_key_whose_epoch_vanished_from_redis_is_looked_up_again(warm):
    _raw, client, prefix, _entry = warm
    redis.Redis.from_url(settings.REDIS_URL).delete(credentials.epoch_key(prefix))  # Redis restarted empty
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(ME).status_code == 200
    assert key_lookups(ctx) == 1
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(ME).status_code == 200
    assert key_lookups(ctx) == 0  # cached again under the new epoch


def test_a_change_committed_while_the_row_is_read_leaves_what_was_read_stale(make_key, account, monkeypatch):
    raw = make_key(account)
    real_load = credentials.load

    def load_racing_a_revocation(p):
        row = real_load(p)  # the row as it was
        credentials.credentials_changed([p])  # a change commits before the entry is stored
        return row

    monkeypatch.setattr(credentials, "load", load_racing_a_revocation)
    client = client_for(raw)
    assert client.get(ME).status_code == 200  # this request read a consistent row
    monkeypatch.setattr(credentials, "load", real_load)
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(ME).status_code == 200
    assert key_lookups(ctx) == 1  # what was stored under the old epoch was not trusted


def test_an_edit_that_bypasses_the_models_holds_only_for_the_cache_lifetime(warm, settings):
    """A bare UPDATE (raw SQL, QuerySet.update) sends no signal: the documented bound is the cache's
    lifetime, after which the key is looked up again."""
    _raw, client, prefix, entry = warm
    ApiKey.objects.filter(prefix=prefix).update(revoked_at=timezone.now())
    assert client.get(ME).status_code == 200
    credentials._cache[prefix] = credentials.Entry(
        row=entry.row,
        key_hash=entry.key_hash,
        epoch=entry.epoch,
        loaded_at=time.monotonic() - settings.LEADBASE_CREDENTIAL_CACHE_SECONDS,
        templates=entry.templates,
    )
    assert client.get(ME).status_code == 401


def test_with_the_cache_turned_off_every_request_looks_the_key_up(make_key, account, settings):
    settings.LEADBASE_CREDENTIAL_CACHE_SECONDS = 0
    client = client_for(make_key(account))
    for _ in range(2):
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(ME).status_code == 200
        assert key_lookups(ctx) == 1
    assert credentials._cache == {}


def test_a_wrong_secret_with_a_cached_prefix_is_refused(warm):
    raw, client, _prefix, _entry = warm
    forged = raw[:-4] + ("AAAA" if not raw.endswith("AAAA") else "BBBB")
    assert client_for(forged).get(ME).status_code == 401
    assert client.get(ME).status_code == 200


def test_scripts_flushed_from_redis_are_loaded_again(warm, make_key, account):
    _raw, client, _prefix, _entry = warm
    redis.Redis.from_url(settings.REDIS_URL).script_flush()
    assert client.get(ME).status_code == 200  # cached key: check + usage + hit in one pipeline
    redis.Redis.from_url(settings.REDIS_URL).script_flush()
    assert client_for(make_key(account)).get(ME).status_code == 200  # new key: epoch read, then usage + hit


def test_while_redis_is_unreachable_a_cached_key_is_not_trusted(warm, settings, caplog):
    _raw, client, prefix, _entry = warm
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    ratelimit.reset_limiter()
    ApiKey.objects.filter(prefix=prefix).update(revoked_at=timezone.now())  # no way to tell other processes
    with caplog.at_level(logging.ERROR, logger="leadbase.ratelimit"):
        response = client.get(ME)
    assert response.status_code == 401
    assert "Redis unavailable" in caplog.text


def test_the_lead_read_by_hand_equals_the_orm_s(account, api):
    created = api.post(
        "/api/v1/leads",
        {"email": "cols@example.com", "tags": ["a"], "custom_fields": {"n": 1}, "first_name": "Ada"},
        format="json",
    )
    lead_id = created.json()["id"]
    from leads.selectors import lead_get

    by_hand = lead_get(account=account, lead_id=lead_id)
    orm = Lead.objects.get(pk=lead_id)
    for field in Lead._meta.concrete_fields:
        assert getattr(by_hand, field.attname) == getattr(orm, field.attname), field.name
    assert by_hand._state.adding is False and by_hand._state.db == "default"


# --- PostgreSQL: prepared statements and the health check --------------------------------------------------


@pytest.mark.postgres
def test_on_postgresql_the_hot_reads_run_as_prepared_statements(api, account):
    lead_id = api.post("/api/v1/leads", {"email": "prep@example.com"}, format="json").json()["id"]
    assert api.get(f"/api/v1/leads/{lead_id}").status_code == 200
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        prepared = [row[0] for row in cursor.fetchall()]
    assert any('FROM "leads_lead" "l"' in s for s in prepared), prepared
    assert any('"accounts_apikey" k' in s for s in prepared), prepared


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_on_postgresql_prepared_statements_can_be_turned_off(settings, account):
    settings.LEADBASE_DB_PREPARED_STATEMENTS = False
    connection.close()  # the setting is read when a connection opens
    from leads.selectors import _lead_by_id

    _lead_by_id(account.pk, Lead._meta.pk.to_python("00000000-0000-0000-0000-000000000000"))
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_prepared_statements")
        assert cursor.fetchone()[0] == 0
    connection.close()


@pytest.mark.postgres
def test_on_postgresql_only_a_connection_idle_past_the_delay_is_health_checked(db, monkeypatch, settings):
    settings.LEADBASE_DB_CHECK_DELAY_SECONDS = 10
    checks = []
    connection = connections["default"]
    monkeypatch.setattr(type(connection), "is_usable", lambda self: checks.append(1) or True)
    connection.ensure_connection()
    monkeypatch.setattr(connection, "health_check_enabled", True)

    connection.health_check_done = False  # as at the start of a request
    connection._used_at = time.monotonic()
    connection.close_if_health_check_failed()
    assert checks == [] and connection.health_check_done

    connection.health_check_done = False
    connection._used_at = time.monotonic() - 11
    connection.close_if_health_check_failed()
    assert checks == [1]

    settings.LEADBASE_DB_CHECK_DELAY_SECONDS = 0  # check every request, as Django does
    connection.health_check_done = False
    connection._used_at = time.monotonic()
    connection.close_if_health_check_failed()
    assert checks == [1, 1]


def test_each_request_gets_its_own_instances_of_a_cached_key(make_key, account):
    from accounts.services import api_key_admit

    raw = make_key(account, scopes=["leads:read", "leads:write"])
    first = api_key_admit(raw_key=raw, ip="192.0.2.1").actor  # from the database, then cached
    second = api_key_admit(raw_key=raw, ip="192.0.2.2").actor  # from the cache
    assert credentials._cache[raw[:API_KEY_LOOKUP_LENGTH]] is not None
    for a, b in [(first.api_key, second.api_key), (first.account, second.account), (first.user, second.user)]:
        assert a is not b
        assert {f.attname: getattr(a, f.attname) for f in a._meta.concrete_fields} == {
            f.attname: getattr(b, f.attname) for f in b._meta.concrete_fields
        }
        assert b._state.adding is False and b._state.db == "default"
    assert second.api_key.account is second.account and second.api_key.created_by is second.user
    # A request that changes its instances changes nothing for the next one.
    second.api_key.scopes.append("admin")
    second.account.name = "changed in memory"
    third = api_key_admit(raw_key=raw, ip="192.0.2.3").actor
    assert third.api_key.scopes == ["leads:read", "leads:write"]
    assert third.account.name == account.name
    assert third.scopes == frozenset({"leads:read", "leads:write"})


def test_a_membership_moved_to_another_user_invalidates_the_keys_of_the_user_it_left(warm, account):
    from .factories import UserFactory

    _raw, client, prefix, entry = warm
    membership = Membership.objects.get(account=account, user=ApiKey.objects.get(prefix=prefix).created_by)
    membership.user = UserFactory()
    membership.save()  # what Django admin's membership form allows
    credentials._cache[prefix] = entry
    assert client.get(ME).status_code == 401


def test_changes_are_published_by_a_process_that_caches_nothing_and_past_an_open_breaker(warm, account, settings):
    _raw, _client, prefix, _entry = warm
    r = redis.Redis.from_url(settings.REDIS_URL)
    before = r.get(credentials.epoch_key(prefix))
    settings.LEADBASE_CREDENTIAL_CACHE_SECONDS = 0  # this process (an admin, a worker) caches nothing
    ratelimit.get_limiter().breaker.failed(ConnectionError("an earlier timeout"))  # the breaker is open
    api_key_revoke(account=account, key_id=ApiKey.objects.get(prefix=prefix).pk)
    assert r.get(credentials.epoch_key(prefix)) not in (None, before)


def test_a_wrong_secret_for_a_cached_prefix_costs_no_query(warm):
    raw, _client, prefix, _entry = warm
    forged = raw[:-4] + ("AAAA" if not raw.endswith("AAAA") else "BBBB")
    with CaptureQueriesContext(connection) as ctx:
        assert client_for(forged).get(ME).status_code == 401
    assert key_lookups(ctx) == 0
    assert prefix in credentials._cache
