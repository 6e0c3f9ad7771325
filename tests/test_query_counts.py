"""SQL queries per request on every hot endpoint (issue 10): a fixed number, whatever the page or batch size.

Each endpoint is called twice, once over a few leads and once over many (a page of 2 and of 30, a
batch of 3 and of 40), and must issue exactly the number of queries below both times: an N+1 (a
query per lead, per tag, per owner, per event ...) makes the larger call fail, and a new query on a
hot path shows up as a changed number to review. The numbers count everything Django sends,
authentication included: one query for the key, its account, creator and role (none once a process
has cached the key, with Redis), and the usage audit's UPDATE, written per request here (with Redis it
is batched, see test_api_key_usage.py).

Where PostgreSQL and SQLite differ (advisory locks, the COPY export, savepoints), both are listed.
"""

from __future__ import annotations

import uuid

import pytest
from django.db import connection

from accounts import credentials
from scoring.services import scoring_rule_create
from webhooks.services import subscription_create

from .factories import LeadFactory

pytestmark = pytest.mark.django_db

SMALL, LARGE = 2, 30
BATCH_SMALL, BATCH_LARGE = 3, 40
STATUSES = ["new", "contacted", "qualified"]


def expected(name: str) -> int:
    value = EXPECTED[name]
    value = value if isinstance(value, int) else value[connection.vendor]
    # With Redis the key is cached once warm() has used it: authentication then sends no query at all
    # (accounts/credentials.py), so every figure below is one less.
    return value - 1 if credentials.caching() else value


# Queries per request, authentication's two included.
EXPECTED: dict[str, int | dict[str, int]] = {
    "list": 3,
    "list_count": 4,
    "list_cursor": 3,
    "list_segment": 4,
    "detail": 3,
    "create": {"postgresql": 16, "sqlite": 15},
    "update": 19,
    "delete": 12,
    "batch_create": {"postgresql": 16, "sqlite": 15},
    "batch_update": 19,
    "batch_delete": 12,
    # PostgreSQL writes the CSV with COPY (one statement); SQLite reads with a server-side iterator.
    "export_csv": {"postgresql": 3, "sqlite": 6},
    "export_ndjson": 6,
    "events": 3,
    "job": 3,
    "account": 3,
}


@pytest.fixture(autouse=True)
def setting_up(settings, account):
    """Usage written per request (deterministic counts in both run modes); a rule and a webhook, so
    scoring and event fan-out are on the write paths they cost in production."""
    settings.LEADBASE_API_KEY_USAGE_FLUSH_SECONDS = 0
    settings.LEADBASE_WEBHOOKS_ALLOW_PRIVATE = True
    settings.LEADBASE_WEBHOOKS_ALLOW_HTTP = True
    scoring_rule_create(
        account=account,
        actor=None,
        data={"name": "CTO", "field": "job_title", "operator": "equals", "value": "CTO", "points": 10},
    )
    subscription_create(account=account, actor=None, data={"url": "http://127.0.0.1:9/hook"})


@pytest.fixture
def seed(account, owner):
    """seed(n) -> n leads with tags, an owner, a status, a score and custom fields."""

    def _seed(n: int) -> list:
        return [
            LeadFactory(
                account=account,
                tags=["hot", f"t{i % 3}"],
                owner=owner,
                status=STATUSES[i % 3],
                score=40 + i,
                custom_fields={"plan": "gold", "seats": i},
                job_title="CTO",
            )
            for i in range(n)
        ]

    return _seed


def call(django_assert_num_queries, name: str, fn):
    with django_assert_num_queries(expected(name)):
        response = fn()
    assert response.status_code < 300, getattr(response, "content", b"")[:500]
    return response


def warm(api) -> None:
    # Content types, the scoring rule compiler's caches, etc. are loaded once per process, not per request.
    api.get("/api/v1/me")


SORTS = ["created_at", "updated_at", "score", "email", "company", "last_name"]
LIST_FILTERS = [
    {},
    {"status": "new"},
    {"status__in": "new,contacted"},
    {"score__gte": "40"},
    {"tag": "hot"},
    {"tags__in": "t0,t1"},
    {"q": "example"},
    {"country": "DE"},
    {"owner__isnull": "false"},
    {"created_at__gte": "2000-01-01T00:00:00Z"},
    {"custom_fields.plan": "gold"},
]


@pytest.mark.parametrize("size", [SMALL, LARGE])
@pytest.mark.parametrize("sort", [*SORTS, *(f"-{s}" for s in SORTS)])
def test_list_costs_the_same_queries_for_every_sort_and_page_size(api, seed, django_assert_num_queries, size, sort):
    seed(size)
    warm(api)
    response = call(django_assert_num_queries, "list", lambda: api.get("/api/v1/leads", {"limit": size, "sort": sort}))
    assert len(response.json()["results"]) == size


@pytest.mark.parametrize("size", [SMALL, LARGE])
@pytest.mark.parametrize("params", LIST_FILTERS, ids=lambda p: ",".join(p) or "none")
def test_list_costs_the_same_queries_with_each_filter(api, seed, django_assert_num_queries, size, params):
    seed(size)
    warm(api)
    call(django_assert_num_queries, "list", lambda: api.get("/api/v1/leads", {**params, "limit": size}))


@pytest.mark.parametrize("size", [SMALL, LARGE])
def test_list_with_a_cursor_count_or_segment_adds_a_fixed_number(api, account, seed, django_assert_num_queries, size):
    seed(2 * size)
    warm(api)
    first = api.get("/api/v1/leads", {"limit": size, "sort": "-score"}).json()
    second = call(
        django_assert_num_queries,
        "list_cursor",
        lambda: api.get("/api/v1/leads", {"limit": size, "sort": "-score", "cursor": first["next_cursor"]}),
    )
    assert len(second.json()["results"]) == size
    call(django_assert_num_queries, "list_count", lambda: api.get("/api/v1/leads", {"limit": size, "count": "true"}))
    segment = api.post("/api/v1/segments", {"name": "gold", "filters": {"tag": ["hot"]}}, format="json").json()
    call(
        django_assert_num_queries,
        "list_segment",
        lambda: api.get("/api/v1/leads", {"limit": size, "segment": segment["id"]}),
    )


@pytest.mark.parametrize("size", [SMALL, LARGE])
def test_single_lead_read_create_update_delete_cost_a_fixed_number(api, seed, django_assert_num_queries, size):
    leads = seed(size)
    warm(api)
    call(django_assert_num_queries, "detail", lambda: api.get(f"/api/v1/leads/{leads[0].pk}"))
    call(
        django_assert_num_queries,
        "create",
        lambda: api.post(
            "/api/v1/leads",
            {"email": f"new-{uuid.uuid4().hex[:8]}@example.org", "job_title": "CTO", "tags": ["a", "b"]},
            format="json",
        ),
    )
    call(
        django_assert_num_queries,
        "update",
        lambda: api.put(f"/api/v1/leads/{leads[0].pk}", {"city": "Paris", "tags": ["x"]}, format="json"),
    )
    call(django_assert_num_queries, "delete", lambda: api.delete(f"/api/v1/leads/{leads[1].pk}"))


@pytest.mark.parametrize("size", [BATCH_SMALL, BATCH_LARGE])
def test_batch_create_update_delete_cost_the_same_for_small_and_large_batches(
    api, seed, django_assert_num_queries, size
):
    leads = seed(size)
    warm(api)
    new = [{"email": f"b{i}-{uuid.uuid4().hex[:6]}@example.org", "job_title": "CTO"} for i in range(size)]
    response = call(
        django_assert_num_queries,
        "batch_create",
        lambda: api.post("/api/v1/leads/batch", {"leads": new}, format="json"),
    )
    assert response.json()["summary"] == {"succeeded": size, "failed": 0}
    changes = [{"id": str(lead.pk), "status": "qualified", "add_tags": ["vip"]} for lead in leads]
    response = call(
        django_assert_num_queries,
        "batch_update",
        lambda: api.put("/api/v1/leads/batch", {"leads": changes}, format="json"),
    )
    assert response.json()["summary"] == {"succeeded": size, "failed": 0}
    ids = [str(lead.pk) for lead in leads]
    response = call(
        django_assert_num_queries,
        "batch_delete",
        lambda: api.delete("/api/v1/leads/batch", {"ids": ids}, format="json"),
    )
    assert response.json()["summary"] == {"succeeded": size, "failed": 0}


@pytest.mark.parametrize("size", [SMALL, LARGE])
@pytest.mark.parametrize("fmt", ["csv", "ndjson"])
def test_export_reads_its_rows_in_a_fixed_number_of_queries(api, seed, django_assert_num_queries, size, fmt):
    seed(size)
    warm(api)

    def download():
        response = api.get("/api/v1/leads/export", {"format": fmt, "tag": "hot"})
        body = b"".join(response.streaming_content)
        assert body.count(b"\n") >= size
        return response

    call(django_assert_num_queries, f"export_{fmt}", download)


@pytest.mark.parametrize("size", [SMALL, LARGE])
def test_events_feed_job_and_account_cost_a_fixed_number(api, seed, django_assert_num_queries, size):
    seed(size)
    api.post("/api/v1/leads/batch", {"leads": [{"email": f"e{i}@example.org"} for i in range(size)]}, format="json")
    job = api.post("/api/v1/exports", {"format": "csv"}, format="json").json()
    warm(api)
    response = call(django_assert_num_queries, "events", lambda: api.get("/api/v1/events", {"limit": size}))
    assert len(response.json()["results"]) == size
    call(django_assert_num_queries, "job", lambda: api.get(f"/api/v1/jobs/{job['id']}"))
    call(django_assert_num_queries, "account", lambda: api.get("/api/v1/account"))
