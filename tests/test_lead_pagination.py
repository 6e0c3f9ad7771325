"""Keyset pagination of the lead list (§4.3): complete walks under concurrent writes, the Link
header, cursor integrity, constant query counts and (on PostgreSQL) index use."""

from __future__ import annotations

import datetime as dt
import functools
import random
import uuid
from contextlib import contextmanager
from unittest.mock import patch
from urllib.parse import parse_qs, urlsplit

import pytest
from django.db import connection
from django.http import QueryDict
from django.test.utils import CaptureQueriesContext

from accounts.models import Role
from core.keyset import SortKey, keyset_filter, order_by_expressions
from leads import selectors
from leads.models import Lead, LeadStatus

from .factories import MembershipFactory

BASE = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
PAGE = 100
ROWS = 1200

SORTS = [
    "created_at",
    "-created_at",
    "updated_at",
    "-updated_at",
    "score",
    "-score",
    "email",
    "-email",
    "company",
    "-company",
    "last_name",
    "-last_name",
    "-score,created_at",  # mixed directions
    "company,-email",  # mixed directions with a nullable key
]
COMPANIES = ["", "acme", "globex", "initech", "umbrella"]
SCORES = [0, 10, 50, 50, 50, 75, 100]


@contextmanager
def explicit_timestamps():
    """Let bulk_create write created_at/updated_at (auto_now/auto_now_add would overwrite them)."""
    with (
        patch.object(Lead._meta.get_field("created_at"), "auto_now_add", False),
        patch.object(Lead._meta.get_field("updated_at"), "auto_now", False),
    ):
        yield


def make_lead(account, rng: random.Random, n: int, **overrides) -> Lead:
    """Lead number `n`: heavy ties on every sort key; one in five (n % 5 == 0) has no email."""
    created = BASE + dt.timedelta(seconds=rng.randrange(ROWS // 6))
    if rng.random() < 0.5:
        created += dt.timedelta(microseconds=123456)
    values = dict(
        account=account,
        email=None if n % 5 == 0 else f"lead{n:05d}@example.test",
        external_id=f"ext-{n:05d}",
        first_name="Lead",
        last_name=f"name{rng.randrange(40):03d}",
        company=rng.choice(COMPANIES),
        score=rng.choice(SCORES),
        status=rng.choice(LeadStatus.values),
        created_at=created,
        updated_at=BASE + dt.timedelta(minutes=rng.randrange(300)),
    )
    values.update(overrides)
    return Lead(**values)


def bulk_leads(leads: list[Lead]) -> list[Lead]:
    with explicit_timestamps():
        return Lead.objects.bulk_create(leads, batch_size=500)


def sort_keys(sort: str) -> tuple[SortKey, ...]:
    return selectors.lead_sort_keys(sort)


def compare(keys: tuple[SortKey, ...], a: Lead, b: Lead) -> int:
    """The list's order in Python: NULL ranks above every value; `id` breaks ties."""
    for key in keys:
        x, y = getattr(a, key.field), getattr(b, key.field)
        if x == y:
            continue
        if x is None:
            result = 1
        elif y is None:
            result = -1
        else:
            result = -1 if x < y else 1
        return -result if key.descending else result
    return 0


def get_page(api, **params):
    response = api.get("/api/v1/leads", params)
    assert response.status_code == 200, response.content
    return response


@pytest.mark.django_db
@pytest.mark.parametrize("sort", SORTS)
def test_walking_all_pages_returns_each_surviving_lead_once_in_sort_order_despite_concurrent_writes(api, account, sort):
    rng = random.Random(sort)
    numbers = list(range(0, 4 * ROWS, 2))  # even numbers now; odd ones for leads created mid-walk
    rng.shuffle(numbers)
    known: dict[uuid.UUID, Lead] = {
        lead.pk: lead for lead in bulk_leads([make_lead(account, rng, n) for n in numbers[:ROWS]])
    }
    pre_existing = set(known)
    spare_numbers = [n + 1 for n in numbers]
    keys = sort_keys(sort)

    returned: list[uuid.UUID] = []
    deleted_unseen: set[uuid.UUID] = set()
    deleted_seen: set[uuid.UUID] = set()
    created_mid_walk: set[uuid.UUID] = set()
    cursor = None
    pages = 0
    while True:
        params = {"sort": sort, "limit": PAGE}
        if cursor:
            params["cursor"] = cursor
        body = get_page(api, **params).json()
        pages += 1
        ids = [uuid.UUID(row["id"]) for row in body["results"]]
        assert not set(ids) & deleted_unseen, "a lead deleted before it was reached was returned"
        returned.extend(ids)
        if not body["has_more"]:
            assert body["next_cursor"] is None
            break
        assert len(ids) == PAGE
        cursor = body["next_cursor"]
        assert pages < 40, "the walk does not end"

        # Concurrent writes between pages: delete leads not yet seen, leads already seen (including
        # the row the cursor points at) and create leads that sort before and after the cursor.
        seen = set(returned)
        unseen = sorted(pre_existing - seen - deleted_unseen)
        doomed_unseen = set(rng.sample(unseen, min(7, len(unseen))))
        doomed_seen = set(rng.sample(sorted(seen - deleted_seen), 3)) | {ids[-1]}
        Lead.objects.filter(pk__in=doomed_unseen | doomed_seen).delete()
        deleted_unseen |= doomed_unseen
        deleted_seen |= doomed_seen
        fresh = bulk_leads([make_lead(account, rng, spare_numbers.pop()) for _ in range(10)])
        known.update({lead.pk: lead for lead in fresh})
        created_mid_walk |= {lead.pk for lead in fresh}

    assert pages >= ROWS // PAGE
    assert len(returned) == len(set(returned)), "a lead was returned twice"
    missing = pre_existing - deleted_unseen - set(returned)
    assert not missing, f"{len(missing)} surviving leads were never returned"
    assert set(returned) <= pre_existing | created_mid_walk
    rows = [known[pk] for pk in returned]
    out_of_order = [i for i in range(len(rows) - 1) if compare(keys, rows[i], rows[i + 1]) >= 0]
    assert not out_of_order, f"order broken at positions {out_of_order[:5]} for sort={sort}"


@pytest.mark.django_db
@pytest.mark.parametrize("sort", SORTS)
def test_first_page_matches_the_sort_computed_in_python(api, account, sort):
    rng = random.Random(f"first-{sort}")
    leads = bulk_leads([make_lead(account, rng, n) for n in range(60)])
    keys = sort_keys(sort)
    expected = [lead.pk for lead in sorted(leads, key=functools.cmp_to_key(lambda a, b: compare(keys, a, b)))]
    first = get_page(api, sort=sort, limit=25).json()
    second = get_page(api, sort=sort, limit=50, cursor=first["next_cursor"]).json()
    got = [uuid.UUID(row["id"]) for row in first["results"] + second["results"]]
    assert got == expected
    assert second["has_more"] is False


@pytest.mark.django_db
def test_default_sort_is_newest_first(api, account):
    rng = random.Random("default")
    leads = bulk_leads([make_lead(account, rng, n) for n in range(30)])
    keys = sort_keys("-created_at")
    expected = [lead.pk for lead in sorted(leads, key=functools.cmp_to_key(lambda a, b: compare(keys, a, b)))]
    got = [uuid.UUID(row["id"]) for row in get_page(api).json()["results"]]
    assert got == expected


@pytest.mark.django_db
def test_limit_defaults_to_fifty(api, account):
    rng = random.Random("limit")
    bulk_leads([make_lead(account, rng, n) for n in range(60)])
    body = get_page(api).json()
    assert len(body["results"]) == 50
    assert body["has_more"] is True


@pytest.mark.django_db
def test_limit_of_500_is_allowed(api, account):
    rng = random.Random("limit")
    bulk_leads([make_lead(account, rng, n) for n in range(501)])
    body = get_page(api, limit=500).json()
    assert len(body["results"]) == 500
    assert body["has_more"] is True


# --- Link header and the last page -------------------------------------------------------------


@pytest.mark.django_db
def test_link_header_points_at_the_next_page_with_the_same_parameters(api, account):
    rng = random.Random("link")
    bulk_leads([make_lead(account, rng, n) for n in range(5)])
    response = get_page(api, sort="-score,created_at", limit=2, status__in=",".join(LeadStatus.values))
    body = response.json()
    assert body["has_more"] is True
    link = response["Link"]
    assert link.startswith("<") and link.endswith('>; rel="next"')
    url = link[1 : link.index(">")]
    parts = urlsplit(url)
    assert parts.path == "/api/v1/leads"
    query = parse_qs(parts.query)
    assert query == {
        "sort": ["-score,created_at"],
        "limit": ["2"],
        "status__in": [",".join(LeadStatus.values)],
        "cursor": [body["next_cursor"]],
    }
    followed = api.get(url)
    direct = get_page(
        api,
        sort="-score,created_at",
        limit=2,
        status__in=",".join(LeadStatus.values),
        cursor=body["next_cursor"],
    )
    assert followed.status_code == 200
    assert followed.json() == direct.json()


@pytest.mark.django_db
def test_last_page_has_no_more_no_cursor_and_no_link_header(api, account):
    rng = random.Random("last")
    bulk_leads([make_lead(account, rng, n) for n in range(5)])
    first = get_page(api, limit=3)
    last = get_page(api, limit=3, cursor=first.json()["next_cursor"])
    body = last.json()
    assert len(body["results"]) == 2
    assert body["has_more"] is False
    assert body["next_cursor"] is None
    assert "Link" not in last


@pytest.mark.django_db
def test_a_page_that_exactly_fills_the_limit_is_the_last_one(api, account):
    rng = random.Random("exact")
    bulk_leads([make_lead(account, rng, n) for n in range(4)])
    first = get_page(api, limit=2).json()
    second = get_page(api, limit=2, cursor=first["next_cursor"]).json()
    assert len(second["results"]) == 2
    assert second["has_more"] is False
    assert second["next_cursor"] is None


@pytest.mark.django_db
def test_following_the_link_header_walks_every_lead(api, account):
    rng = random.Random("follow")
    leads = bulk_leads([make_lead(account, rng, n) for n in range(23)])
    seen: list[str] = []
    response = get_page(api, limit=5, sort="email")
    while True:
        seen.extend(row["id"] for row in response.json()["results"])
        if "Link" not in response:
            break
        url = response["Link"][1 : response["Link"].index(">")]
        response = api.get(url)
        assert response.status_code == 200
    assert sorted(seen) == sorted(str(lead.pk) for lead in leads)


# --- Cursor integrity ----------------------------------------------------------------------------


@pytest.fixture
def cursor_leads(account, other_account):
    rng = random.Random("cursor")
    bulk_leads([make_lead(account, rng, n) for n in range(5)])
    bulk_leads([make_lead(other_account, rng, n) for n in range(5)])


def flip(text: str, position: int) -> str:
    char = text[position]
    replacement = "A" if char != "A" else "B"
    return text[:position] + replacement + text[position + 1 :]


def assert_invalid_cursor(response):
    assert response.status_code == 400, response.content
    assert response["Content-Type"].startswith("application/problem+json")
    assert response.json()["code"] == "invalid_cursor"


@pytest.mark.django_db
@pytest.mark.parametrize("where", [0, 5, "middle", -10, -1])
def test_tampered_cursor_is_rejected_with_invalid_cursor(api, cursor_leads, where):
    cursor = get_page(api, limit=2, sort="score").json()["next_cursor"]
    position = len(cursor) // 2 if where == "middle" else where % len(cursor)
    assert_invalid_cursor(api.get("/api/v1/leads", {"limit": 2, "sort": "score", "cursor": flip(cursor, position)}))


@pytest.mark.django_db
@pytest.mark.parametrize("cursor", ["garbage", "a:b:c", "{}", "\x00", "é" * 40])
def test_garbage_cursor_is_rejected_with_invalid_cursor(api, cursor_leads, cursor):
    assert_invalid_cursor(api.get("/api/v1/leads", {"cursor": cursor}))


@pytest.mark.django_db
def test_cursor_of_another_account_is_rejected_with_invalid_cursor(api, other_api, cursor_leads):
    cursor = get_page(api, limit=2, sort="score").json()["next_cursor"]
    assert_invalid_cursor(other_api.get("/api/v1/leads", {"limit": 2, "sort": "score", "cursor": cursor}))


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("made_with", "used_with"),
    [("score", "email"), ("score", "-score"), ("-created_at", None), ("score", "score,created_at")],
)
def test_cursor_used_with_another_sort_is_rejected_with_invalid_cursor(api, cursor_leads, made_with, used_with):
    cursor = get_page(api, limit=2, sort=made_with).json()["next_cursor"]
    params = {"limit": 2, "cursor": cursor}
    if used_with is not None:
        params["sort"] = used_with
    if made_with == "-created_at" and used_with is None:
        # the default sort is -created_at: the same cursor is valid without an explicit sort
        assert api.get("/api/v1/leads", params).status_code == 200
        params["sort"] = "created_at"
    assert_invalid_cursor(api.get("/api/v1/leads", params))


@pytest.mark.django_db
def test_cursor_stays_valid_when_the_row_it_points_at_is_deleted(api, account, cursor_leads):
    first = get_page(api, limit=2, sort="score").json()
    Lead.objects.filter(pk=first["results"][-1]["id"]).delete()
    rest = get_page(api, limit=10, sort="score", cursor=first["next_cursor"]).json()
    assert len(rest["results"]) == 3
    assert not {r["id"] for r in rest["results"]} & {r["id"] for r in first["results"]}


# --- Query counts ----------------------------------------------------------------------------------


@pytest.fixture
def many_owned_tagged_leads(account):
    owners = [MembershipFactory(account=account, role=Role.MEMBER).user for _ in range(3)]
    rng = random.Random("queries")
    leads = []
    for n in range(600):
        lead = make_lead(account, rng, n, owner=owners[n % 3], tags=["alpha", f"t{n % 7}"], custom_fields={"n": n})
        leads.append(lead)
    return bulk_leads(leads)


def count_queries(api, params) -> tuple[int, dict]:
    with CaptureQueriesContext(connection) as ctx:
        response = api.get("/api/v1/leads", params)
    assert response.status_code == 200
    return len(ctx.captured_queries), response.json()


@pytest.mark.django_db
@pytest.mark.parametrize("sort", ["-created_at", "email", "-score,created_at"])
def test_page_size_and_page_depth_do_not_change_the_number_of_queries(
    api, many_owned_tagged_leads, django_assert_num_queries, sort
):
    get_page(api, limit=1, sort=sort)  # warm up anything cached per process
    small, body = count_queries(api, {"limit": 10, "sort": sort})
    assert len(body["results"]) == 10
    assert all(row["owner"] is not None and row["tags"] for row in body["results"])
    with django_assert_num_queries(small):
        big = get_page(api, limit=500, sort=sort).json()
    assert len(big["results"]) == 500
    with django_assert_num_queries(small):
        second = get_page(api, limit=10, sort=sort, cursor=body["next_cursor"]).json()
    assert len(second["results"]) == 10
    with django_assert_num_queries(small):
        deep = get_page(api, limit=500, sort=sort, cursor=big["next_cursor"]).json()
    assert len(deep["results"]) == 100
    with django_assert_num_queries(small + 1):  # count=true costs exactly one COUNT
        get_page(api, limit=10, sort=sort, count="true")


@pytest.mark.django_db
def test_listing_a_page_fetches_the_leads_in_a_single_query(api, many_owned_tagged_leads):
    _, body = count_queries(api, {"limit": 1})
    with CaptureQueriesContext(connection) as ctx:
        get_page(api, limit=500, cursor=body["next_cursor"])
    lead_queries = [q["sql"] for q in ctx.captured_queries if '"leads_lead"' in q["sql"]]
    assert len(lead_queries) == 1
    assert "OFFSET" not in lead_queries[0].upper()


# --- PostgreSQL query plans --------------------------------------------------------------------------


def explain(queryset) -> str:
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + sql, params)
        return "\n".join(row[0] for row in cursor.fetchall())


def keyset_page_queryset(account, params: dict, limit: int = 50):
    """The query `lead_list` runs for a page after a cursor in the middle of the list."""
    query = QueryDict(mutable=True)
    query.update(params)
    keys = selectors.lead_sort_keys(query.get("sort"))
    qs, keys = selectors.lead_sorted(selectors.lead_filter(account=account, params=query), keys, account=account)
    middle = qs.order_by(*order_by_expressions(keys))[qs.count() // 2]
    values = [getattr(middle, key.field) for key in keys]
    return keyset_filter(qs, keys, values).order_by(*order_by_expressions(keys))[: limit + 1]


@pytest.fixture
def five_thousand_leads(account, other_account):
    rng = random.Random("explain")
    leads = [make_lead(account if n % 2 else other_account, rng, n) for n in range(5000)]
    bulk_leads(leads)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE leads_lead, leads_leadrank")


@pytest.mark.postgres
@pytest.mark.django_db
@pytest.mark.parametrize(
    "params",
    [{"sort": "-created_at"}, {"status": "new"}, {"status": "new", "sort": "-score"}],
    ids=["sort=-created_at", "status=new", "status=new&sort=-score"],
)
def test_keyset_page_query_uses_an_index_on_leads(account, five_thousand_leads, params):
    plan = explain(keyset_page_queryset(account, params))
    assert "Seq Scan on leads_lead " not in plan, plan  # the lead table (its small rank table may be scanned)
    assert "Index Scan" in plan and "on leads_lead" in plan, plan


SORT_INDEXES = {
    "created_at": "lead_acct_created_idx",
    "updated_at": "lead_acct_updated_idx",
    "score": "lead_rank_score_idx on leads_leadrank",  # the rank table's index (leads.models.LeadRank)
    "email": "lead_acct_email_sort_idx",
    "company": "lead_acct_company_idx",
    "last_name": "lead_acct_last_name_idx",
}


@pytest.mark.postgres
@pytest.mark.django_db
def test_every_single_field_sort_pages_by_seeking_its_index_without_sorting(account, five_thousand_leads):
    """Page 10,000 costs what page 1 costs: the cursor condition is an index bound, not a filter."""
    assert set(SORT_INDEXES) == set(selectors.LEAD_SORTS)
    for field, index in SORT_INDEXES.items():
        for sort in (field, f"-{field}"):
            plan = explain(keyset_page_queryset(account, {"sort": sort}))
            where = index if " on " in index else f"{index} on leads_lead"
            assert f"using {where}" in plan, (sort, plan)
            assert any("Index Cond" in line and "ROW(" in line for line in plan.splitlines()), (sort, plan)
            assert "Sort" not in plan, (sort, plan)
            qs, keys = selectors.lead_sorted(
                selectors.lead_filter(account=account, params=QueryDict()),
                selectors.lead_sort_keys(sort),
                account=account,
            )
            plan = explain(qs.order_by(*order_by_expressions(keys))[:51])
            assert f"using {where}" in plan and "Sort" not in plan, (sort, plan)
