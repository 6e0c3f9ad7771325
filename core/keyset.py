"""Keyset (cursor) pagination over any sort: never OFFSET, so page 10,000 costs what page 1 costs.

The cursor carries every sort value of the last row plus its id and is signed, so a tampered
cursor, or one minted for another account, list or sort, is refused with 400 `invalid_cursor`.
When every sort key runs in one direction the page filter is a single row comparison
`(a, b, id) > (x, y, z)` that a composite index answers directly; with mixed directions, the
equivalent lexicographic OR-chain. NULLs rank above every value; a nullable key is ordered by the
never-NULL pair `(col IS NULL, COALESCE(col, ''))` so it keeps the single row comparison.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.core import signing
from django.db.models import BooleanField, Expression, F, Func, Q, QuerySet
from django.db.models.lookups import Exact, GreaterThan, LessThan
from django.utils.dateparse import parse_datetime

from .errors import InvalidCursor, InvalidParameter

CURSOR_SALT = "leadbase.keyset.v1"


@dataclass(frozen=True)
class SortKey:
    field: str
    descending: bool
    nullable: bool = False
    # Where the ordering and the page filter read the value, when not the field itself (e.g. a
    # joined index table); the cursor still takes the value from the row's `field`.
    column: str | None = None

    @property
    def token(self) -> str:
        return ("-" if self.descending else "") + self.field


def parse_sort(raw: str | None, *, allowed: dict[str, bool], default: str) -> tuple[SortKey, ...]:
    """Parse `sort=-score,created_at`; `allowed` maps field -> nullable. `id` is appended."""
    text = (raw if raw not in (None, "") else default).strip()
    keys: list[SortKey] = []
    seen: set[str] = set()
    for part in text.split(","):
        part = part.strip()
        name = part.removeprefix("-")
        if name not in allowed:
            raise InvalidParameter(
                f"Cannot sort by {name!r}; allowed: {', '.join(sorted(allowed))} (prefix '-' for descending).",
                errors=[{"field": "sort", "code": "invalid_choice", "message": f"Unknown sort field {name!r}."}],
            )
        if name in seen:
            raise InvalidParameter(
                f"Sort field {name!r} is repeated.",
                errors=[{"field": "sort", "code": "invalid", "message": f"{name!r} appears twice."}],
            )
        seen.add(name)
        keys.append(SortKey(name, part.startswith("-"), allowed[name]))
    # id is the final tie-breaker, in the direction of the last key so one index serves the sort.
    keys.append(SortKey("id", keys[-1].descending if keys else False, False))
    return tuple(keys)


class IsNullRank(Func):
    """`(col IS NULL)`: false for values, true for NULL, so NULL ranks above every value."""

    arity = 1
    template = "(%(expressions)s IS NULL)"
    output_field = BooleanField()


class CoalesceEmpty(Func):
    """`COALESCE(col, '')` with the literal inlined, so queries match the index expression exactly."""

    arity = 1
    template = "COALESCE(%(expressions)s, '')"


def nullable_sort_expressions(field: str) -> list[Expression]:
    """A nullable (text) sort key orders by `(col IS NULL, COALESCE(col, ''))`: two never-NULL columns in
    the same order as `col NULLS LAST` (ascending) / `NULLS FIRST` (descending). Because neither is NULL
    the page filter stays a single row comparison that a composite index on the same expressions answers;
    with the bare nullable column it needs an OR with `IS NULL`, which no index range can serve."""
    return [IsNullRank(F(field)), CoalesceEmpty(F(field))]


def _key_columns(key: SortKey, value: Any) -> list[tuple[str | Expression, Any]]:
    """The (column, value) pairs one sort key compares on: a field name, or the nullable pair."""
    if not key.nullable:
        return [(key.column or key.field, value)]
    rank, text = nullable_sort_expressions(key.field)
    return [(rank, value is None), (text, "" if value is None else value)]


def order_by_expressions(keys: tuple[SortKey, ...]) -> list:
    out = []
    for key in keys:
        for column, _ in _key_columns(key, None):
            expression = F(column) if isinstance(column, str) else column
            out.append(expression.desc() if key.descending else expression.asc())
    return out


class RowCompare(Expression):
    """`(a, b, c) > (%s, %s, %s)` (or `<`): a row-value comparison, supported by PostgreSQL and SQLite.
    `fields` are field names or expressions; none may be NULL (a NULL makes the comparison unknown)."""

    output_field = BooleanField()

    def __init__(self, fields: list, values: list[Any], operator: str):
        super().__init__()
        self.fields = [F(name) if isinstance(name, str) else name for name in fields]
        self.values = values
        self.operator = operator

    def get_source_expressions(self):
        return self.fields

    def set_source_expressions(self, exprs):
        self.fields = list(exprs)

    def resolve_expression(self, query=None, allow_joins=True, reuse=None, summarize=False, for_save=False):
        clone = self.copy()
        clone.fields = [f.resolve_expression(query, allow_joins, reuse, summarize, for_save) for f in self.fields]
        return clone

    def as_sql(self, compiler, connection):
        lhs_sql, params = [], []
        for field_expr in self.fields:
            sql, p = compiler.compile(field_expr)
            lhs_sql.append(sql)
            params.extend(p)
        rhs = []
        for field_expr, value in zip(self.fields, self.values, strict=True):
            db_value = field_expr.output_field.get_db_prep_value(value, connection)
            rhs.append("%s")
            params.append(db_value)
        return f"({', '.join(lhs_sql)}) {self.operator} ({', '.join(rhs)})", params


def keyset_filter(queryset: QuerySet, keys: tuple[SortKey, ...], values: list[Any]) -> QuerySet:
    """Rows strictly after the row whose sort values are `values`."""
    columns = [
        (expression, column_value, key.descending)
        for key, value in zip(keys, values, strict=True)
        for expression, column_value in _key_columns(key, value)
    ]
    if len({descending for _, _, descending in columns}) == 1:
        return queryset.filter(
            RowCompare([c[0] for c in columns], [c[1] for c in columns], "<" if columns[0][2] else ">")
        )
    # Mixed directions: the equivalent lexicographic OR-chain (no single index order serves it).
    condition = Q(pk__in=[])
    prefix = Q()
    for column, value, descending in columns:
        condition |= prefix & _compare(column, "lt" if descending else "gt", value)
        prefix &= _compare(column, "exact", value)
    return queryset.filter(condition)


def _compare(column: str | Expression, lookup: str, value: Any) -> Q:
    if isinstance(column, str):
        return Q(**{f"{column}__{lookup}": value})  # the field prepares the value (e.g. UUID text on SQLite)
    return Q({"lt": LessThan, "gt": GreaterThan, "exact": Exact}[lookup](column, value))


def _encode_value(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return {"dt": value.isoformat()}
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Decimal):
        return str(value)
    return value


def _decode_value(value: Any) -> Any:
    if isinstance(value, dict) and "dt" in value:
        parsed = parse_datetime(value["dt"])
        if parsed is None:
            raise InvalidCursor("The cursor is malformed.")
        return parsed
    return value


def encode_cursor(*, scope: str, keys: tuple[SortKey, ...], row_values: list[Any]) -> str:
    payload = {"s": scope, "k": [k.token for k in keys], "v": [_encode_value(v) for v in row_values]}
    # A plain (not timestamped) signer: the same position always gives the same cursor.
    return signing.Signer(salt=CURSOR_SALT).sign_object(payload, compress=True)


def decode_cursor(cursor: str, *, scope: str, keys: tuple[SortKey, ...]) -> list[Any]:
    try:
        payload = signing.Signer(salt=CURSOR_SALT).unsign_object(cursor)
    except (signing.BadSignature, ValueError, TypeError) as exc:
        raise InvalidCursor("The cursor is invalid or was tampered with.") from exc
    if not isinstance(payload, dict) or payload.get("s") != scope:
        raise InvalidCursor("The cursor belongs to another list.")
    if payload.get("k") != [k.token for k in keys]:
        raise InvalidCursor("The cursor was made for another sort; start again without a cursor.")
    values = payload.get("v")
    if not isinstance(values, list) or len(values) != len(keys):
        raise InvalidCursor("The cursor is malformed.")
    return [_decode_value(v) for v in values]


@dataclass
class Page:
    items: list
    next_cursor: str | None
    has_more: bool


def paginate(
    queryset: QuerySet,
    *,
    keys: tuple[SortKey, ...],
    limit: int,
    cursor: str | None,
    scope: str,
) -> Page:
    """Fetch one page (limit + 1 rows in one query) after `cursor`."""
    if cursor:
        queryset = keyset_filter(queryset, keys, decode_cursor(cursor, scope=scope, keys=keys))
    rows = list(queryset.order_by(*order_by_expressions(keys))[: limit + 1])
    has_more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = None
    if has_more and rows:
        last = rows[-1]
        next_cursor = encode_cursor(scope=scope, keys=keys, row_values=[getattr(last, k.field) for k in keys])
    return Page(items=rows, next_cursor=next_cursor, has_more=has_more)


def parse_limit(raw: str | None, *, default: int, maximum: int) -> int:
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except (TypeError, ValueError):
        value = 0
    if not 1 <= value <= maximum:
        raise InvalidParameter(
            f"limit must be an integer from 1 to {maximum}.",
            errors=[{"field": "limit", "code": "invalid", "message": f"Use 1..{maximum}."}],
        )
    return value
