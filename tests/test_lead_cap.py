"""The plan's lead cap (§2, issue 4): a free account holds at most 100 leads, whichever path
creates them; past the cap single create answers 403 plan_limit_reached and a batch refuses the
items beyond it, one by one, writing nothing for them. Updates of existing leads are not capped.
"""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from django.db import connection
from rest_framework.test import APIClient

from core.errors import PlanLimitReached
from leads import services
from leads.models import Lead

from .factories import AccountFactory, LeadFactory

pytestmark = pytest.mark.django_db

LEADS = "/api/v1/leads"
BATCH = "/api/v1/leads/batch"
TIMEOUT = 60


@pytest.fixture
def free_account():
    account = AccountFactory(slug="tiny", plan="free")
    assert account.lead_limit == 100
    return account


@pytest.fixture
def free_api(free_account, make_client):
    return make_client(free_account)


def fill(account, count: int, prefix: str = "existing") -> None:
    """`count` leads written in one INSERT (the cap is about what the API lets in, not how they got there)."""
    Lead.objects.bulk_create(
        [LeadFactory.build(account=account, email=email) for email in factory_emails(prefix, count)]
    )


def factory_emails(prefix: str, count: int) -> list[str]:
    return [f"{prefix}{n}@example.org" for n in range(count)]


def lead_count(account) -> int:
    return Lead.objects.filter(account=account).count()


def assert_plan_limit(response, limit: int = 100) -> dict:
    assert response.status_code == 403, response.content
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "plan_limit_reached"
    assert body["limit"] == limit
    return body


def batch_statuses(response) -> list[int]:
    assert response.status_code == 207, response.content
    return [row["status"] for row in response.json()["results"]]


def items(prefix: str, count: int) -> list[dict]:
    return [{"email": email} for email in factory_emails(prefix, count)]


# --- single create ------------------------------------------------------------------------------


def test_a_free_account_creates_one_hundred_leads_one_by_one_and_the_101st_is_refused(free_account, free_api):
    for data in items("single", 100):
        assert services.lead_create(account=free_account, actor=None, data=data).outcome == "created"
    assert lead_count(free_account) == 100
    response = free_api.post(LEADS, {"email": "one-too-many@example.org"}, format="json")
    assert_plan_limit(response)
    assert lead_count(free_account) == 100
    assert not Lead.objects.filter(email="one-too-many@example.org").exists()


def test_the_hundredth_lead_is_still_created_through_the_api(free_account, free_api):
    fill(free_account, 99)
    response = free_api.post(LEADS, {"email": "hundredth@example.org"}, format="json")
    assert response.status_code == 201, response.content
    assert lead_count(free_account) == 100


def test_the_lead_create_service_raises_plan_limit_reached_past_the_cap(free_account):
    fill(free_account, 100)
    with pytest.raises(PlanLimitReached) as raised:
        services.lead_create(account=free_account, actor=None, data={"email": "late@example.org"})
    assert raised.value.status == 403
    assert raised.value.extra["limit"] == 100
    assert lead_count(free_account) == 100


def test_at_the_cap_existing_leads_can_still_be_updated_and_duplicates_are_reported_as_duplicates(
    free_account, free_api
):
    fill(free_account, 100)
    duplicate = free_api.post(LEADS, {"email": "existing7@example.org"}, format="json")
    assert (duplicate.status_code, duplicate.json()["code"]) == (409, "duplicate_lead")
    merged = free_api.post(
        f"{LEADS}?on_duplicate=update", {"email": "existing7@example.org", "city": "Lyon"}, format="json"
    )
    assert merged.status_code == 200, merged.content
    assert merged.json()["city"] == "Lyon"
    skipped = free_api.post(f"{LEADS}?on_duplicate=skip", {"email": "existing8@example.org"}, format="json")
    assert skipped.status_code == 200, skipped.content
    assert lead_count(free_account) == 100


def test_deleting_a_lead_at_the_cap_frees_one_slot(free_account, free_api):
    fill(free_account, 100)
    victim = Lead.objects.filter(account=free_account).first()
    assert free_api.delete(f"{LEADS}/{victim.pk}").status_code == 204
    assert free_api.post(LEADS, {"email": "replacement@example.org"}, format="json").status_code == 201
    assert_plan_limit(free_api.post(LEADS, {"email": "one-more@example.org"}, format="json"))


def test_another_accounts_leads_do_not_count_against_the_cap(free_account, free_api):
    fill(AccountFactory(plan="free"), 100)
    fill(free_account, 99)
    assert free_api.post(LEADS, {"email": "mine@example.org"}, format="json").status_code == 201


# --- batch create -------------------------------------------------------------------------------


def test_a_batch_of_ten_with_ninety_five_leads_creates_the_first_five_and_refuses_the_rest(free_account, free_api):
    fill(free_account, 95)
    response = free_api.post(BATCH, {"leads": items("batch", 10)}, format="json")
    assert batch_statuses(response) == [201] * 5 + [403] * 5
    body = response.json()
    assert body["summary"] == {"succeeded": 5, "failed": 5}
    for row in body["results"][5:]:
        assert (row["error"]["code"], row["error"]["limit"]) == ("plan_limit_reached", 100)
    assert lead_count(free_account) == 100
    created = set(Lead.objects.filter(account=free_account, email__startswith="batch").values_list("email", flat=True))
    assert created == set(factory_emails("batch", 5))


def test_a_batch_on_a_full_account_writes_nothing(free_account, free_api):
    fill(free_account, 100)
    response = free_api.post(BATCH, {"leads": items("batch", 10)}, format="json")
    assert batch_statuses(response) == [403] * 10
    assert {row["error"]["code"] for row in response.json()["results"]} == {"plan_limit_reached"}
    assert lead_count(free_account) == 100
    assert not Lead.objects.filter(email__startswith="batch").exists()


def test_a_dry_run_batch_reports_the_cap_and_writes_nothing(free_account, free_api):
    fill(free_account, 98)
    response = free_api.post(f"{BATCH}?dry_run=true", {"leads": items("batch", 4)}, format="json")
    assert batch_statuses(response) == [201, 201, 403, 403]
    assert lead_count(free_account) == 98


def test_invalid_items_and_duplicates_in_a_batch_take_no_slot_under_the_cap(free_account, free_api):
    fill(free_account, 97)
    leads = [
        {"email": "not an email"},
        {"email": "existing3@example.org"},  # already a lead: 409, not a new one
        {"email": "new0@example.org"},
        {"email": "NEW0@example.org"},  # same as the item before it
        {"email": "new1@example.org"},
        {"email": "new2@example.org"},
        {"email": "new3@example.org"},
    ]
    response = free_api.post(BATCH, {"leads": leads}, format="json")
    assert batch_statuses(response) == [400, 409, 201, 409, 201, 201, 403]
    assert lead_count(free_account) == 100


def test_a_batch_at_the_cap_may_still_update_existing_leads(free_account, free_api):
    fill(free_account, 100)
    leads = [{"email": "existing1@example.org", "city": "Oslo"}, {"email": "brand-new@example.org"}]
    response = free_api.post(f"{BATCH}?on_duplicate=update", {"leads": leads}, format="json")
    assert batch_statuses(response) == [200, 403]
    assert Lead.objects.get(account=free_account, email="existing1@example.org").city == "Oslo"
    assert lead_count(free_account) == 100


# --- plans and overrides ------------------------------------------------------------------------


def test_a_pro_account_has_no_lead_cap(make_client):
    pro = AccountFactory(plan="pro")
    assert pro.lead_limit is None
    fill(pro, 150)
    client = make_client(pro)
    assert client.post(LEADS, {"email": "more@example.org"}, format="json").status_code == 201
    assert batch_statuses(client.post(BATCH, {"leads": items("batch", 10)}, format="json")) == [201] * 10
    assert lead_count(pro) == 161


@pytest.mark.parametrize(("plan", "override"), [("free", 3), ("pro", 3)])
def test_a_lead_limit_override_lowers_the_cap(make_client, plan, override):
    account = AccountFactory(plan=plan, lead_limit_override=override)
    client = make_client(account)
    statuses = [client.post(LEADS, data, format="json").status_code for data in items("single", 3)]
    assert statuses == [201, 201, 201]
    assert_plan_limit(client.post(LEADS, {"email": "fourth@example.org"}, format="json"), limit=3)
    assert lead_count(account) == 3


def test_a_lead_limit_override_raises_a_free_accounts_cap(make_client):
    account = AccountFactory(plan="free", lead_limit_override=150)
    fill(account, 100)
    client = make_client(account)
    assert client.post(LEADS, {"email": "hundred-and-first@example.org"}, format="json").status_code == 201
    fill(account, 49, prefix="more")
    assert_plan_limit(client.post(LEADS, {"email": "over@example.org"}, format="json"), limit=150)


def test_get_account_reports_the_cap_and_the_usage(free_account, free_api):
    fill(free_account, 100)
    body = free_api.get("/api/v1/account").json()
    assert (body["lead_limit"], body["lead_count"]) == (100, 100)


# --- concurrency (PostgreSQL) -------------------------------------------------------------------


def race(raw_key: str, requests: list[tuple[str, dict]]) -> list:
    """Send each (path, body) from its own thread, released together; returns the responses."""
    barrier = threading.Barrier(len(requests))
    responses: list = [None] * len(requests)
    failures: list[BaseException] = []

    def worker(index: int) -> None:
        try:
            client = APIClient()
            client.credentials(HTTP_X_API_KEY=raw_key)
            barrier.wait(timeout=TIMEOUT)
            path, body = requests[index]
            responses[index] = client.post(path, body, format="json")
        except BaseException as exc:  # reported by the test, not lost in the thread
            failures.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(requests))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=TIMEOUT)
    assert not any(thread.is_alive() for thread in threads), "a request hung"
    assert not failures, failures
    return responses


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_ten_concurrent_batches_on_a_free_account_with_ninety_leads_stop_at_exactly_one_hundred(make_key):
    account = AccountFactory(slug="racing", plan="free")
    fill(account, 90)
    raw_key = make_key(account)
    responses = race(raw_key, [(BATCH, {"leads": items(f"thread{t}-", 5)}) for t in range(10)])
    statuses = Counter(status for response in responses for status in batch_statuses(response))
    assert lead_count(account) == 100
    assert statuses == {201: 10, 403: 40}


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_single_creates_on_a_free_account_with_ninety_five_leads_stop_at_one_hundred(make_key):
    account = AccountFactory(slug="racing-single", plan="free")
    fill(account, 95)
    raw_key = make_key(account)
    responses = race(raw_key, [(LEADS, {"email": f"racer{n}@example.org"}) for n in range(20)])
    assert Counter(r.status_code for r in responses) == {201: 5, 403: 15}
    assert {r.json()["code"] for r in responses if r.status_code == 403} == {"plan_limit_reached"}
    assert lead_count(account) == 100
