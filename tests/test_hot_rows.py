"""The hottest reads through libpq directly (core/backends/postgresql `hot_row`): same rows, same errors,
logged like any query, and robust to what can happen to a prepared statement or a connection."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from django.db import DatabaseError, ProgrammingError, close_old_connections, connection, connections, transaction
from django.test.utils import CaptureQueriesContext

from core.backends.postgresql.base import numbered_placeholders, statement_name
from core.db import hot_row
from leads.models import Lead
from leads.selectors import LEAD

from .test_fault_injection import terminate_our_backend

pytestmark = pytest.mark.postgres

LEAD_BY_ID = f'SELECT {LEAD.select(connection)} FROM "leads_lead" "l" WHERE "l"."account_id" = %s AND "l"."id" = %s'  # noqa: S608


@pytest.fixture
def lead(api, account):
    body = {
        "email": "hot@example.com",
        "first_name": "Hot",
        "tags": ["a", "b"],
        "custom_fields": {"plan": "pro", "seats": 12, "trial": True},
    }
    created = api.post("/api/v1/leads", body, format="json")
    assert created.status_code == 201, created.content
    return Lead.objects.get(pk=created.json()["id"])


def cursor_row(sql, params):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


def prepared_names() -> list[str]:
    return [r[0] for r in cursor_row_all("SELECT name FROM pg_prepared_statements WHERE name LIKE 'lb_hot_%%'")]


def cursor_row_all(sql):
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchall()


def test_placeholders_are_numbered_in_order_and_a_literal_percent_is_refused():
    assert numbered_placeholders("SELECT a FROM t WHERE b = %s AND c = %s") == "SELECT a FROM t WHERE b = $1 AND c = $2"
    assert numbered_placeholders("SELECT 1") == "SELECT 1"
    with pytest.raises(ValueError, match="%s placeholders"):
        numbered_placeholders("SELECT a FROM t WHERE b LIKE 'x%%' AND c = %s")


def test_a_row_equals_the_one_a_cursor_reads_value_for_value_and_type_for_type(lead, account):
    params = [account.pk, lead.pk]
    hot = hot_row(connection, LEAD_BY_ID, params)
    plain = cursor_row(LEAD_BY_ID, params)
    assert hot == plain
    assert [type(v) for v in hot] == [type(v) for v in plain]
    assert any(isinstance(v, uuid.UUID) for v in hot) and any(v is None for v in hot)
    created_at = hot[[f.attname for f in LEAD.fields].index("created_at")]
    assert created_at.utcoffset().total_seconds() == 0


def test_no_row_is_none_and_another_account_s_id_finds_nothing(lead, account, other_account):
    assert hot_row(connection, LEAD_BY_ID, [account.pk, uuid.uuid4()]) is None
    assert hot_row(connection, LEAD_BY_ID, [other_account.pk, lead.pk]) is None


def test_parameters_of_every_kind_including_null_reach_the_server_as_given(db):
    sql = "SELECT %s::bigint, %s::text, %s::uuid, %s::text, %s::jsonb"
    some = uuid.uuid4()
    params = [2**62, 'Zoë\'s "café" %', some, None, '{"a": [1, 2]}']
    row = hot_row(connection, sql, params)
    assert row[:4] == (2**62, 'Zoë\'s "café" %', some, None)
    assert row == cursor_row(sql, params)  # jsonb as text, as Django's loaders give it (JSONField parses)


def test_the_statement_is_prepared_once_per_connection_and_each_call_is_logged(lead, account):
    params = [account.pk, lead.pk]
    with CaptureQueriesContext(connection) as queries:
        for _ in range(3):
            assert hot_row(connection, LEAD_BY_ID, params) is not None
    assert prepared_names().count(statement_name(LEAD_BY_ID)) == 1
    assert len(queries) == 3
    # Logged as Django logs a query: with its parameters in place, and its time.
    assert all(q["sql"].endswith(f'"l"."id" = \'{lead.pk.hex}\'::uuid') for q in queries), queries[0]["sql"][-90:]
    assert all(f'"account_id" = {account.pk} ' in q["sql"] and float(q["time"]) >= 0 for q in queries)


@pytest.mark.django_db(transaction=True)
def test_a_statement_deallocated_behind_its_back_is_prepared_again(lead, account):
    params = [account.pk, lead.pk]
    assert hot_row(connection, LEAD_BY_ID, params) is not None
    with connection.cursor() as cursor:
        cursor.execute("DEALLOCATE ALL")
    assert prepared_names() == []
    assert hot_row(connection, LEAD_BY_ID, params)[0] == lead.pk
    assert prepared_names() == [statement_name(LEAD_BY_ID)]


def test_inside_a_transaction_a_deallocated_statement_fails_that_transaction_only(lead, account):
    params = [account.pk, lead.pk]
    assert hot_row(connection, LEAD_BY_ID, params) is not None
    assert hot_row(connection, "SELECT %s::int", [6]) == (6,)
    with pytest.raises(ProgrammingError, match="does not exist"), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("DEALLOCATE ALL")
        hot_row(connection, LEAD_BY_ID, params)
    # The atomic block rolled back to its savepoint; the next call (still in the test's transaction) prepares
    # the statement again, and so does every other hot statement the DEALLOCATE took with it.
    assert hot_row(connection, LEAD_BY_ID, params)[0] == lead.pk
    assert hot_row(connection, "SELECT %s::int", [7]) == (7,)


@pytest.mark.django_db(transaction=True)
def test_psycopg_prepares_nothing_so_a_rollback_deallocates_nothing(lead, account):
    """psycopg sends DEALLOCATE ALL when a connection on which it prepared a statement rolls back. Its
    preparing is off (even a cursor asking for it gets none), so ours survive, in a transaction too."""
    params = [account.pk, lead.pk]
    assert hot_row(connection, LEAD_BY_ID, params) is not None
    with pytest.raises(RuntimeError), transaction.atomic():
        server_binding = psycopg.Cursor(connection.connection)
        server_binding.execute("UPDATE leads_lead SET city = %s WHERE id = %s", ["A", lead.pk], prepare=True)
        raise RuntimeError("roll back")
    with transaction.atomic():
        with transaction.atomic():  # a savepoint rolled back: ROLLBACK TO SAVEPOINT
            transaction.set_rollback(True)
        assert hot_row(connection, LEAD_BY_ID, params)[0] == lead.pk
    assert statement_name(LEAD_BY_ID) in prepared_names()
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_prepared_statements WHERE name NOT LIKE 'lb_hot_%%'")
        assert cursor.fetchone() == (0,)


def test_an_sql_error_is_django_s_and_leaves_the_connection_usable(db):
    with pytest.raises(ProgrammingError, match="no_such_table"), transaction.atomic():
        hot_row(connection, "SELECT x FROM no_such_table WHERE id = %s", [1])
    assert hot_row(connection, "SELECT %s::int + 1", [1]) == (2,)


def test_after_an_error_in_an_atomic_block_it_refuses_like_the_orm(db):
    with transaction.atomic():
        with pytest.raises(DatabaseError), transaction.atomic(savepoint=False):
            cursor_row("SELECT 1/0", [])
        from django.db.transaction import TransactionManagementError

        with pytest.raises(TransactionManagementError):
            hot_row(connection, "SELECT %s::int", [1])


@pytest.mark.django_db(transaction=True)
def test_a_connection_killed_under_it_raises_django_s_operational_error_and_is_replaced(lead, account):
    from django.db import OperationalError

    params = [account.pk, lead.pk]
    assert hot_row(connection, LEAD_BY_ID, params) is not None
    pid = connection.connection.info.backend_pid
    terminate_our_backend()
    with pytest.raises(OperationalError):
        hot_row(connection, LEAD_BY_ID, params)
    assert connection.errors_occurred
    connection.close_if_unusable_or_obsolete()  # what the end of the request does
    assert hot_row(connection, LEAD_BY_ID, params)[0] == lead.pk
    assert connection.connection.info.backend_pid != pid


def test_an_execute_wrapper_sees_the_query(lead, account):
    seen = []

    def wrapper(execute, sql, params, many, context):
        seen.append((sql, list(params)))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(wrapper):
        row = hot_row(connection, LEAD_BY_ID, [account.pk, lead.pk])
    assert row[0] == lead.pk
    assert seen == [(LEAD_BY_ID, [account.pk, lead.pk])]


def test_the_api_reads_a_lead_through_it(api, lead, monkeypatch):
    calls = []
    cls = type(connections["default"])
    for name in ("hot_row", "send_hot_row"):
        real = getattr(cls, name)
        monkeypatch.setattr(
            cls, name, lambda self, sql, params, _real=real: calls.append(sql) or _real(self, sql, params)
        )
    response = api.get(f"/api/v1/leads/{lead.pk}")
    assert response.status_code == 200
    assert response.json()["custom_fields"] == {"plan": "pro", "seats": 12, "trial": True}
    assert any('FROM "leads_lead" "l"' in sql for sql in calls)


# --- GET /leads/{id}: the read sent ahead, during the API key's Redis round trip -----------------------


@pytest.fixture
def order(monkeypatch):
    """What happened, in order: the lead's read sent, the Redis round trip, the read collected."""
    from core.backends.postgresql.base import DatabaseWrapper, PendingRow
    from core.ratelimit import RedisWindow

    seen: list[str] = []
    for cls, name, label in [
        (DatabaseWrapper, "send_hot_row", "sent"),
        (RedisWindow, "_send", "redis"),
        (PendingRow, "row", "collected"),
        (DatabaseWrapper, "_settle_pending", None),
    ]:
        real = getattr(cls, name)

        def spy(self, *args, _real=real, _label=label, **kwargs):
            if _label is None:  # settled (dropped) only if something was pending
                if self._pending is not None:
                    seen.append("dropped")
            else:
                seen.append(_label)
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(cls, name, spy)
    return seen


def warm_client(api, lead):
    """The key looked up once (and cached): the next requests take the read-ahead path."""
    assert api.get(f"/api/v1/leads/{lead.pk}").status_code == 200


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_the_lead_is_read_during_the_key_s_redis_round_trip_in_one_query(api, lead, order):
    expected = api.get(f"/api/v1/leads/{lead.pk}").json()  # looked up from the database, now cached
    order.clear()
    with CaptureQueriesContext(connection) as queries:
        response = api.get(f"/api/v1/leads/{lead.pk}")
    assert response.status_code == 200
    assert response.json() == expected and response["ETag"]
    assert order == ["sent", "redis", "collected"]
    assert len(queries) == 1 and '"l"."id" = ' in queries[0]["sql"]
    assert connections["default"]._pending is None


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_a_conditional_read_ahead_still_answers_304(api, lead, order):
    etag = api.get(f"/api/v1/leads/{lead.pk}")["ETag"]
    order.clear()
    response = api.get(f"/api/v1/leads/{lead.pk}", HTTP_IF_NONE_MATCH=etag)
    assert response.status_code == 304 and order == ["sent", "redis", "collected"]


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_a_refused_request_drops_the_read_and_leaves_the_connection_clean(account, api, lead, order):
    account.rate_limit_override = 3
    account.save()
    warm_client(api, lead)  # spends 2 of 3 (creating the lead spent 1)
    assert api.get(f"/api/v1/leads/{lead.pk}").status_code == 200  # 3 of 3
    order.clear()
    with CaptureQueriesContext(connection) as queries:
        refused = api.get(f"/api/v1/leads/{lead.pk}")
    assert refused.status_code == 429 and refused.json()["code"] == "rate_limited"
    assert lead.email not in refused.content.decode()
    assert order == ["sent", "redis", "dropped"]
    assert len(queries) == 1  # the read ran, and was thrown away unread
    assert connections["default"]._pending is None
    assert Lead.objects.filter(pk=lead.pk).exists()  # the connection takes the next command


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_once_refused_an_account_s_reads_are_not_sent_ahead_until_its_retry_after(account, api, lead, order):
    account.rate_limit_override = 2
    account.save()
    warm_client(api, lead)  # 2 of 2 (creating the lead spent 1)
    assert api.get(f"/api/v1/leads/{lead.pk}").status_code == 429  # sent ahead, dropped
    order.clear()
    with CaptureQueriesContext(connection) as queries:
        again = api.get(f"/api/v1/leads/{lead.pk}")
    assert again.status_code == 429
    assert order == ["redis"] and len(queries) == 0  # the database is spared while the budget is spent


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_a_credential_without_the_scope_gets_403_and_the_read_is_dropped(account, make_client, lead, order):
    writer = make_client(account, scopes=["leads:write"])
    assert writer.get(f"/api/v1/leads/{lead.pk}").status_code == 403  # looked up, now cached
    order.clear()
    refused = writer.get(f"/api/v1/leads/{lead.pk}")
    assert refused.status_code == 403 and refused.json()["code"] == "insufficient_scope"
    assert lead.email not in refused.content.decode()
    assert order == ["sent", "redis", "dropped"]
    assert connections["default"]._pending is None


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_nothing_is_sent_ahead_for_a_wrong_secret_a_head_request_or_usage_written_per_request(
    api, lead, order, settings
):
    from accounts.services import API_KEY_LOOKUP_LENGTH

    warm_client(api, lead)
    raw = api._credentials["HTTP_X_API_KEY"]
    order.clear()
    from rest_framework.test import APIClient

    forged = APIClient().get(f"/api/v1/leads/{lead.pk}", HTTP_X_API_KEY=raw[:API_KEY_LOOKUP_LENGTH] + "x" * 40)
    assert forged.status_code == 401 and "sent" not in order  # the cached prefix, a wrong secret
    assert api.head(f"/api/v1/leads/{lead.pk}").status_code == 200 and "sent" not in order
    settings.LEADBASE_API_KEY_USAGE_FLUSH_SECONDS = 0  # the use is written to the key's row first
    assert api.get(f"/api/v1/leads/{lead.pk}").status_code == 200 and "sent" not in order


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_an_epoch_changed_in_redis_since_caching_drops_the_read_and_refuses_a_revoked_key(api, lead, order):
    """The cached entry names the account, the read goes out, then Redis says the key changed: the key is
    looked up again (which first reads and drops the pending row) and refused."""
    from accounts import credentials
    from accounts.models import ApiKey
    from core import ratelimit

    warm_client(api, lead)
    key = ApiKey.objects.get()
    ApiKey.objects.filter(pk=key.pk).update(revoked_at="2020-01-01T00:00:00Z")  # no signal: cache still trusts it
    ratelimit.get_limiter().ride([credentials.EpochChange([key.prefix])], force=True)  # what another process publishes
    order.clear()
    response = api.get(f"/api/v1/leads/{lead.pk}")
    assert response.status_code == 401
    assert lead.email not in response.content.decode()
    # Sent, then Redis (epoch changed), then the key looked up again, which first drops the pending read.
    assert order[:2] == ["sent", "redis"] and "dropped" in order
    assert connections["default"]._pending is None


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_another_account_s_lead_is_not_found_through_the_read_ahead(other_api, lead, order):
    warm = other_api.get("/api/v1/leads?limit=1")
    assert warm.status_code == 200
    order.clear()
    response = other_api.get(f"/api/v1/leads/{lead.pk}")
    assert response.status_code == 404 and response.json()["code"] == "not_found"
    assert order == ["sent", "redis", "collected"]


@pytest.mark.redis
def test_a_malformed_id_sends_nothing_ahead(api, lead, order):
    warm_client(api, lead)
    order.clear()
    assert api.get("/api/v1/leads/not-a-uuid").status_code == 404
    assert "sent" not in order


@pytest.mark.django_db(transaction=True)
def test_a_read_sent_for_one_account_is_never_used_for_another(lead, account, other_account):
    from core.errors import NotFound
    from leads import selectors

    ahead = selectors.lead_read_ahead(account_id=account.pk, lead_id=lead.pk)
    with CaptureQueriesContext(connection) as queries, pytest.raises(NotFound):
        selectors.lead_get(account=other_account, lead_id=lead.pk, read_ahead=ahead)
    assert len(queries) == 2  # the read ahead, dropped; then the other account's own read
    ahead = selectors.lead_read_ahead(account_id=account.pk, lead_id=lead.pk)
    assert selectors.lead_get(account=account, lead_id=lead.pk, read_ahead=ahead).pk == lead.pk


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "use",
    ["cursor", "commit", "rollback", "autocommit", "health check", "another hot row", "another read ahead"],
)
def test_a_pending_read_is_settled_by_any_other_use_of_the_connection_and_then_runs_again(lead, account, use):
    wrapper = connections["default"]
    uses = {
        "cursor": lambda: Lead.objects.filter(pk=lead.pk).count(),
        "commit": wrapper.commit,
        "rollback": wrapper.rollback,
        "autocommit": lambda: (wrapper.set_autocommit(False), wrapper.set_autocommit(True)),
        "health check": lambda: wrapper.is_usable() or pytest.fail("not usable"),
        "another hot row": lambda: hot_row(connection, "SELECT %s::int", [1]),
        "another read ahead": lambda: wrapper.send_hot_row("SELECT %s::int", [2]).row(),
    }
    pending = wrapper.send_hot_row(LEAD_BY_ID, [account.pk, lead.pk])
    assert wrapper._pending is pending
    with CaptureQueriesContext(connection) as queries:
        uses[use]()  # would fail with "another command is already in progress" had the row not been read
        assert wrapper._pending is None
        assert pending.row()[0] == lead.pk  # ran again
    assert [q["sql"] for q in queries].count(queries[-1]["sql"]) == 2  # dropped once, run again once
    assert Lead.objects.filter(pk=lead.pk).exists()


def test_inside_a_transaction_block_nothing_is_sent_ahead_and_a_hot_row_joins_the_transaction(lead, account):
    wrapper = connections["default"]
    with transaction.atomic():
        assert wrapper.send_hot_row(LEAD_BY_ID, [account.pk, lead.pk]) is None
        # The first statement of the block: through a cursor, so that psycopg sends the block's BEGIN.
        started = hot_row(connection, "SELECT now(), txid_current_if_assigned() IS NULL", [])
        assert hot_row(connection, "SELECT now()", [])[0] == started[0]  # the same transaction: now() stands still
    assert wrapper.send_hot_row(LEAD_BY_ID, [account.pk, lead.pk]) is None  # the test's own transaction


@pytest.mark.django_db(transaction=True)
def test_the_first_hot_row_of_an_atomic_block_runs_inside_it(lead, account):
    with transaction.atomic():
        first = hot_row(connection, "SELECT now()", [])[0]
        with connection.cursor() as cursor:
            cursor.execute("SELECT now()")
            assert cursor.fetchone()[0] == first
        assert hot_row(connection, "SELECT now()", [])[0] == first
    outside = hot_row(connection, "SELECT now()", [])[0]
    assert outside >= first


@pytest.mark.django_db(transaction=True)
def test_a_statement_still_prepared_after_a_partial_deallocate_is_taken_as_prepared(lead, account):
    params = [account.pk, lead.pk]
    assert hot_row(connection, LEAD_BY_ID, params) is not None
    assert hot_row(connection, "SELECT %s::int", [3]) == (3,)
    with connection.cursor() as cursor:
        cursor.execute(f"DEALLOCATE {statement_name('SELECT %s::int')}")
    assert hot_row(connection, "SELECT %s::int", [4]) == (4,)  # 26000: forgets every name, prepares again
    assert hot_row(connection, LEAD_BY_ID, params)[0] == lead.pk  # still there: 42P05, taken as prepared
    assert hot_row(connection, LEAD_BY_ID, params)[0] == lead.pk


def test_a_log_line_that_cannot_be_composed_does_not_lose_the_row(lead, account, monkeypatch):
    def broken(self, query, params=None):
        raise RuntimeError("cannot compose")

    monkeypatch.setattr(psycopg.ClientCursor, "mogrify", broken)
    with CaptureQueriesContext(connection) as queries:
        assert hot_row(connection, LEAD_BY_ID, [account.pk, lead.pk])[0] == lead.pk
    assert queries[0]["sql"] == LEAD_BY_ID  # the statement as written, without its parameters


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_a_connection_killed_as_the_read_goes_out_answers_503_and_the_next_request_succeeds(api, lead, monkeypatch):
    from leads import selectors

    warm_client(api, lead)
    real = selectors.lead_read_ahead
    fired = []

    def dying(**kwargs):
        if not fired:
            fired.append(1)
            terminate_our_backend()
        return real(**kwargs)

    monkeypatch.setattr(selectors, "lead_read_ahead", dying)
    failed = api.get(f"/api/v1/leads/{lead.pk}")
    assert fired == [1]
    assert failed.status_code == 503 and failed.json()["code"] == "service_unavailable"
    assert lead.email not in failed.content.decode()
    close_old_connections()  # what the end of a request does in a server (the test client leaves it out)
    assert api.get(f"/api/v1/leads/{lead.pk}").status_code == 200


@pytest.mark.django_db(transaction=True)
def test_a_pooled_session_keeps_its_prepared_statements_for_the_next_request(lead, account):
    # DATABASE_POOL (on under ASGI, where every request runs in a thread of its own, so with a DatabaseWrapper
    # of its own): the session comes back from the pool with what an earlier request prepared on it, and is
    # not asked to prepare it again (a 42P05 error, logged by the server, on every request).
    from core.backends.postgresql.base import DatabaseWrapper

    settings_dict = {
        **connection.settings_dict,
        "CONN_MAX_AGE": 0,
        "OPTIONS": {**connection.settings_dict["OPTIONS"], "pool": {"min_size": 1, "max_size": 1}},
    }
    alias = f"pooled_{uuid.uuid4().hex[:8]}"
    first = DatabaseWrapper(settings_dict, alias)
    try:
        assert first.pool is not None
        assert first.hot_row(LEAD_BY_ID, [account.pk, lead.pk])[0] == lead.pk
        session = first.connection
        first.close()  # the request ends: the session goes back to the pool
        assert first.connection is None

        second = DatabaseWrapper(settings_dict, alias)  # the next request, in another thread
        second.ensure_connection()
        assert second.connection is session  # the same session, from the pool
        assert statement_name(LEAD_BY_ID) in second._hot_statements  # known prepared: no Parse sent
        assert second.hot_row(LEAD_BY_ID, [account.pk, lead.pk])[0] == lead.pk
        with second.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_prepared_statements WHERE name = %s", [statement_name(LEAD_BY_ID)])
            assert cursor.fetchone()[0] == 1
        second.close()
    finally:
        first.close_pool()
