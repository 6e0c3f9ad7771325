"""Rules compiled to SQL: one implementation of rule matching, used everywhere.

Each rule becomes a boolean SQL expression over the leads table; the score is
`LEAST(GREATEST(SUM(CASE WHEN <rule> THEN points ELSE 0 END), 0), 100)` and the breakdown a JSON
array built in the same statement. Scoring one lead, a batch of 500 or a million is the same
UPDATE with a different WHERE, so single, batch and recalculation can never disagree, and a
recalculation runs inside PostgreSQL instead of round-tripping every row through Python.
Works on PostgreSQL and SQLite alike.
"""

from __future__ import annotations

import json
import re
from functools import cache, reduce
from pathlib import Path
from typing import Any

from django.db import NotSupportedError
from django.db.models import BooleanField, Case, F, Func, IntegerField, JSONField, Q, Value, When
from django.db.models.functions import Cast, Concat, Greatest, Least, Lower, StrIndex, Substr
from django.db.models.lookups import Exact, IContains, In

from core.errors import ValidationFailed, field_error
from leads.models import LeadStatus

from .models import Operator

TEXT_FIELDS = (
    "email", "first_name", "last_name", "company", "job_title", "website", "city", "phone", "country",
    "source", "status", "external_id",
)  # fmt: skip
SPECIAL_FIELDS = ("tags", "owner", "email_domain")
CUSTOM_FIELD = re.compile(r"^custom_fields\.(?P<key>[A-Za-z0-9_\-]{1,64})$")
MAX_IN_VALUES = 200


@cache
def free_email_domains() -> tuple[str, ...]:
    path = Path(__file__).with_name("data") / "free_email_domains.txt"
    lines = (line.strip().lower() for line in path.read_text().splitlines())
    return tuple(sorted({line for line in lines if line and not line.startswith("#")}))


def _email_domain():
    return Lower(Substr(F("email"), StrIndex(F("email"), Value("@")) + 1))


def validate_rule(*, field: str, operator: str, value: Any) -> Any:
    """Check a rule makes sense; returns the normalized value. Raises ValidationFailed."""

    def bad(where: str, message: str):
        raise ValidationFailed(f"{where}: {message}", errors=[field_error(where, message)])

    custom = CUSTOM_FIELD.match(field)
    if field not in TEXT_FIELDS + SPECIAL_FIELDS and not (custom and "__" not in custom["key"]):
        bad("field", f"Unknown field {field!r}: use a lead field, custom_fields.<key> or email_domain.")
    if operator not in Operator.values:
        bad("operator", f"Unknown operator {operator!r}.")
    if operator == Operator.IS_FREE_EMAIL:
        if field not in ("email", "email_domain"):
            bad("field", "is_free_email applies to email or email_domain.")
        if value is None:
            return True
        if not isinstance(value, bool):
            bad("value", "is_free_email takes true (free address) or false (company address).")
        return value
    if operator == Operator.EXISTS:
        if value is None:
            return True
        if not isinstance(value, bool):
            bad("value", "exists takes true or false.")
        return value
    if operator in (Operator.GTE, Operator.LTE):
        if not custom and field != "owner":
            bad("operator", "gte/lte compare numbers: use them on custom_fields.<key>.")
        if isinstance(value, bool) or not isinstance(value, int | float):
            bad("value", "gte/lte need a number.")
        return value
    if operator == Operator.IN:
        if not isinstance(value, list) or not value or len(value) > MAX_IN_VALUES:
            bad("value", f"in needs a list of 1-{MAX_IN_VALUES} values.")
        for item in value:
            _check_scalar(item, bad)
        if field == "status":
            for item in value:
                if item not in LeadStatus.values:
                    bad("value", f"{item!r} is not a lead status.")
        return value
    _check_scalar(value, bad)
    if field == "status" and operator in (Operator.EQUALS, Operator.NOT_EQUALS) and value not in LeadStatus.values:
        bad("value", f"{value!r} is not a lead status.")
    if operator == Operator.CONTAINS and not isinstance(value, str):
        bad("value", "contains needs a string.")
    return value


def _check_scalar(value: Any, bad) -> None:
    if value is None or isinstance(value, list | dict):
        bad("value", "Give a string, number or boolean.")
    if isinstance(value, str) and (len(value) > 500 or "\x00" in value):
        bad("value", "At most 500 characters, no NUL.")


def _text(value: Any) -> str:
    return str(value).lower()


def _tag_condition(tags: list[str], any_of: bool) -> Q:
    from leads.filtersets import tags_condition

    return tags_condition(tags, any_of=any_of)


def rule_condition(field: str, operator: str, value: Any) -> Q:
    """The SQL condition under which a lead matches the rule."""
    custom = CUSTOM_FIELD.match(field)
    if operator == Operator.IS_FREE_EMAIL:
        is_free = Q(In(_email_domain(), list(free_email_domains())))
        return is_free if value else (Q(email__isnull=False) & ~is_free)
    if operator == Operator.EXISTS:
        present = _present(field, custom)
        return present if value else ~present
    if operator == Operator.NOT_EQUALS:
        return ~rule_condition(field, Operator.EQUALS, value) | ~_present(field, custom)
    if custom:
        key = custom["key"]
        lookup = f"custom_fields__{key}"
        if operator == Operator.EQUALS:
            return _custom_equals(key, value)
        if operator == Operator.IN:
            return reduce(lambda a, b: a | b, (_custom_equals(key, v) for v in value))
        if operator == Operator.CONTAINS:
            return Q(CustomFieldIs(key, "string")) & Q(**{f"{lookup}__icontains": value})
        if operator == Operator.GTE:
            return Q(CustomFieldIs(key, "number")) & Q(**{f"{lookup}__gte": value})
        return Q(CustomFieldIs(key, "number")) & Q(**{f"{lookup}__lte": value})
    if field == "tags":
        values = [_text(v).strip() for v in (value if operator == Operator.IN else [value])]
        return _tag_condition(values, any_of=True)
    if field == "owner":
        if operator == Operator.IN:
            return Q(owner_id__in=[v for v in value if isinstance(v, int)])
        if operator == Operator.GTE:
            return Q(owner_id__gte=value)
        if operator == Operator.LTE:
            return Q(owner_id__lte=value)
        return Q(owner_id=value) if isinstance(value, int) and not isinstance(value, bool) else Q(pk__in=[])
    column = _email_domain() if field == "email_domain" else Lower(F(field))
    if operator == Operator.EQUALS:
        return Q(Exact(column, _text(value)))
    if operator == Operator.IN:
        return Q(In(column, [_text(v) for v in value]))
    return Q(IContains(F(field) if field != "email_domain" else column, str(value)))


def _custom_equals(key: str, value: Any) -> Q:
    # Strings compare case-insensitively; numbers and booleans as JSON values. A value only ever
    # equals a value of its own JSON type (see CustomFieldIs).
    lookup = f"custom_fields__{key}"
    if isinstance(value, str):
        return Q(CustomFieldIs(key, "string")) & Q(**{f"{lookup}__iexact": value})
    return Q(CustomFieldIs(key, "boolean" if isinstance(value, bool) else "number")) & Q(**{lookup: value})


class CustomFieldIs(Func):
    """`custom_fields.<key>` holds a JSON value of this kind: "string", "number" or "boolean".

    The guard that keeps comparisons within one JSON type, the same on both databases: PostgreSQL
    orders jsonb across types (null < strings < numbers < booleans, so `lte 50` would match null
    and "few", and `gte 1` would match true), and SQLite reads true as 1 and compares text with
    numbers by its own rules.
    """

    output_field = BooleanField()
    KINDS = {
        "postgresql": {"string": ("string",), "number": ("number",), "boolean": ("boolean",)},
        "sqlite": {"string": ("text",), "number": ("integer", "real"), "boolean": ("true", "false")},
    }

    def __init__(self, key: str, kind: str):
        super().__init__(F("custom_fields"))
        self.key, self.kind = key, kind

    def _type_in(self, compiler, connection, function: str, path: str):
        column, params = compiler.compile(self.source_expressions[0])
        kinds = self.KINDS[connection.vendor][self.kind]
        placeholders = ", ".join(["%s"] * len(kinds))
        return f"{function.format(column=column)} IN ({placeholders})", (*params, path, *kinds)

    def as_postgresql(self, compiler, connection, **extra):
        return self._type_in(compiler, connection, "jsonb_typeof({column} -> %s)", self.key)

    def as_sqlite(self, compiler, connection, **extra):
        return self._type_in(compiler, connection, "json_type({column}, %s)", f"$.{json.dumps(self.key)}")

    def as_sql(self, compiler, connection, **extra):
        raise NotSupportedError("Scoring rules on custom fields need PostgreSQL or SQLite.")


def _present(field: str, custom) -> Q:
    if custom:
        key = custom["key"]
        return Q(custom_fields__has_key=key) & ~Q(**{f"custom_fields__{key}": None})
    if field == "tags":
        return ~Q(tags=[])
    if field == "owner":
        return Q(owner_id__isnull=False)
    column = "email" if field == "email_domain" else field
    return Q(**{f"{column}__isnull": False}) & ~Q(**{column: ""})


def score_expressions(rules) -> tuple[Any, Any]:
    """(score, breakdown) expressions for these rules, in rule order."""
    if not rules:
        return Value(0), Cast(Value("[]"), JSONField())
    cases = []
    parts = []
    for rule in rules:
        condition = rule_condition(rule.field, rule.operator, rule.value)
        cases.append(Case(When(condition, then=Value(rule.points)), default=Value(0), output_field=IntegerField()))
        entry = json.dumps({"rule_id": rule.pk, "name": rule.name, "points": rule.points})
        parts.append(Case(When(condition, then=Value("," + entry)), default=Value("")))
    total = reduce(lambda a, b: a + b, cases)
    score = Least(Greatest(total, Value(0)), Value(100))
    joined = parts[0] if len(parts) == 1 else Concat(*parts)
    breakdown = Cast(Concat(Value("["), Substr(joined, 2), Value("]")), JSONField())
    return score, breakdown
