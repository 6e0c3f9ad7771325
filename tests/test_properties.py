"""Property-based tests with hypothesis (issue 11): normalization, strict filter parsing, keyset cursors
and rule scoring hold for generated inputs, not only for the examples the other tests pick.

Every test is derandomized (the same examples on every run), so CI cannot flake on a new example;
`LEADBASE_PROPERTY_EXAMPLES` raises the example count for a longer local run (docs/security.md, "Fuzzing").
"""

from __future__ import annotations

import datetime as dt
import os
import string
import uuid

import phonenumbers
import pycountry
import pytest
from django.http import QueryDict
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from core.errors import ApplicationError, InvalidCursor
from core.keyset import SortKey, decode_cursor, encode_cursor, parse_sort
from leads import normalization as norm
from leads.filtersets import LeadFilterSet
from leads.models import Lead, LeadStatus
from scoring.compiler import free_email_domains, score_expressions, validate_rule
from scoring.models import ScoringRule

from .factories import AccountFactory

EXAMPLES = int(os.environ.get("LEADBASE_PROPERTY_EXAMPLES", "60"))
PROPERTY = settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None)
# DB-backed properties share the test's transaction across examples (each example cleans up after itself).
DB_PROPERTY = settings(
    max_examples=max(EXAMPLES // 3, 10),
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

ALPHA2 = sorted(c.alpha_2 for c in pycountry.countries)
padding = st.sampled_from(["", " ", "  ", "\t", "\n"])


def random_case(text: str) -> st.SearchStrategy[str]:
    return st.lists(st.booleans(), min_size=len(text), max_size=len(text)).map(
        lambda flags: "".join(ch.upper() if up else ch.lower() for ch, up in zip(text, flags, strict=True))
    )


# --- normalization ------------------------------------------------------------------------------


@PROPERTY
@given(st.one_of(st.none(), st.text()))
def test_email_normalization_is_lower_trimmed_and_idempotent(value):
    once = norm.normalize_email(value)
    assert norm.normalize_email(once) == once
    if value is None or not value.strip():
        assert once is None
    else:
        assert once == value.strip().lower()


@PROPERTY
@given(st.sampled_from(ALPHA2).flatmap(random_case), padding, padding)
def test_country_normalization_is_upper_case_alpha_2(code, before, after):
    once = norm.normalize_country(before + code + after)
    assert once == code.upper()
    assert norm.normalize_country(once) == once


@PROPERTY
@given(st.text(alphabet=string.ascii_letters + string.digits + " -", min_size=1, max_size=5))
def test_a_country_that_is_not_alpha_2_is_refused(value):
    assume(value.strip() and value.strip().upper() not in set(ALPHA2))
    with pytest.raises(ValueError):
        norm.normalize_country(value)


REGIONS = sorted(r for r in phonenumbers.SUPPORTED_REGIONS if phonenumbers.example_number(r) is not None)


@PROPERTY
@given(
    st.sampled_from(REGIONS),
    st.sampled_from([phonenumbers.PhoneNumberFormat.NATIONAL, phonenumbers.PhoneNumberFormat.INTERNATIONAL]),
    padding,
)
def test_a_parseable_phone_becomes_e164_in_any_written_form(region, style, pad):
    number = phonenumbers.example_number(region)
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    written = pad + phonenumbers.format_number(number, style) + pad
    assert norm.normalize_phone(written, region) == e164
    assert norm.normalize_phone(e164) == e164  # E.164 needs no country, and is a fixed point


@PROPERTY
@given(st.text(max_size=40), st.sampled_from(["", "DE", "US", "GB"]))
def test_phone_normalization_is_idempotent_and_never_raises(value, country):
    once = norm.normalize_phone(value, country)
    assert norm.normalize_phone(once, country) == once
    assert once == "" or once.startswith("+") or once == value.strip()


@PROPERTY
@given(st.lists(st.text(max_size=12), max_size=12))
def test_tags_are_lower_case_trimmed_unique_and_idempotent(values):
    tags = norm.normalize_tags(values)
    assert norm.normalize_tags(tags) == tags
    assert len(set(tags)) == len(tags)
    assert all(tag and tag == tag.strip().lower() for tag in tags)
    assert set(tags) == {norm.normalize_tag(v) for v in values} - {""}


# --- strict filter parsing ----------------------------------------------------------------------

KNOWN = LeadFilterSet.allowed_params()
NAMES = st.text(alphabet=string.ascii_lowercase + string.digits + "_.-", min_size=1, max_size=24)


def apply_filters(pairs: list[tuple[str, str]], account) -> ApplicationError | None:
    params = QueryDict(mutable=True)
    for name, value in pairs:
        params.appendlist(name, value)
    try:
        list(LeadFilterSet.apply(params, Lead.objects.filter(account=account), account=account)[:1])
    except ApplicationError as exc:
        return exc
    return None


@pytest.mark.django_db
@DB_PROPERTY
@given(name=NAMES, value=st.text(max_size=20))
def test_an_unknown_filter_name_is_400_unknown_filter(name, value):
    assume(name not in KNOWN and not name.startswith("custom_fields."))
    error = apply_filters([(name, value), ("status", "new")], AccountFactory())
    assert error is not None and (error.status, error.code) == (400, "unknown_filter")
    assert [e["field"] for e in error.errors] == [name]


MALFORMED = {
    "score": st.text(max_size=8).filter(lambda v: not v.strip().lstrip("+-").isdigit()),
    "score__gte": st.sampled_from(["1.5", "ten", "1e3", "0x10", "--1", "[1]"]),
    "created_at__gte": st.text(alphabet="0123456789-:TZ ", min_size=1, max_size=12),
    "status": st.text(max_size=10).filter(lambda v: v.strip() not in LeadStatus.values),
    "owner__isnull": st.text(max_size=6).filter(lambda v: v.strip().lower() not in ("true", "false")),
    "owner": st.text(alphabet="abc.,-", min_size=1, max_size=5),
    "status__in": st.text(alphabet="xyz,", min_size=1, max_size=8),
}


@pytest.mark.django_db
@DB_PROPERTY
@given(data=st.data(), name=st.sampled_from(sorted(MALFORMED)))
def test_a_malformed_filter_value_is_400_invalid_filter(data, name):
    value = data.draw(MALFORMED[name], label="value")
    if name == "created_at__gte":
        try:
            dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
            assume(False)  # a value that does parse is not malformed
        except ValueError:
            pass
    error = apply_filters([(name, value)], AccountFactory())
    assert error is not None, f"{name}={value!r} was accepted"
    assert (error.status, error.code) == (400, "invalid_filter"), (error.code, error.detail)


@pytest.mark.django_db
@DB_PROPERTY
@given(
    pairs=st.lists(
        st.tuples(st.one_of(st.sampled_from(sorted(KNOWN)), NAMES, NAMES.map("custom_fields.{}".format)), st.text()),
        max_size=4,
    )
)
def test_any_query_string_is_either_applied_or_a_400_never_a_crash(pairs):
    # Any exception other than an ApplicationError escapes and fails the test: a 500 in the API.
    error = apply_filters(pairs, AccountFactory())
    assert error is None or error.status == 400


@pytest.mark.django_db
@DB_PROPERTY
@given(name=NAMES, value=st.text(alphabet=string.printable, max_size=10))
def test_the_api_answers_random_filters_with_200_or_a_400_problem(api, name, value):
    response = api.get("/api/v1/leads", {name: value})
    assert response.status_code in (200, 400), response.content
    if response.status_code == 400:
        assert response["Content-Type"].startswith("application/problem+json")
        assert response.json()["code"] in {"unknown_filter", "invalid_filter", "invalid_parameter", "invalid_cursor"}


# --- keyset cursors -----------------------------------------------------------------------------

SORTS = {"created_at": False, "score": False, "email": True, "company": False, "last_name": False}
sort_strings = st.lists(st.sampled_from(sorted(SORTS)), min_size=1, max_size=3, unique=True).flatmap(
    lambda names: st.tuples(*[st.sampled_from([n, "-" + n]) for n in names]).map(",".join)
)
cursor_values = st.one_of(
    st.none(),
    st.integers(-(2**53), 2**53),
    st.text(max_size=30),
    st.datetimes(timezones=st.just(dt.UTC)),
    st.uuids(),
)


def row_values_for(keys) -> st.SearchStrategy[list]:
    return st.lists(cursor_values, min_size=len(keys), max_size=len(keys))


@PROPERTY
@given(data=st.data(), sort=sort_strings, account_id=st.integers(1, 10**6))
def test_a_cursor_round_trips_its_position(data, sort, account_id):
    keys = parse_sort(sort, allowed=SORTS, default="-created_at")
    values = data.draw(row_values_for(keys))
    scope = f"leads:{account_id}"
    cursor = encode_cursor(scope=scope, keys=keys, row_values=values)
    expected = [str(v) if isinstance(v, uuid.UUID) else v for v in values]
    assert decode_cursor(cursor, scope=scope, keys=keys) == expected


@PROPERTY
@given(data=st.data(), sort=sort_strings, position=st.integers(0, 10**6), replacement=st.characters(codec="ascii"))
def test_any_tampered_cursor_is_invalid(data, sort, position, replacement):
    keys = parse_sort(sort, allowed=SORTS, default="-created_at")
    cursor = encode_cursor(scope="leads:1", keys=keys, row_values=data.draw(row_values_for(keys)))
    index = position % len(cursor)
    assume(cursor[index] != replacement)
    tampered = cursor[:index] + replacement + cursor[index + 1 :]
    with pytest.raises(InvalidCursor):
        decode_cursor(tampered, scope="leads:1", keys=keys)


@PROPERTY
@given(data=st.data(), sort=sort_strings, other_sort=sort_strings, a=st.integers(1, 10**6), b=st.integers(1, 10**6))
def test_a_cursor_from_another_sort_or_account_is_refused(data, sort, other_sort, a, b):
    keys = parse_sort(sort, allowed=SORTS, default="-created_at")
    other_keys = parse_sort(other_sort, allowed=SORTS, default="-created_at")
    cursor = encode_cursor(scope=f"leads:{a}", keys=keys, row_values=data.draw(row_values_for(keys)))
    if a != b:
        with pytest.raises(InvalidCursor):
            decode_cursor(cursor, scope=f"leads:{b}", keys=keys)
    if [k.token for k in keys] != [k.token for k in other_keys]:
        with pytest.raises(InvalidCursor):
            decode_cursor(cursor, scope=f"leads:{a}", keys=other_keys)


@PROPERTY
@given(st.text(max_size=80))
def test_random_text_is_never_a_cursor(text):
    with pytest.raises(InvalidCursor):
        decode_cursor(text, scope="leads:1", keys=(SortKey("created_at", True), SortKey("id", True)))


@pytest.mark.django_db
def test_the_api_refuses_a_cursor_from_another_account_or_sort(api, other_api):
    for i in range(3):
        assert api.post("/api/v1/leads", {"email": f"c{i}@example.test"}, format="json").status_code == 201
        assert other_api.post("/api/v1/leads", {"email": f"c{i}@example.test"}, format="json").status_code == 201
    cursor = api.get("/api/v1/leads", {"limit": 1}).json()["next_cursor"]
    assert cursor
    for client, params in [(other_api, {"cursor": cursor}), (api, {"cursor": cursor, "sort": "email"})]:
        response = client.get("/api/v1/leads", params)
        assert (response.status_code, response.json()["code"]) == (400, "invalid_cursor")


# --- scoring ------------------------------------------------------------------------------------

DOMAINS = ["gmail.com", "yahoo.com", "acme.test", "corp.example"]
COMPANIES = ["Acme", "acme corp", "Globex", ""]
COUNTRIES = ["DE", "US", "FR", ""]
TAGS = ["hot", "cold", "vip"]
FREE = set(free_email_domains())

leads_strategy = st.lists(
    st.fixed_dictionaries(
        {
            "domain": st.sampled_from(DOMAINS),
            "company": st.sampled_from(COMPANIES),
            "country": st.sampled_from(COUNTRIES),
            "status": st.sampled_from(LeadStatus.values),
            "tags": st.lists(st.sampled_from(TAGS), unique=True, max_size=3),
            "size": st.one_of(st.none(), st.integers(0, 500), st.just("many"), st.booleans()),
        }
    ),
    min_size=1,
    max_size=6,
)

rule_strategy = st.one_of(
    st.tuples(st.just("country"), st.sampled_from(["equals", "not_equals"]), st.sampled_from(["de", "US", "fr"])),
    st.tuples(st.just("country"), st.just("in"), st.lists(st.sampled_from(["DE", "us", "FR"]), min_size=1, max_size=2)),
    st.tuples(st.sampled_from(["country", "company"]), st.just("exists"), st.booleans()),
    st.tuples(st.just("company"), st.just("contains"), st.sampled_from(["acme", "CORP", "glo", "x"])),
    st.tuples(st.just("status"), st.sampled_from(["equals", "not_equals"]), st.sampled_from(LeadStatus.values)),
    st.tuples(st.just("email_domain"), st.sampled_from(["equals", "not_equals"]), st.sampled_from(DOMAINS)),
    st.tuples(st.just("email_domain"), st.just("is_free_email"), st.booleans()),
    st.tuples(st.just("tags"), st.sampled_from(["equals", "contains"]), st.sampled_from(TAGS)),
    st.tuples(st.just("tags"), st.just("in"), st.lists(st.sampled_from(TAGS), min_size=1, max_size=2)),
    st.tuples(st.just("custom_fields.size"), st.sampled_from(["gte", "lte"]), st.integers(0, 500)),
    st.tuples(st.just("custom_fields.size"), st.just("exists"), st.booleans()),
).flatmap(lambda t: st.tuples(st.just(t), st.integers(-100, 100), st.booleans()))


def python_matches(lead: dict, field: str, operator: str, value) -> bool:
    """The rule semantics of §4.9, written plainly in Python, independent of the SQL compiler."""
    if field == "custom_fields.size":
        size = lead["size"]
        if operator == "exists":
            return (size is not None) == value
        is_number = isinstance(size, int) and not isinstance(size, bool)
        return is_number and (size >= value if operator == "gte" else size <= value)
    if field == "tags":
        wanted = value if operator == "in" else [value]
        return any(w.lower() in lead["tags"] for w in wanted)
    text = lead["domain"] if field == "email_domain" else lead[field]
    if operator == "is_free_email":
        return (lead["domain"] in FREE) == value
    if operator == "exists":
        return (text != "") == value
    if operator == "equals":
        return text.lower() == str(value).lower()
    if operator == "not_equals":
        return text.lower() != str(value).lower() or text == ""
    if operator == "in":
        return text.lower() in {str(v).lower() for v in value}
    return str(value).lower() in text.lower()  # contains


@pytest.mark.django_db
@DB_PROPERTY
@given(leads=leads_strategy, rules=st.lists(rule_strategy, max_size=6))
def test_score_is_the_clamped_sum_of_matching_active_rules(leads, rules):
    account = AccountFactory()
    rows = []
    for i, lead in enumerate(leads):
        custom = {} if lead["size"] is None else {"size": lead["size"]}
        rows.append(
            Lead(
                account=account,
                email=f"p{i}@{lead['domain']}",
                company=lead["company"],
                country=lead["country"],
                status=lead["status"],
                tags=lead["tags"],
                custom_fields=custom,
            )
        )
    Lead.objects.bulk_create(rows)
    active = [
        ScoringRule(
            pk=n + 1,
            account=account,
            name=f"r{n}",
            field=field,
            operator=operator,
            value=validate_rule(field=field, operator=operator, value=value),
            points=points,
            active=True,
        )
        for n, ((field, operator, value), points, is_active) in enumerate(rules)
        if is_active
    ]
    score, breakdown = score_expressions(active)
    got = {
        row.email: (row.s, row.b)
        for row in Lead.objects.filter(account=account).annotate(s=score, b=breakdown).only("email")
    }
    for i, lead in enumerate(leads):
        hits = [r for r in active if python_matches(lead, r.field, r.operator, r.value)]
        expected = max(0, min(100, sum(r.points for r in hits)))
        s, b = got[f"p{i}@{lead['domain']}"]
        assert 0 <= s <= 100
        assert s == expected, (lead, [(r.field, r.operator, r.value, r.points) for r in active])
        assert [entry["rule_id"] for entry in b] == [r.pk for r in hits]
