"""The hottest reads through libpq directly (core/backends/postgresql `hot_row`): same rows, same errors,
logged like any query, and robust to what can happen to a prepared statement or a connection."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from django.db import DatabaseError, ProgrammingError, connection, connections, transaction
from django.test.utils import CaptureQueriesContext

from core.backends.postgresql.base import numbered_placeholders, statement_name
from core.db import hot_row
from leads.models import Lead
from leads.selectors import LEAD

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
    conn_params = connection.get_connection_params()
    conn_params.pop("cursor_factory", None)
    conn_params.pop("context", None)
    with psycopg.connect(**conn_params, autocommit=True) as admin:
        assert admin.execute("SELECT pg_terminate_backend(%s, 5000)", [pid]).fetchone()[0]
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
    real = type(connections["default"]).hot_row
    monkeypatch.setattr(
        type(connections["default"]), "hot_row", lambda self, sql, params: calls.append(sql) or real(self, sql, params)
    )
    response = api.get(f"/api/v1/leads/{lead.pk}")
    assert response.status_code == 200
    assert response.json()["custom_fields"] == {"plan": "pro", "seats": 12, "trial": True}
    assert any('FROM "leads_lead" "l"' in sql for sql in calls)
