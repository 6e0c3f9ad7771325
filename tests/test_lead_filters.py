"""Declarative tests of the lead list filters (§4.3): one row per filter parameter.

Each row of FILTER_CASES is a query string and the set of fixture leads it must return. A test
checks the table covers every filter of LeadFilterSet, so a new filter without a row fails.
"""

from __future__ import annotations

import datetime as dt
from contextlib import contextmanager
from unittest.mock import patch
from urllib.parse import parse_qsl

import pytest

from accounts.models import Role
from leads.filtersets import LeadFilterSet
from leads.models import Lead, Segment

from .factories import MembershipFactory, UserFactory

UTC = dt.UTC


def at(day: int, month: int = 1, **extra) -> dt.datetime:
    return dt.datetime(2025, month, day, 12, 0, 0, tzinfo=UTC) + dt.timedelta(**extra)


@contextmanager
def explicit_timestamps():
    """Let a test write created_at/updated_at itself (auto_now/auto_now_add would overwrite them)."""
    with (
        patch.object(Lead._meta.get_field("created_at"), "auto_now_add", False),
        patch.object(Lead._meta.get_field("updated_at"), "auto_now", False),
    ):
        yield


# key -> row. `owner` names a user fixture ("owner"/"member") or None.
# fmt: off
LEADS: dict[str, dict] = {
    "ada": dict(
        email="ada@lovelace.io", first_name="Ada", last_name="Lovelace", company="Analytical Engines",
        job_title="Engineer", source="web_form", country="GB", status="new", score=90, tags=["vip", "eng"],
        owner="owner", external_id=None, custom_fields={"plan": "gold", "seats": 10, "active": True},
        created_at=at(1), updated_at=at(1, 2), scored_at=at(1, 3),
    ),
    "alan": dict(
        email="alan@turing.org", first_name="Alan", last_name="Turing", company="Bletchley Park",
        job_title="Cryptanalyst", source="import", country="GB", status="contacted", score=75, tags=["eng"],
        owner="member", external_id="crm-1", custom_fields={"plan": "silver", "seats": 3, "active": False},
        created_at=at(2), updated_at=at(2, 2), scored_at=at(2, 3),
    ),
    "grace": dict(
        email="grace@navy.mil", first_name="Grace", last_name="Hopper", company="US Navy",
        job_title="Rear Admiral", source="partner:acme", country="US", status="qualified", score=60,
        tags=["vip"], owner="owner", external_id="crm-2",
        custom_fields={"plan": "gold", "seats": 2.5, "region": None},
        created_at=at(3), updated_at=at(3, 2), scored_at=None,
    ),
    "linus": dict(
        email=None, first_name="Linus", last_name="Torvalds", company="", job_title="", source="",
        country="FI", status="unqualified", score=40, tags=[], owner=None, external_id="crm-3",
        custom_fields={}, created_at=at(4), updated_at=at(4, 2), scored_at=None,
    ),
    "margaret": dict(
        email="margaret@nasa.gov", first_name="Margaret", last_name="Hamilton", company="NASA",
        job_title="Director of Software Engineering", source="web_form", country="US", status="converted",
        score=100, tags=["vip", "eng", "space"], owner=None, external_id=None,
        custom_fields={"plan": "10", "active": True},
        created_at=at(5), updated_at=at(5, 2), scored_at=at(5, 3),
    ),
    "katherine": dict(
        email="katherine@nasa.gov", first_name="Katherine", last_name="Johnson", company="NASA",
        job_title="Mathematician", source="import", country="", status="lost", score=0, tags=["space"],
        owner="member", external_id="crm-4", custom_fields={"seats": 10},
        created_at=at(6), updated_at=at(6, 2), scored_at=None,
    ),
    "barbara": dict(
        email="barbara@mit.edu", first_name="Barbara", last_name="Liskov", company="MIT",
        job_title="Professor", source="", country="US", status="new", score=50, tags=[], owner=None,
        external_id=None, custom_fields={"active": "yes"},
        created_at=at(7), updated_at=at(7, 2), scored_at=None,
    ),
    "dennis": dict(
        # Sub-second timestamps: filters must compare them exactly on SQLite (text) and PostgreSQL.
        email="dennis@bell-labs.com", first_name="Dennis", last_name="Ritchie", company="Bell Labs",
        job_title="Engineer", source="partner:acme", country="US", status="new", score=75,
        tags=["eng", "unix"], owner="owner", external_id="crm-5", custom_fields={"plan": "silver"},
        created_at=at(8, milliseconds=250), updated_at=at(8, 2, milliseconds=250),
        scored_at=at(8, 3, milliseconds=250),
    ),
}
# fmt: on
ALL = frozenset(LEADS)


def without(*keys: str) -> frozenset[str]:
    return ALL - set(keys)


# (query string, expected keys). `{owner}` and `{member}` are replaced by those users' ids.
FILTER_CASES: list[tuple[str, set[str] | frozenset[str]]] = [
    # email: exact and __in are case-insensitive (stored lower-cased)
    ("email=ada@lovelace.io", {"ada"}),
    ("email=ADA@Lovelace.IO", {"ada"}),
    ("email__in=ada@lovelace.io,GRACE@navy.mil,nobody@example.com", {"ada", "grace"}),
    ("email__icontains=NASA", {"margaret", "katherine"}),
    ("email__isnull=true", {"linus"}),
    ("email__isnull=false", without("linus")),
    # status choices
    ("status=new", {"ada", "barbara", "dennis"}),
    ("status=lost", {"katherine"}),
    ("status__in=contacted,lost", {"alan", "katherine"}),
    # source: '' counts as null
    ("source=web_form", {"ada", "margaret"}),
    ("source__in=import,partner:acme", {"alan", "katherine", "grace", "dennis"}),
    ("source__icontains=PARTNER", {"grace", "dennis"}),
    ("source__isnull=true", {"linus", "barbara"}),
    ("source__isnull=false", without("linus", "barbara")),
    # country: case-insensitive, '' counts as null
    ("country=gb", {"ada", "alan"}),
    ("country=GB", {"ada", "alan"}),
    ("country__in=us,Fi", {"grace", "margaret", "barbara", "dennis", "linus"}),
    ("country__isnull=true", {"katherine"}),
    ("country__isnull=false", without("katherine")),
    # company
    ("company=NASA", {"margaret", "katherine"}),
    ("company__in=NASA,MIT", {"margaret", "katherine", "barbara"}),
    ("company__icontains=park", {"alan"}),
    ("company__isnull=true", {"linus"}),
    ("company__isnull=false", without("linus")),
    # job_title
    ("job_title=Engineer", {"ada", "dennis"}),
    ("job_title__in=Professor,Mathematician", {"barbara", "katherine"}),
    ("job_title__icontains=engineer", {"ada", "margaret", "dennis"}),
    ("job_title__isnull=true", {"linus"}),
    # external_id: NULL is null
    ("external_id=crm-1", {"alan"}),
    ("external_id__in=crm-2,crm-3", {"grace", "linus"}),
    ("external_id__icontains=CRM", {"alan", "grace", "linus", "katherine", "dennis"}),
    ("external_id__isnull=true", {"ada", "margaret", "barbara"}),
    ("external_id__isnull=false", {"alan", "grace", "linus", "katherine", "dennis"}),
    # owner
    ("owner={owner}", {"ada", "grace", "dennis"}),
    ("owner={member}", {"alan", "katherine"}),
    ("owner__in={owner},{member}", {"ada", "grace", "dennis", "alan", "katherine"}),
    ("owner__isnull=true", {"linus", "margaret", "barbara"}),
    ("owner__isnull=false", {"ada", "grace", "dennis", "alan", "katherine"}),
    # score
    ("score=75", {"alan", "dennis"}),
    ("score__in=0,100", {"katherine", "margaret"}),
    ("score__gte=75", {"ada", "alan", "margaret", "dennis"}),
    ("score__gt=75", {"ada", "margaret"}),
    ("score__lte=40", {"linus", "katherine"}),
    ("score__lt=40", {"katherine"}),
    ("score__gte=50&score__lt=90", {"alan", "grace", "barbara", "dennis"}),
    # tags
    ("tag=vip", {"ada", "grace", "margaret"}),
    ("tag=VIP", {"ada", "grace", "margaret"}),
    ("tag=vip&tag=eng", {"ada", "margaret"}),
    ("tag=vip&tag=eng&tag=space", {"margaret"}),
    ("tag=nope", set()),
    ("tags=vip,eng", {"ada", "margaret"}),
    ("tags=eng", {"ada", "alan", "margaret", "dennis"}),
    ("tags__in=space,unix", {"margaret", "katherine", "dennis"}),
    ("tags__in=vip", {"ada", "grace", "margaret"}),
    ("tags__isnull=true", {"linus", "barbara"}),
    ("tags__isnull=false", without("linus", "barbara")),
    # created_at (Z, explicit offsets and sub-second precision)
    ("created_at=2025-01-03T12:00:00Z", {"grace"}),
    ("created_at=2025-01-08T12:00:00.250Z", {"dennis"}),
    ("created_at__gte=2025-01-06T12:00:00Z", {"katherine", "barbara", "dennis"}),
    ("created_at__gte=2025-01-06T14:00:00%2B02:00", {"katherine", "barbara", "dennis"}),
    ("created_at__gt=2025-01-06T12:00:00Z", {"barbara", "dennis"}),
    ("created_at__gt=2025-01-08T12:00:00Z", {"dennis"}),
    ("created_at__lte=2025-01-02T12:00:00Z", {"ada", "alan"}),
    ("created_at__lt=2025-01-02T12:00:00Z", {"ada"}),
    ("created_at__lt=2025-01-08T12:00:00.250Z", without("dennis")),
    # updated_at
    ("updated_at=2025-02-05T12:00:00Z", {"margaret"}),
    ("updated_at__gte=2025-02-07T12:00:00Z", {"barbara", "dennis"}),
    ("updated_at__gt=2025-02-07T12:00:00Z", {"dennis"}),
    ("updated_at__lte=2025-02-01T12:00:00Z", {"ada"}),
    ("updated_at__lt=2025-02-03T12:00:00Z", {"ada", "alan"}),
    # scored_at (nullable)
    ("scored_at=2025-03-02T12:00:00Z", {"alan"}),
    ("scored_at__gte=2025-03-05T12:00:00Z", {"margaret", "dennis"}),
    ("scored_at__gt=2025-03-05T12:00:00Z", {"dennis"}),
    ("scored_at__lte=2025-03-02T12:00:00Z", {"ada", "alan"}),
    ("scored_at__lt=2025-03-02T12:00:00Z", {"ada"}),
    ("scored_at__isnull=true", {"grace", "linus", "katherine", "barbara"}),
    ("scored_at__isnull=false", {"ada", "alan", "margaret", "dennis"}),
    # q: every word in one of first/last name, email, company; case-insensitive
    ("q=nasa", {"margaret", "katherine"}),
    ("q=Engines", {"ada"}),
    ("q=lovelace.io", {"ada"}),
    ("q=alan%20turing", {"alan"}),
    ("q=hopper+navy", {"grace"}),
    ("q=ada%20nasa", set()),
    ("q=" + "%20".join(["a"] * 9 + ["lovelace"]), {"ada"}),  # ten words is the most
    ("q=", ALL),
    # custom_fields.<key>: string, number, boolean values
    ("custom_fields.plan=gold", {"ada", "grace"}),
    ("custom_fields.plan=silver", {"alan", "dennis"}),
    ("custom_fields.plan=10", {"margaret"}),
    ("custom_fields.seats=10", {"ada", "katherine"}),
    ("custom_fields.seats=2.5", {"grace"}),
    ("custom_fields.active=true", {"ada", "margaret"}),
    ("custom_fields.active=false", {"alan"}),
    ("custom_fields.active=yes", {"barbara"}),
    ("custom_fields.region=null", {"grace"}),
    ("custom_fields.missing=x", set()),
    ("custom_fields.seats=1e400", set()),  # not a finite JSON number: compared as text, never an error
    ("custom_fields.seats=NaN", set()),
    ("custom_fields.plan=[1]", set()),
    # filters combine with AND
    ("status=new&country=us", {"barbara", "dennis"}),
    # segment=<id>: the saved filters (status=new, see the test below) and the query's own, all applied
    ("segment={segment}", {"ada", "barbara", "dennis"}),
    ("segment={segment}&country=us", {"barbara", "dennis"}),
    ("custom_fields.plan=gold&tag=eng", {"ada"}),
]


# (query string, status, code, the parameter the error names)
ERROR_CASES: list[tuple[str, int, str, str]] = [
    ("statuz=new", 400, "unknown_filter", "statuz"),
    ("email__iexact=ada@lovelace.io", 400, "unknown_filter", "email__iexact"),
    ("score__icontains=5", 400, "unknown_filter", "score__icontains"),
    ("country__icontains=g", 400, "unknown_filter", "country__icontains"),
    ("custom_fields.a__b=x", 400, "unknown_filter", "custom_fields.a__b"),
    ("custom_fields.=x", 400, "unknown_filter", "custom_fields."),
    ("score__gte=abc", 400, "invalid_filter", "score__gte"),
    ("score__in=1,x", 400, "invalid_filter", "score__in"),
    # integers are never truncated: score=75.5 must not match 75
    ("score=75.5", 400, "invalid_filter", "score"),
    ("score__in=75,2.5", 400, "invalid_filter", "score__in"),
    ("owner=1.5", 400, "invalid_filter", "owner"),
    ("owner=99999999999999999999", 400, "invalid_filter", "owner"),
    ("owner__in=1,99999999999999999999", 400, "invalid_filter", "owner__in"),
    # an empty item in a list would also match every lead where the column is blank
    ("country__in=us,", 400, "invalid_filter", "country__in"),
    ("company__in=NASA,,MIT", 400, "invalid_filter", "company__in"),
    # more words than the search takes would silently widen the result if dropped
    ("q=" + "%20".join(["ada"] * 10 + ["nasa"]), 400, "invalid_filter", "q"),
    # null characters (PostgreSQL text and jsonb refuse them)
    ("tag=%00", 400, "invalid_filter", "tag"),
    ("tags__in=a%00", 400, "invalid_filter", "tags__in"),
    ("custom_fields.plan=a%00b", 400, "invalid_filter", "custom_fields.plan"),
    ("q=%00", 400, "invalid_filter", "q"),
    ("status=bogus", 400, "invalid_filter", "status"),
    ("status__in=new,bogus", 400, "invalid_filter", "status__in"),
    ("created_at__gte=yesterday", 400, "invalid_filter", "created_at__gte"),
    ("scored_at=2025-13-01T00:00:00Z", 400, "invalid_filter", "scored_at"),
    ("created_at__gte=9999-12-31T23:59:59-14:00", 400, "invalid_filter", "created_at__gte"),
    ("updated_at__lte=0001-01-01T00:00:00%2B14:00", 400, "invalid_filter", "updated_at__lte"),
    ("owner__isnull=maybe", 400, "invalid_filter", "owner__isnull"),
    ("tags__isnull=yes", 400, "invalid_filter", "tags__isnull"),
    ("owner=abc", 400, "invalid_filter", "owner"),
    ("email=", 400, "invalid_filter", "email"),
    ("email=%20%20", 400, "invalid_filter", "email"),
    ("tag=", 400, "invalid_filter", "tag"),
    ("tags=,", 400, "invalid_filter", "tags"),
    ("sort=bogus", 400, "invalid_parameter", "sort"),
    ("sort=score,-score", 400, "invalid_parameter", "sort"),
    ("sort=id", 400, "invalid_parameter", "sort"),
    ("limit=0", 400, "invalid_parameter", "limit"),
    ("limit=501", 400, "invalid_parameter", "limit"),
    ("limit=ten", 400, "invalid_parameter", "limit"),
    ("count=perhaps", 400, "invalid_parameter", "count"),
]


@pytest.fixture
def member(account):
    return MembershipFactory(account=account, user=UserFactory(email="member@acme.test"), role=Role.MEMBER).user


@pytest.fixture
def users(owner, member) -> dict[str, object]:
    return {"owner": owner, "member": member}


@pytest.fixture
def leads(account, other_account, users) -> dict:
    """The eight fixture leads, plus a twin of each in another account that must never show up."""
    other_owner = MembershipFactory(account=other_account, role=Role.OWNER).user
    rows = []
    for spec in LEADS.values():
        values = dict(spec)
        owner_name = values.pop("owner")
        rows.append(Lead(account=account, owner=users[owner_name] if owner_name else None, **values))
        rows.append(Lead(account=other_account, owner=other_owner if owner_name else None, **values))
    with explicit_timestamps():
        Lead.objects.bulk_create(rows)
    return {
        "by_id": {str(lead.pk): key for lead, key in zip(rows[::2], LEADS, strict=True)},
        "foreign_ids": {str(lead.pk) for lead in rows[1::2]},
    }


def list_keys(api, leads, query: str) -> set[str]:
    response = api.get(f"/api/v1/leads?{query}&limit=500")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["has_more"] is False
    ids = [row["id"] for row in body["results"]]
    assert len(ids) == len(set(ids))
    assert not set(ids) & leads["foreign_ids"], "another account's lead leaked into the list"
    return {leads["by_id"][i] for i in ids}


def filter_names(query: str) -> set[str]:
    return {name for name, _ in parse_qsl(query, keep_blank_values=True)}


def test_filter_table_covers_every_filter_of_the_filterset():
    covered = set().union(*(filter_names(query) for query, _ in FILTER_CASES))
    missing = set(LeadFilterSet.base_filters) - covered
    assert not missing, f"filters without a row in FILTER_CASES: {sorted(missing)}"
    assert any(name.startswith("custom_fields.") for name in covered)


def test_filter_table_rows_name_only_known_filters():
    known = set(LeadFilterSet.base_filters)
    for query, _ in FILTER_CASES:
        for name in filter_names(query):
            assert name in known or name.startswith("custom_fields."), f"{name} in {query!r} is not a filter"


@pytest.mark.django_db
@pytest.mark.parametrize(("query", "expected"), FILTER_CASES, ids=[query for query, _ in FILTER_CASES])
def test_filter_returns_exactly_the_matching_leads_of_the_account(api, account, leads, users, query, expected):
    segment = Segment.objects.create(account=account, name="new leads", filters={"status": "new"})
    query = query.format(segment=segment.pk, **{name: user.pk for name, user in users.items()})
    assert list_keys(api, leads, query) == set(expected)


@pytest.mark.django_db
def test_no_filter_lists_every_lead_of_the_account_and_none_of_another(api, leads):
    assert list_keys(api, leads, "") == set(ALL)


@pytest.mark.django_db
def test_other_account_sees_only_its_own_leads_with_the_same_filter(other_api, leads):
    response = other_api.get("/api/v1/leads?status=new&limit=500")
    assert response.status_code == 200
    ids = {row["id"] for row in response.json()["results"]}
    assert len(ids) == 3
    assert ids <= leads["foreign_ids"]


@pytest.mark.django_db
@pytest.mark.parametrize(("query", "status", "code", "param"), ERROR_CASES, ids=[c[0] for c in ERROR_CASES])
def test_malformed_or_unknown_parameter_is_rejected_with_its_code(api, leads, query, status, code, param):
    response = api.get(f"/api/v1/leads?{query}")
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == code
    assert "results" not in body
    named = param in body["detail"] or any(e.get("field") == param for e in body.get("errors", []))
    assert named, f"the error does not name {param!r}: {body}"


@pytest.mark.django_db
def test_unknown_filter_error_lists_the_unknown_parameter_in_errors(api, leads):
    body = api.get("/api/v1/leads?statuz=new&status=new").json()
    assert body["code"] == "unknown_filter"
    assert "statuz" in body["detail"]
    assert [e["field"] for e in body["errors"]] == ["statuz"]


@pytest.mark.django_db
def test_unknown_filter_is_rejected_even_with_a_valid_filter_beside_it(api, leads):
    response = api.get("/api/v1/leads?status=new&statuz=lost")
    assert response.status_code == 400
    assert response.json()["code"] == "unknown_filter"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("query", "expected"),
    [("", 8), ("status=new", 3), ("tag=vip&country=us", 2), ("custom_fields.plan=gold", 2), ("q=nobody", 0)],
)
def test_count_true_reports_total_count_of_the_filtered_set(api, leads, query, expected):
    response = api.get(f"/api/v1/leads?{query}&count=true&limit=1")
    assert response.status_code == 200
    body = response.json()
    assert body["total_count"] == expected
    assert len(body["results"]) == min(1, expected)
    assert body["has_more"] is (expected > 1)


@pytest.mark.django_db
@pytest.mark.parametrize("query", ["", "count=false", "count=0"])
def test_total_count_is_absent_unless_asked_for(api, leads, query):
    body = api.get(f"/api/v1/leads?{query}").json()
    assert "total_count" not in body
