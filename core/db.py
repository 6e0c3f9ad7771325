"""Database connection tuning shared by every app."""

from __future__ import annotations

import sqlite3


def sqlite_use_real_variable_limit(sender, connection, **kwargs) -> None:
    """Let SQLite batches be as large as the library allows (`connection_created` receiver).

    Django 5.2 assumes SQLite's historical limit of 999 bound variables and splits a bulk insert
    or update of 500 leads into a dozen statements; SQLite 3.32+ allows 32,766 (often more) and
    reports its limit, so a batch stays one statement (§4.5) in the embedded mode as in PostgreSQL.
    """
    if connection.vendor != "sqlite":
        return
    getlimit = getattr(connection.connection, "getlimit", None)  # Python 3.11+
    if getlimit is None:
        return
    limit = getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    if limit > connection.features.max_query_params:
        connection.features.max_query_params = limit
