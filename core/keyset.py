"""Keyset (cursor) pagination over any sort: never OFFSET, so page 10,000 costs what page 1 costs.

The cursor carries every sort value of the last row plus its id and is signed, so a tampered
cursor, or one minted for another account, list or sort, is refused with 400 `invalid_cursor`.
When every sort key runs in one direction and none is nullable the page filter is a single
row comparison `(a, b, id) > (x, y, z)` that a composite index answers directly; otherwise the
equivalent lexicographic OR-chain, with NULLs ordered as if larger than every value.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.core import signing
from django.db.models import BooleanField, Expression, F, Q, QuerySet
from django.utils.dateparse import parse_datetime

from .errors import InvalidCursor, InvalidParameter

CURSOR_SALT = "leadbase.keyset.v1"


@dataclass(frozen=True)
class SortKey:
    field: str
    descending: bool
    nullable: bool = False

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
            raise InvalidParameter(f"Sort field {name!r} is repeated.", errors=[
                {"field": "sort", "code": "invalid", "message": f"{name!r} appears twice."}])
        seen.add(name)
        keys.append(SortKey(name, part.startswith("-"), allowed[name]))
    # id is the final tie-breaker, in the direction of the last key so one index serves the sort.
    keys.append(SortKey("id", keys[-1].descending if keys else False, False))
    return tuple(keys)


def order_by_expressions(keys: tuple[SortKey, ...]) -> list:
    out = []
    for key in keys:
        if key.descending:
            out.append(F(key.field).desc(nulls_first=True) if key.nullable else F(key.field).desc())
        else:
            out.append(F(key.field).asc(nulls_last=True) if key.nullable else F(key.field).asc())
    return out


class RowCompare(Expression):
    """`(a, b, c) > (%s, %s, %s)` (or `<`): a row-value comparison, supported by PostgreSQL and SQLite."""

    output_field = BooleanField()

    def __init__(self, fields: list[str], values: list[Any], operator: str):
        super().__init__()
        self.fields = [F(name) for name in fields]
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
        for field_expr, value in zip(self.fields, self.values, strict=True):
            sql, p = compiler.compile(field_expr)
            lhs_sql.append(sql)
            params.extend(p)
        rhs = []
        for field_expr, value in zip(self.fields, self.values, strict=True):
            db_value = field_expr.output_field.get_db_prep_value(value, connection)
            rhs.append("%s")
            params.append(db_value)
        return f"({', '.join(lhs_sql)}) {self.operator} ({', '.join(rhs)})", params


def _after(key: SortKey, value: Any) -> Q:
    """Rows strictly after `value` in this key's order (NULL ranks above every value)."""
    if value is None:
        return Q(**{f"{key.field}__isnull": False}) if key.descending else Q(pk__in=[])
    if key.descending:
        return Q(**{f"{key.field}__lt": value})
    after = Q(**{f"{key.field}__gt": value})
    return after | Q(**{f"{key.field}__isnull": True}) if key.nullable else after


def _equal(key: SortKey, value: Any) -> Q:
    if value is None:
        return Q(**{f"{key.field}__isnull": True})
    return Q(**{key.field: value})


def keyset_filter(queryset: QuerySet, keys: tuple[SortKey, ...], values: list[Any]) -> QuerySet:
    directions = {k.descending for k in keys}
    if len(directions) == 1 and not any(k.nullable for k in keys):
        return queryset.filter(RowCompare([k.field for k in keys], values, "<" if keys[0].descending else ">"))
    condition = Q(pk__in=[])
    prefix = Q()
    for key, value in zip(keys, values, strict=True):
        condition |= prefix & _after(key, value)
        prefix &= _equal(key, value)
    return queryset.filter(condition)


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
    return signing.dumps(payload, salt=CURSOR_SALT, compress=True)


def decode_cursor(cursor: str, *, scope: str, keys: tuple[SortKey, ...]) -> list[Any]:
    try:
        payload = signing.loads(cursor, salt=CURSOR_SALT)
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
    queryset: QuerySet, *, keys: tuple[SortKey, ...], limit: int, cursor: str | None, scope: str,
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
