"""Django's PostgreSQL backend with the health check skipped for connections used a moment ago.

With `CONN_HEALTH_CHECKS`, Django runs `SELECT 1` before the first query of every request on a
reused connection: a full round trip on every API call, on connections that answered a query
milliseconds earlier. This backend checks only a connection that has been idle for longer than
`LEADBASE_DB_CHECK_DELAY_SECONDS` (pgbouncer's `server_check_delay` idea, default 10 s): an idle
connection, the one a server restart or an idle-session killer is most likely to have cut, is still
checked and silently replaced; a busy one is trusted. If a busy connection did die (the server was
restarted under load), its next request fails with 503 `service_unavailable` and Retry-After, the
connection is closed at the end of that request (Django's `errors_occurred`), and the next request
gets a fresh one. Set the delay to 0 to check every request, as Django does. With a pool
(`DATABASE_POOL`, on under ASGI) the delay does not apply: Django hands psycopg's pool its own check,
an empty query on every checkout, and each request checks a connection out.

`hot_row()` runs the hottest hand-written queries (one lead by id on every `GET /leads/{id}`, an API
key not yet cached: core/db.py) as statements prepared on each connection the first time (a protocol-level
Parse, which PgBouncer 1.21+ tracks in transaction mode):
PostgreSQL then skips parsing and planning them (one lead by id: 630 -> 390 µs a query on an earlier
benchmark machine, the planner weighing the leads table's many indexes each time). Each call then goes
through libpq directly: it sends the parameters, waits for the one result and loads the row with
psycopg's own loaders (`psycopg.adapt.Transformer` over the connection's adapters), skipping psycopg's
cursor machinery and Django's cursor wrapper: measured under load, ~60 µs of a worker's time a read.
Same row, same errors (Django's database exceptions; a dead connection is closed at the end of the
request), still in `connection.queries` when queries are logged. With an execute wrapper installed
(`connection.execute_wrapper`) the query goes through a Django cursor instead, so the wrapper sees it;
so does the first statement of a transaction block, so that psycopg sends the block's BEGIN before it.
A wait interrupted (a signal, a time limit) closes the connection: a result still on its way would
otherwise answer the next command.

`send_hot_row()` splits the same call in two: the statement goes out now and its row is read later
(`PendingRow.row()`), so PostgreSQL runs it while the caller waits for something else; `GET /leads/{id}`
reads the lead during the API key's Redis round trip (leads/selectors.py `lead_read_ahead`). Only
outside transaction blocks: a statement dropped unread there could have failed and aborted the block
unseen. Until the row is read the connection takes no other command: any other use (a cursor, commit,
rollback, autocommit, the health check, another hot row) first reads the pending row and drops it,
and a row read after that runs its statement again.

Only these statements are prepared: psycopg's own preparing stays off (Django's `prepare_threshold`
None). psycopg runs `DEALLOCATE ALL` whenever a connection on which it prepared anything sees a
ROLLBACK, DROP or ALTER, which would take ours with it. Should anything else deallocate them (a
`DEALLOCATE` or `DISCARD ALL` sent by hand), each is prepared again on its next use (one still there
answers "already exists", taken as prepared); at once if that use is outside a transaction block,
else after the failed transaction. A migration that changes the type of a column these statements
select makes them fail until the connection is replaced (`CONN_MAX_AGE`, a pooled session's
`DATABASE_POOL_MAX_LIFETIME_SECONDS`, or a restart, as deploys do). The names prepared are remembered
with the psycopg connection, not Django's wrapper: a session a pool hands out again keeps them.
Behind a pooler that cannot keep prepared statements (PgBouncer in transaction mode before 1.21), set
`LEADBASE_DB_PREPARED_STATEMENTS=false`: the queries then run unprepared through a Django cursor.

Timestamps: Django loads every `timestamptz` with a subclass of psycopg's pure-Python loader (to label
the result with the connection's time zone), which parses each value in Python; C-accelerated psycopg
cannot be subclassed. When that zone is UTC (Django's default with `USE_TZ`; the session is set to UTC
too), `UTCTimestamptzLoader` hands each value to psycopg's C loader instead: the same datetimes,
tzinfo `datetime.timezone.utc`, ~4x cheaper a value (a page of 50 leads holds 150 of them).
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import logging
import select
import time
import weakref
from collections.abc import Sequence
from functools import cache

import psycopg
from django.conf import settings
from django.db import DatabaseError
from django.db.backends.postgresql import base
from psycopg import adapt, adapters, errors, pq
from psycopg.pq import Format

logger = logging.getLogger("django.db.backends")


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


def numbered_placeholders(sql: str) -> str:
    """Django's `%s` placeholders as PostgreSQL's `$1, $2, ...` (hand-written SQL without a literal `%`)."""
    parts = sql.split("%s")
    if any("%" in part for part in parts):
        raise ValueError("A hot statement may hold no % other than its %s placeholders.")
    return "".join(f"{part}${i}" for i, part in enumerate(parts[:-1], 1)) + parts[-1]


def statement_name(sql: str) -> str:
    return "lb_hot_" + hashlib.sha1(sql.encode()).hexdigest()[:20]  # noqa: S324  (a name, not a secret)


def _wait(pgconn: pq.abc.PGconn, *, write: bool = False) -> None:
    """Block until the connection's socket is readable (or, `write`, writable)."""
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(pgconn.socket, select.POLLOUT if write else select.POLLIN)
        poller.poll()
    else:  # pragma: no cover  (platforms without poll)
        select.select([] if write else [pgconn.socket], [pgconn.socket] if write else [], [])


class PendingRow:
    """A hot statement sent on a connection and not read yet (DatabaseWrapper.send_hot_row)."""

    __slots__ = ("db", "name", "params", "sql", "start", "values")

    def __init__(self, db: DatabaseWrapper, sql: str, params: Sequence, values: list, start: float):
        self.db = db
        self.sql = sql
        self.params = params
        self.values = values
        self.name = statement_name(sql)
        self.start = start

    def row(self) -> tuple | None:
        """Wait for the row (None: no row). If the connection was used for something else meanwhile (which
        read and dropped this row), the statement runs again."""
        if self.db._pending is not self:
            return self.db.hot_row(self.sql, self.params)
        return self.db._collect(self)

    def discard(self) -> None:
        """Not wanted after all: read to the end and dropped now (nothing if already read)."""
        if self.db._pending is self:
            self.db._settle_pending()


# The hot statements prepared on each open psycopg connection (an entry lives as long as its connection).
_session_statements: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class DatabaseWrapper(base.DatabaseWrapper):
    _used_at: float | None = None
    _hot_statements: set[str] = frozenset()  # names prepared on this session (from connect(): the session's set)
    _hot_transformer: adapt.Transformer | None = None
    _pending: PendingRow | None = None  # a hot statement sent and not yet read

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
        return params

    def hot_row(self, sql: str, params: Sequence) -> tuple | None:
        """The first row of `sql` (Django placeholders, `%s`) with `params`, or None: through libpq directly,
        as a statement prepared on this connection the first time (see the module's docstring)."""
        pending = self._send_hot_row(sql, params, in_transaction=True)
        if pending is None:
            with self.cursor() as cursor:
                cursor.execute(sql, params)
                return cursor.fetchone()
        return pending.row()

    def send_hot_row(self, sql: str, params: Sequence) -> PendingRow | None:
        """Send `hot_row`'s statement now and read its row later (`PendingRow.row()`), so the caller can
        wait for something else meanwhile (the API key's Redis round trip: leads/api/views.py). Until it
        is read the connection takes no other command: whatever uses it next reads the row first and
        drops it. Only outside a transaction block (a statement dropped unread there could have failed and
        aborted the transaction unseen). None when the statement cannot go ahead: then call `hot_row`."""
        return self._send_hot_row(sql, params, in_transaction=False)

    def _send_hot_row(self, sql: str, params: Sequence, *, in_transaction: bool) -> PendingRow | None:
        """None: prepared statements are off, an execute wrapper must see the query, or a transaction block
        (atomic) has not sent its BEGIN yet (psycopg sends it with the next query through a cursor) or,
        `in_transaction` False, is open at all."""
        if not settings.LEADBASE_DB_PREPARED_STATEMENTS or self.execute_wrappers:
            return None
        self._settle_pending()
        self.validate_thread_sharing()
        self.validate_no_broken_transaction()
        self.close_if_health_check_failed()
        self.ensure_connection()
        if not self.connection.autocommit and (
            not in_transaction or self.connection.pgconn.transaction_status == pq.TransactionStatus.IDLE
        ):
            return None
        self._used_at = start = time.monotonic()
        with self.wrap_database_errors:
            tx = self._hot_transformer
            if tx is None:
                # A cursor's adapters: the connection's, plus the time zone loader Django gives each cursor.
                tx = self._hot_transformer = adapt.Transformer(self.create_cursor())
            values = tx.dump_sequence(params, [adapt.PyFormat.TEXT] * len(params))
            pending = PendingRow(self, sql, params, values, start)
            self._send_prepared(pending)
        self._pending = pending
        return pending

    def _collect(self, pending: PendingRow) -> tuple | None:
        """`pending`'s row (see PendingRow.row)."""
        self._pending = None
        try:
            with self.wrap_database_errors:
                result = self._result()
                if result.status == pq.ExecStatus.FATAL_ERROR and result.error_field(pq.DiagnosticField.SQLSTATE) == (
                    b"26000"  # invalid_sql_statement_name: deallocated by hand (DEALLOCATE, DISCARD ALL)
                ):
                    # Deallocated by hand, probably all of them: each is prepared again on its next use (one
                    # that still exists answers 42P05, taken as prepared). This one at once outside a
                    # transaction block; inside one the failed statement has aborted it, so the error is
                    # the caller's and the next call prepares anew.
                    self._hot_statements.clear()
                    if self.connection.pgconn.transaction_status == pq.TransactionStatus.IDLE:
                        self._send_prepared(pending)
                        result = self._result()
                if result.status != pq.ExecStatus.TUPLES_OK:
                    self._raise(result)
                tx = self._hot_transformer
                tx.set_pgresult(result)
                return tx.load_row(0, tuple) if result.ntuples else None
        finally:
            if self.queries_logged:
                self._log(pending)

    def _settle_pending(self) -> None:
        """Read and drop the row of a statement sent and never read, before the connection is used again.
        An error is left to that next use, which meets it too (a dead connection) or not (a failed read:
        only sent outside transaction blocks, so it aborted nothing)."""
        pending = self._pending
        if pending is None:
            return
        self._pending = None
        try:
            with self.wrap_database_errors:
                self._result()
        except DatabaseError:
            pass
        finally:
            if self.queries_logged:
                self._log(pending)

    def _log(self, pending: PendingRow) -> None:
        """As Django's CursorDebugWrapper logs a query (connection.queries, the django.db.backends logger)."""
        duration = time.monotonic() - pending.start
        sql, params = pending.sql, pending.params
        with contextlib.suppress(Exception):  # a log line is never worth failing the query it describes
            sql = psycopg.ClientCursor(self.connection).mogrify(sql, params)  # what compose_sql does, unsent
        self.queries_log.append({"sql": sql, "time": f"{duration:.3f}"})
        logger.debug(
            "(%.3f) %s; args=%s; alias=%s",
            duration,
            sql,
            params,
            self.alias,
            extra={"duration": duration, "sql": sql, "params": params, "alias": self.alias},
        )

    def _send_prepared(self, pending: PendingRow) -> None:
        """Prepare the statement on this connection if it is not yet (at the protocol level, which PgBouncer
        1.21+ tracks in transaction mode), and send the parameters."""
        pgconn = self.connection.pgconn
        if pending.name not in self._hot_statements:
            pgconn.send_prepare(pending.name.encode(), numbered_placeholders(pending.sql).encode())
            self._flush()
            result = self._result()
            # 42P05 duplicate_prepared_statement: prepared on this session already (our names are the SQL's hash).
            if result.status != pq.ExecStatus.COMMAND_OK and result.error_field(pq.DiagnosticField.SQLSTATE) != (
                b"42P05"
            ):
                self._raise(result)
            self._hot_statements.add(pending.name)
        pgconn.send_query_prepared(pending.name.encode(), pending.values)
        self._flush()

    def _raise(self, result: pq.abc.PGresult) -> None:
        raise errors.error_from_result(result, encoding=self.connection.info.encoding)

    def _flush(self) -> None:
        pgconn = self.connection.pgconn
        while pgconn.flush():
            _wait(pgconn, write=True)
            pgconn.consume_input()

    def _result(self) -> pq.abc.PGresult:
        """Wait for the statement sent last and return its result. Interrupted (a signal, a time limit), the
        connection is closed: a result still on its way would answer the next command."""
        pgconn = self.connection.pgconn
        try:
            while True:
                pgconn.consume_input()
                if not pgconn.is_busy():
                    break
                _wait(pgconn)
            result = pgconn.get_result()
            while pgconn.get_result() is not None:  # one statement, one result; read to the end all the same
                pass
        except BaseException:
            self.connection.close()
            raise
        return result

    # Every other use of the connection reads a pending row first.

    def create_cursor(self, name=None):
        self._settle_pending()
        self._used_at = time.monotonic()
        return super().create_cursor(name)

    def _commit(self):
        self._settle_pending()
        return super()._commit()

    def _rollback(self):
        self._settle_pending()
        return super()._rollback()

    def _set_autocommit(self, autocommit):
        self._settle_pending()
        return super()._set_autocommit(autocommit)

    def is_usable(self):
        self._settle_pending()
        return super().is_usable()

    def connect(self) -> None:
        super().connect()
        self._used_at = None
        # The names belong to the session, so to the psycopg connection: one from a pool (DATABASE_POOL) comes
        # back with what an earlier request prepared on it, and preparing again would be a 42P05 error
        # (an error line in the server's log) on every request.
        self._hot_statements = _session_statements.setdefault(self.connection, set())
        self._hot_transformer = None
        self._pending = None

    def _close(self) -> None:
        self._pending = None
        self._hot_statements = set()
        self._hot_transformer = None
        super()._close()
