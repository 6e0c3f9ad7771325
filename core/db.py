"""Database helpers shared by every app: connection tuning and hand-written SELECTs of models."""

from __future__ import annotations

import copy
import sqlite3

from django.db import models
from django.db.models import signals
from django.db.models.base import ModelState


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


def hot_row(connection, sql: str, params) -> tuple | None:
    """The first row of a query run on almost every request, or None: on PostgreSQL a statement prepared
    once per connection and run through libpq directly (core/backends/postgresql `hot_row`), elsewhere
    through a plain cursor."""
    fetch = getattr(connection, "hot_row", None)
    if fetch is not None:
        return fetch(sql, params)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


_SCALAR_FIELDS = (
    models.CharField,
    models.TextField,
    models.IntegerField,
    models.BigAutoField,
    models.AutoField,
    models.BooleanField,
    models.DateTimeField,
    models.DateField,
    models.UUIDField,
    models.DecimalField,
    models.FloatField,
    models.GenericIPAddressField,
    models.ForeignKey,
)


class ModelColumns:
    """One model's columns in a hand-written SELECT, and instances made from the row.

    For the few hot queries where compiling a queryset costs more than running it (an API-key
    lookup joining four tables, one lead by id): the SQL is written once, the column list comes from
    the model (so a new field is selected without touching the query), and each value goes through
    the same converters the ORM applies (JSON text to Python, SQLite's UUID text to UUID, ...)
    before `Model.from_db`, so the instance is the one a queryset would have built.
    """

    def __init__(self, model: type[models.Model], alias: str):
        self.model = model
        self.alias = alias
        self.fields = tuple(model._meta.concrete_fields)
        self.attnames = [f.attname for f in self.fields]
        # Values a request could change in place (JSON; anything not a plain scalar field), copied per clone.
        self._mutable = [f.attname for f in self.fields if not isinstance(f, _SCALAR_FIELDS)]
        self._converters: dict[str, list] = {}

    def __len__(self) -> int:
        return len(self.fields)

    def select(self, connection) -> str:
        quote = connection.ops.quote_name
        return ", ".join(f"{quote(self.alias)}.{quote(f.column)}" for f in self.fields)

    def converters(self, connection) -> list[tuple[int, object, list]]:
        """(index, column, converters) of each column the ORM would convert (backend's, then field's)."""
        cached = self._converters.get(connection.alias)
        if cached is None:
            cached = []
            for i, field in enumerate(self.fields):
                col = field.get_col(self.alias)
                found = [*connection.ops.get_db_converters(col), *field.get_db_converters(connection)]
                if found:
                    cached.append((i, col, found))
            self._converters[connection.alias] = cached
        return cached

    def convert(self, values, connection) -> list:
        """The row's values as the model's fields hold them (what `from_db` expects)."""
        out = list(values)
        for i, col, converters in self.converters(connection):
            for converter in converters:
                out[i] = converter(out[i], col, connection)
        return out

    def instance(self, converted_values, db: str) -> models.Model:
        """What `Model.from_db` builds from these values. Without init signal receivers for the model,
        built directly: every concrete field is given, so `__init__` would only set each attribute in
        turn (a fresh instance has no cached relation for a foreign key's setter to clear)."""
        model = self.model
        if signals.pre_init.has_listeners(model) or signals.post_init.has_listeners(model):
            return model.from_db(db, self.attnames, list(converted_values))
        state = ModelState()
        state.adding = False
        state.db = db
        instance = model.__new__(model)
        instance.__dict__ = {"_state": state, **dict(zip(self.attnames, converted_values, strict=True))}
        return instance

    def clone(self, instance: models.Model) -> models.Model:
        """A copy of an instance this helper built, as independent as a fresh read: its own attributes,
        state (no cached relations) and JSON values. Several times cheaper than `from_db` (no
        `__init__`, no descriptors); like `from_db` on a model without init signals, so only for models
        with no `pre_init`/`post_init` receivers."""
        values = instance.__dict__.copy()
        state = ModelState()
        state.db = instance._state.db
        state.adding = False
        values["_state"] = state
        for attname in self._mutable:
            values[attname] = copy.deepcopy(values[attname])
        clone = self.model.__new__(self.model)
        clone.__dict__ = values
        return clone
