"""LeadFilterSet: the single filter definition for the API list, the UI list and exports (§4.3).

Every query parameter maps one-to-one onto a database lookup. Parameters that are not filters
of this set, and malformed values, are errors: a typo must never silently widen a result.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import math
import re

import django_filters as df
from django import forms
from django.db import connection
from django.db.models import BooleanField, Q, QuerySet
from django.db.models.expressions import RawSQL
from django_filters.fields import IsoDateTimeField
from django_filters.rest_framework import FilterSet

from core.errors import InvalidFilter, UnknownFilter

from .models import Lead, LeadStatus
from .normalization import normalize_tag

# Query parameters that are not filters but are understood by the list endpoints.
LIST_CONTROL_PARAMS = frozenset({"limit", "cursor", "sort", "count"})
CUSTOM_FIELD_PARAM = re.compile(r"^custom_fields\.(?P<key>[A-Za-z0-9_\-]{1,64})$")
MAX_FILTER_VALUES = 500
MAX_SEARCH_WORDS = 10
BIGINT_MIN, BIGINT_MAX = -(2**63), 2**63 - 1


class StrictBooleanField(forms.Field):
    """Only `true`/`false` (or 1/0): anything else is an error, never 'no filter'."""

    def clean(self, value):
        if value in (None, ""):
            return None
        text = str(value).strip().lower()
        if text in ("true", "1"):
            return True
        if text in ("false", "0"):
            return False
        raise forms.ValidationError("Use true or false.", code="invalid")


class StrictBooleanFilter(df.BooleanFilter):
    field_class = StrictBooleanField


class EmptyAwareIsNullFilter(StrictBooleanFilter):
    """`field__isnull` for text columns stored as '' when absent: empty counts as null."""

    def filter(self, qs, value):
        if value is None:
            return qs
        empty = Q(**{f"{self.field_name}__isnull": True}) | Q(**{self.field_name: ""})
        return qs.filter(empty) if value else qs.exclude(empty)


class StrictIntegerField(forms.IntegerField):
    """Whole numbers in the 64-bit range: `score=75.5` is an error, never truncated to 75."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("min_value", BIGINT_MIN)
        kwargs.setdefault("max_value", BIGINT_MAX)
        super().__init__(*args, **kwargs)


class IntegerFilter(df.NumberFilter):
    field_class = StrictIntegerField

    def get_max_validator(self):
        return None  # the field's own 64-bit bounds apply


class UtcIsoDateTimeField(IsoDateTimeField):
    """RFC 3339 datetimes that exist in UTC: `9999-12-31T23:59:59-14:00` does not, and SQLite would fail."""

    def to_python(self, value):
        parsed = super().to_python(value)
        if parsed is not None:
            try:
                parsed.astimezone(dt.UTC)
            except OverflowError as exc:
                raise forms.ValidationError("Date and time out of range.", code="invalid") from exc
        return parsed


class UtcIsoDateTimeFilter(df.IsoDateTimeFilter):
    field_class = UtcIsoDateTimeField


class LowerCaseCharFilter(df.CharFilter):
    def filter(self, qs, value):
        return super().filter(qs, value.strip().lower() if isinstance(value, str) else value)


class UpperCaseCharFilter(df.CharFilter):
    def filter(self, qs, value):
        return super().filter(qs, value.strip().upper() if isinstance(value, str) else value)


class CharInFilter(df.BaseInFilter, df.CharFilter):
    transform = staticmethod(lambda v: v)

    def filter(self, qs, value):
        if value:
            if len(value) > MAX_FILTER_VALUES:
                raise InvalidFilter(f"At most {MAX_FILTER_VALUES} values in {self.field_name}__in.")
            value = [self.transform(v.strip()) for v in value]
            if not all(value):
                # `country__in=us,` must not also match every lead without a country.
                name = f"{self.field_name}__in"
                errors = [{"field": name, "code": "blank", "message": "No empty items."}]
                raise InvalidFilter(f"Empty value in {name}.", errors=errors)
        return super().filter(qs, value)


class LowerCaseCharInFilter(CharInFilter):
    transform = staticmethod(str.lower)


class UpperCaseCharInFilter(CharInFilter):
    transform = staticmethod(str.upper)


def _refuse_blank_items(name: str, value) -> None:
    # `status__in=new,` or `owner__in=,` is a typo, refused like `country__in=us,` (found by the property tests).
    if value and any(item in ("", None) for item in value):
        errors = [{"field": name, "code": "blank", "message": "No empty items."}]
        raise InvalidFilter(f"Empty value in {name}.", errors=errors)


class IntegerInFilter(df.BaseInFilter, IntegerFilter):
    def filter(self, qs, value):
        _refuse_blank_items(f"{self.field_name.removesuffix('_id')}__in", value)
        return super().filter(qs, value)


class StatusInFilter(df.BaseInFilter, df.ChoiceFilter):
    def filter(self, qs, value):
        _refuse_blank_items(f"{self.field_name}__in", value)
        return super().filter(qs, value)


class TagListField(forms.Field):
    widget = forms.MultipleHiddenInput

    def clean(self, value):
        if value in (None, "", []):
            return None
        values = value if isinstance(value, list) else [value]
        if any("\x00" in str(item) for item in values):
            raise forms.ValidationError("Null characters are not allowed.", code="null_characters")
        tags = []
        for item in values:
            tags.extend(normalize_tag(part) for part in str(item).split(",") if part.strip())
        if not tags:
            raise forms.ValidationError("Give at least one tag.", code="invalid")
        return tags


def tags_condition(tags: list[str], *, any_of: bool = False) -> Q:
    """Leads carrying all (or any) of these tags: jsonb `@>` / `?|` on PostgreSQL (GIN index),
    json_each() on SQLite. A Q, so filters and scoring rules share it."""
    if connection.vendor == "postgresql":
        return Q(tags__has_any_keys=tags) if any_of else Q(tags__contains=tags)
    conditions = [Q(_sqlite_has_tag(tag)) for tag in tags]
    combined = conditions[0] if conditions else Q(pk__in=[])
    for condition in conditions[1:]:
        combined = (combined | condition) if any_of else (combined & condition)
    return combined


def tags_contain_all(qs: QuerySet, tags: list[str]) -> QuerySet:
    return qs.filter(tags_condition(tags))


def tags_contain_any(qs: QuerySet, tags: list[str]) -> QuerySet:
    return qs.filter(tags_condition(tags, any_of=True))


def _sqlite_has_tag(tag: str) -> RawSQL:
    # The table name is a constant of the model and the tag a bound parameter: nothing user-typed is spliced.
    return RawSQL(  # noqa: S611
        f"EXISTS (SELECT 1 FROM json_each({Lead._meta.db_table}.tags) WHERE json_each.value = %s)",  # noqa: S608
        (tag,),
        output_field=BooleanField(),
    )


class AllTagsFilter(df.Filter):
    field_class = TagListField

    def filter(self, qs, value):
        return tags_contain_all(qs, value) if value else qs


class AnyTagFilter(df.Filter):
    field_class = TagListField

    def filter(self, qs, value):
        return tags_contain_any(qs, value) if value else qs


class TagsEmptyFilter(StrictBooleanFilter):
    def filter(self, qs, value):
        if value is None:
            return qs
        return qs.filter(tags=[]) if value else qs.exclude(tags=[])


SEARCH_FIELDS = ("first_name", "last_name", "email", "company")


def search(qs: QuerySet, text: str) -> QuerySet:
    """Every word must appear in one of name, email or company (case-insensitive substring).
    On PostgreSQL trigram GIN indexes on UPPER(column) serve these ILIKE-style lookups."""
    words = text.split()
    if len(words) > MAX_SEARCH_WORDS:
        # Dropping the extra words would silently widen the result.
        raise InvalidFilter(
            f"q: at most {MAX_SEARCH_WORDS} words.",
            errors=[{"field": "q", "code": "max_words", "message": f"Use at most {MAX_SEARCH_WORDS} words."}],
        )
    for word in words:
        condition = Q()
        for name in SEARCH_FIELDS:
            condition |= Q(**{f"{name}__icontains": word})
        qs = qs.filter(condition)
    return qs


def _text(name: str, *, lower: bool = False, upper: bool = False, icontains: bool = True, isnull: bool = True):
    exact_cls = LowerCaseCharFilter if lower else UpperCaseCharFilter if upper else df.CharFilter
    in_cls = LowerCaseCharInFilter if lower else UpperCaseCharInFilter if upper else CharInFilter
    out = {name: exact_cls(field_name=name), f"{name}__in": in_cls(field_name=name, lookup_expr="in")}
    if icontains:
        out[f"{name}__icontains"] = df.CharFilter(field_name=name, lookup_expr="icontains")
    if isnull:
        out[f"{name}__isnull"] = EmptyAwareIsNullFilter(field_name=name)
    return out


def _number(name: str):
    out = {
        name: IntegerFilter(field_name=name),
        f"{name}__in": IntegerInFilter(field_name=name, lookup_expr="in"),
    }
    for lookup in ("gte", "gt", "lte", "lt"):
        out[f"{name}__{lookup}"] = IntegerFilter(field_name=name, lookup_expr=lookup)
    return out


def _datetime(name: str, *, isnull: bool = False):
    out = {name: UtcIsoDateTimeFilter(field_name=name)}
    for lookup in ("gte", "gt", "lte", "lt"):
        out[f"{name}__{lookup}"] = UtcIsoDateTimeFilter(field_name=name, lookup_expr=lookup)
    if isnull:
        out[f"{name}__isnull"] = StrictBooleanFilter(field_name=name, lookup_expr="isnull")
    return out


class LeadFilterSet(FilterSet):
    """Filters of §4.3. Use `LeadFilterSet.apply(params, queryset)`: it is strict."""

    locals().update(_text("email", lower=True))
    status = df.ChoiceFilter(field_name="status", choices=LeadStatus.choices)
    status__in = StatusInFilter(field_name="status", lookup_expr="in", choices=LeadStatus.choices)
    locals().update(_text("source"))
    locals().update(_text("country", upper=True, icontains=False))
    locals().update(_text("company"))
    locals().update(_text("job_title"))
    locals().update(_text("external_id"))
    owner = IntegerFilter(field_name="owner_id")
    owner__in = IntegerInFilter(field_name="owner_id", lookup_expr="in")
    owner__isnull = StrictBooleanFilter(field_name="owner_id", lookup_expr="isnull")
    locals().update(_number("score"))
    tag = AllTagsFilter(help_text="Repeatable: leads carrying all of these tags.")
    tags = AllTagsFilter(help_text="Comma-separated: leads carrying all of these tags.")
    tags__in = AnyTagFilter(help_text="Comma-separated: leads carrying any of these tags.")
    tags__isnull = TagsEmptyFilter(help_text="true: leads without tags.")
    locals().update(_datetime("created_at"))
    locals().update(_datetime("updated_at"))
    locals().update(_datetime("scored_at", isnull=True))
    q = df.CharFilter(method="filter_q", help_text="Search words in name, email and company.")
    segment = IntegerFilter(
        method="filter_segment", help_text="Id of a saved segment (/api/v1/segments): its filters apply as well."
    )

    class Meta:
        model = Lead
        fields: list[str] = []

    def __init__(self, *args, account=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.account = account

    @classmethod
    @functools.lru_cache(maxsize=256)  # bounded: the combinations of names a client may send are not
    def _for_params(cls, names: frozenset[str]) -> type[LeadFilterSet]:
        """This filter set narrowed to the filters a request names. django-filter copies every filter
        and builds a form field for each on every request (~6 ms for ~56 filters); a filter whose
        parameter is absent does nothing, so leaving it out changes no result. One class per set of
        names, kept for the 256 combinations seen most recently."""
        narrowed = type(cls.__name__, (cls,), {})
        narrowed.base_filters = {name: cls.base_filters[name] for name in cls.base_filters if name in names}
        return narrowed

    def filter_q(self, qs, name, value):
        return search(qs, value) if value.strip() else qs

    def filter_segment(self, qs, name, value):
        if value is None:
            return qs
        from .exports import filters_to_params
        from .models import Segment

        segment = Segment.objects.for_account(self.account).filter(pk=value).first() if self.account else None
        if segment is None:
            raise InvalidFilter(
                f"segment: no segment {value} in this account.",
                errors=[{"field": "segment", "code": "not_found", "message": "No such segment."}],
            )
        # Segments cannot nest (validated when saved), so no account is passed on.
        return LeadFilterSet.apply(filters_to_params(segment.filters), qs)

    @classmethod
    def allowed_params(cls) -> frozenset[str]:
        return frozenset(cls.base_filters) | LIST_CONTROL_PARAMS

    @classmethod
    def apply(
        cls, params, queryset: QuerySet, *, extra_allowed: frozenset[str] = frozenset(), account=None
    ) -> QuerySet:
        """Validate every parameter strictly, then filter. Raises UnknownFilter / InvalidFilter.
        `account` (the queryset's) lets `segment=<id>` find the account's saved segment."""
        allowed = cls.allowed_params() | extra_allowed
        custom: list[tuple[str, str]] = []
        unknown: list[str] = []
        for name in params:
            if name in allowed:
                continue
            match = CUSTOM_FIELD_PARAM.match(name)
            if match and "__" not in match["key"]:
                custom.append((match["key"], params.get(name)))
                if "\x00" in params.get(name):
                    raise InvalidFilter(
                        f"{name}: null characters are not allowed.",
                        errors=[{"field": name, "code": "null_characters", "message": "No null characters."}],
                    )
            else:
                unknown.append(name)
        if unknown:
            raise UnknownFilter(
                f"Unknown filter parameter(s): {', '.join(sorted(unknown))}.",
                errors=[
                    {"field": n, "code": "unknown_filter", "message": "Not a filter of this list."} for n in unknown
                ],
            )
        empty = [n for n in params if n in cls.base_filters and n != "q" and params.get(n, "").strip() == ""]
        if empty:
            raise InvalidFilter(
                f"Empty value for filter(s): {', '.join(sorted(empty))}.",
                errors=[
                    {"field": n, "code": "blank", "message": "Give a value or leave the parameter out."} for n in empty
                ],
            )
        filterset = cls._for_params(frozenset(n for n in params if n in cls.base_filters))(
            params, queryset=queryset, account=account
        )
        if not filterset.is_valid():
            errors = [
                {"field": field, "code": err.get("code", "invalid"), "message": err["message"]}
                for field, errs in filterset.errors.get_json_data().items()
                for err in errs
            ]
            raise InvalidFilter("; ".join(f"{e['field']}: {e['message']}" for e in errors), errors=errors)
        qs = filterset.qs
        for key, raw in custom:
            qs = qs.filter(_custom_field_condition(key, raw))
        return qs


def _custom_field_condition(key: str, raw: str) -> Q:
    """Match the stored JSON value: as a string, or as the number/boolean/null the text spells."""
    lookup = f"custom_fields__{key}"
    condition = Q(**{lookup: raw})
    try:
        parsed = json.loads(raw, parse_constant=_reject_constant)
    except ValueError:
        return condition
    if isinstance(parsed, float) and not math.isfinite(parsed):  # 1e400: no JSON number; match as text
        return condition
    if parsed is None:
        return Q(**{f"{lookup}__isnull": False}) & Q(**{lookup: None}) | condition
    if isinstance(parsed, bool | int | float):
        return condition | Q(**{lookup: parsed})
    return condition


def _reject_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")  # NaN, Infinity: matched as text only
