"""Django's PostgreSQL backend with the health check skipped for connections used a moment ago.

With `CONN_HEALTH_CHECKS`, Django runs `SELECT 1` before the first query of every request on a
reused connection: a full round trip on every API call, on connections that answered a query
milliseconds earlier. This backend checks only a connection that has been idle for longer than
`LEADBASE_DB_CHECK_DELAY_SECONDS` (pgbouncer's `server_check_delay` idea, default 10 s): an idle
connection, the one a server restart or an idle-session killer is most likely to have cut, is still
checked and silently replaced; a busy one is trusted. If a busy connection did die (the server was
restarted under load), its next request fails with 503 `service_unavailable` and Retry-After, the
connection is closed at the end of that request (Django's `errors_occurred`), and the next request
gets a fresh one. Set the delay to 0 to check every request, as Django does.

`prepared_cursor()` gives the hottest hand-written queries (core/db.py `hot_cursor`) a cursor with
server-side binding whose statements psycopg prepares once per connection: PostgreSQL then
skips parsing and planning them (one lead by id: 630 -> 390 µs a query on the benchmark machine, the
planner weighing the leads table's many indexes each time). The ORM keeps Django's client-side
binding, which never prepares. Behind a pooler that cannot keep prepared statements (PgBouncer in
transaction mode before 1.21), set `LEADBASE_DB_PREPARED_STATEMENTS=false`.

Timestamps: Django loads every `timestamptz` with a subclass of psycopg's pure-Python loader (to label
the result with the connection's time zone), which parses each value in Python; C-accelerated psycopg
cannot be subclassed. When that zone is UTC (Django's default with `USE_TZ`; the session is set to UTC
too), `UTCTimestamptzLoader` hands each value to psycopg's C loader instead: the same datetimes,
tzinfo `datetime.timezone.utc`, ~4x cheaper a value (a page of 50 leads holds 150 of them).
"""

from __future__ import annotations

import datetime
import time
from functools import cache

from django.conf import settings
from django.db.backends.postgresql import base, operations
from psycopg import adapt, adapters
from psycopg.pq import Format


class UTCTimestamptzLoader(adapt.Loader):
    """`timestamptz` as aware UTC datetimes, parsed by psycopg's own (C, when installed) text loader.
    `timezone` is what Django's loaders carry and what its `create_cursor` compares."""

    timezone = datetime.UTC

    def __init__(self, oid: int, context=None):
        super().__init__(oid, context)
        self._load = adapters.get_loader(base.TIMESTAMPTZ_OID, Format.TEXT)(oid, context).load

    def load(self, data) -> datetime.datetime:
        return self._load(data)


@cache
def utc_adapters(template: adapt.AdaptersMap) -> adapt.AdaptersMap:
    """Django's adapters (`get_adapters_template`) with timestamptz loaded by UTCTimestamptzLoader."""
    context = adapt.AdaptersMap(template)
    context.register_loader("timestamptz", UTCTimestamptzLoader)
    return context


class PreparingCursor(base.ServerBindingCursor):
    """Server-side binding, every statement prepared (psycopg keeps up to `prepared_max` per connection;
    Django leaves psycopg's automatic preparing off)."""

    def execute(self, query, params=None, *, prepare: bool | None = True, binary: bool | None = None):
        return super().execute(query, params, prepare=prepare, binary=binary)


class DatabaseOperations(operations.DatabaseOperations):
    def last_executed_query(self, cursor, sql, params):
        # Django reads a client-side cursor's composed query; a prepared one has "$1" placeholders, so
        # compose it here for the query log (connection.queries, CaptureQueriesContext).
        if isinstance(cursor, PreparingCursor):
            try:
                return self.compose_sql(sql, params)
            except Exception:  # a log line is never worth failing the query it describes
                return sql
        return super().last_executed_query(cursor, sql, params)


class DatabaseWrapper(base.DatabaseWrapper):
    ops_class = DatabaseOperations
    _used_at: float | None = None
    _prepared: PreparingCursor | None = None

    def create_cursor(self, name=None):
        self._used_at = time.monotonic()
        return super().create_cursor(name)

    def close_if_health_check_failed(self) -> None:
        if (
            self.connection is not None
            and self.health_check_enabled
            and not self.health_check_done
            and self._used_at is not None
            and time.monotonic() - self._used_at < settings.LEADBASE_DB_CHECK_DELAY_SECONDS
        ):
            self.health_check_done = True
            return
        super().close_if_health_check_failed()

    def get_connection_params(self) -> dict:
        params = super().get_connection_params()
        # The session runs in UTC (Django's `timezone_name`): psycopg's loader already gives UTC datetimes.
        if self.timezone is datetime.UTC and self.timezone_name == "UTC" and "context" in params:
            params["context"] = utc_adapters(params["context"])
        # Django turns psycopg's preparing off (prepare_threshold None) unless OPTIONS sets it. Here only
        # PreparingCursor prepares (it asks for each statement); nothing is prepared automatically.
        if settings.LEADBASE_DB_PREPARED_STATEMENTS and "prepare_threshold" not in self.settings_dict["OPTIONS"]:
            params["prepare_threshold"] = 2**31 - 1
        return params

    def prepared_cursor(self):
        """A cursor (wrapped like any Django cursor: query logging, execute wrappers) whose statements
        are prepared on this connection the first time they run. The same psycopg cursor serves every
        call on this connection (callers never close it: core/db.py `hot_cursor`); a plain Django
        cursor when prepared statements are turned off."""
        if not settings.LEADBASE_DB_PREPARED_STATEMENTS:
            return None
        self.close_if_health_check_failed()
        self.ensure_connection()
        self._used_at = time.monotonic()
        cursor = self._prepared
        if cursor is None or cursor.closed:
            with self.wrap_database_errors:
                cursor = PreparingCursor(self.connection)
                tzloader = self.connection.adapters.get_loader(base.TIMESTAMPTZ_OID, base.Format.TEXT)
                if self.timezone != tzloader.timezone:
                    base.register_tzloader(self.timezone, cursor)
            self._prepared = cursor
        return self._prepare_cursor(cursor)

    def connect(self) -> None:
        super().connect()
        self._used_at = None
        self._prepared = None

    def _close(self) -> None:
        self._prepared = None
        super()._close()
