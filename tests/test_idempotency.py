"""`Idempotency-Key` on POST (§4.4): the same key and body within 24 h replay the first response
without doing the work twice; another body is 422; keys are per account; a running key is 409."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.request import Request
from rest_framework.test import APIClient, APIRequestFactory

from core.errors import ERROR_CODES, PROBLEM_TYPE_BASE
from core.idempotency import idempotency_keys_purge, request_fingerprint
from core.models import IdempotencyKey
from leads import services
from leads.models import Lead

from .factories import LeadFactory

LEADS = "/api/v1/leads"
BATCH = "/api/v1/leads/batch"

SINGLE_BODY = {"email": "once@example.com", "first_name": "Once", "tags": ["a"]}
BATCH_BODY = {"leads": [{"email": "once@example.com"}, {"email": "twice@example.com"}, {"email": "bad"}]}

# (path, body, status of the first response, leads it makes)
ENDPOINTS = [
    pytest.param(LEADS, SINGLE_BODY, 201, 1, id="single"),
    pytest.param(BATCH, BATCH_BODY, 207, 2, id="batch"),
]


def post(client, path, body, key=None):
    extra = {} if key is None else {"HTTP_IDEMPOTENCY_KEY": key}
    return client.post(path, body, format="json", **extra)


def assert_problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/problem+json")
    body = response.json()
    assert (body["code"], body["status"], body["type"]) == (code, status, PROBLEM_TYPE_BASE + code)
    assert ERROR_CODES[code][0] == status
    return body


def is_replay(response) -> bool:
    return response.get("Idempotent-Replayed") == "true"


def leads_of(account) -> int:
    return Lead.objects.filter(account=account).count()


@pytest.mark.django_db
class TestReplay:
    @pytest.mark.parametrize("path, body, status, made", ENDPOINTS)
    def test_the_same_key_and_body_replay_the_first_response_without_doing_the_work_again(
        self, api, account, path, body, status, made
    ):
        first = post(api, path, body, key="key-1")
        again = post(api, path, body, key="key-1")

        assert first.status_code == status, first.content
        assert not is_replay(first)
        assert again.status_code == status
        assert is_replay(again)
        assert again.json() == first.json()
        assert again["Content-Type"] == first["Content-Type"]
        assert leads_of(account) == made

    def test_a_replayed_create_carries_the_first_location_and_etag(self, api, account):
        first = post(api, LEADS, SINGLE_BODY, key="key-1")
        again = post(api, LEADS, SINGLE_BODY, key="key-1")

        assert again["Location"] == first["Location"]
        assert again["ETag"] == first["ETag"]
        assert first["Location"].endswith(f"/api/v1/leads/{first.json()['id']}")

    @pytest.mark.parametrize("path, body, status, made", ENDPOINTS)
    def test_a_replay_does_not_create_again_even_after_the_lead_was_deleted(
        self, api, account, path, body, status, made
    ):
        first = post(api, path, body, key="key-1")
        Lead.objects.filter(account=account).delete()

        again = post(api, path, body, key="key-1")

        assert (again.status_code, again.json()) == (first.status_code, first.json())
        assert is_replay(again)
        assert leads_of(account) == 0

    def test_the_same_body_with_keys_in_another_order_is_the_same_request(self, api, account):
        first = api.post(
            LEADS,
            data='{"email": "o@example.com", "city": "Paris"}',
            content_type="application/json",
            HTTP_IDEMPOTENCY_KEY="key-1",
        )
        again = api.post(
            LEADS,
            data='{"city":"Paris","email":"o@example.com"}',
            content_type="application/json",
            HTTP_IDEMPOTENCY_KEY="key-1",
        )

        assert first.status_code == 201
        assert is_replay(again)
        assert again.json() == first.json()
        assert leads_of(account) == 1

    def test_without_a_key_the_same_post_runs_twice(self, api, account):
        assert post(api, LEADS, SINGLE_BODY).status_code == 201
        assert_problem(post(api, LEADS, SINGLE_BODY), 409, "duplicate_lead")
        assert not IdempotencyKey.objects.exists()

    @pytest.mark.parametrize(
        "body, status, code",
        [
            ({"email": "taken@example.com"}, 409, "duplicate_lead"),
            ({"email": "not-an-email"}, 400, "validation_error"),
            ({"email": "x@example.com", "score": 5}, 400, "read_only_field"),
        ],
    )
    def test_a_client_error_is_replayed_too(self, api, account, body, status, code):
        taken = LeadFactory(account=account, email="taken@example.com")
        first = post(api, LEADS, body, key="key-4xx")
        assert_problem(first, status, code)
        taken.delete()  # a second execution would now succeed; a replay still answers as the first time

        again = post(api, LEADS, body, key="key-4xx")

        assert_problem(again, status, code)
        assert is_replay(again)
        assert again.json() == first.json()
        assert leads_of(account) == 0

    def test_a_server_error_does_not_use_up_the_key(self, api, account, monkeypatch):
        real = services.lead_create

        def broken(**kwargs):
            raise RuntimeError("database fell over")

        monkeypatch.setattr(services, "lead_create", broken)
        failed = post(api, LEADS, SINGLE_BODY, key="key-5xx")
        assert failed.status_code == 500
        monkeypatch.setattr(services, "lead_create", real)

        retried = post(api, LEADS, SINGLE_BODY, key="key-5xx")

        assert retried.status_code == 201, retried.content
        assert not is_replay(retried)
        assert leads_of(account) == 1


@pytest.mark.django_db
class TestMisuse:
    @pytest.mark.parametrize("path, body, status, made", ENDPOINTS)
    def test_the_same_key_with_another_body_is_422_idempotency_key_reused(self, api, account, path, body, status, made):
        post(api, path, body, key="key-1")
        other = {"email": "other@example.com"} if path == LEADS else {"leads": [{"email": "other@example.com"}]}

        response = post(api, path, other, key="key-1")

        assert_problem(response, 422, "idempotency_key_reused")
        assert leads_of(account) == made
        assert not Lead.objects.filter(email="other@example.com").exists()

    def test_the_same_key_on_another_endpoint_or_query_is_422(self, api, account):
        post(api, LEADS, {"email": "a@example.com"}, key="key-1")

        assert_problem(
            post(api, BATCH, {"leads": [{"email": "a@example.com"}]}, key="key-1"),
            422,
            "idempotency_key_reused",
        )
        assert_problem(
            post(api, f"{LEADS}?on_duplicate=skip", {"email": "a@example.com"}, key="key-1"),
            422,
            "idempotency_key_reused",
        )
        assert leads_of(account) == 1

    def test_keys_are_per_account_so_another_account_runs_its_request_independently(
        self, api, other_api, account, other_account
    ):
        mine = post(api, LEADS, SINGLE_BODY, key="shared-key")

        theirs = post(other_api, LEADS, SINGLE_BODY, key="shared-key")
        theirs_other_body = post(other_api, BATCH, BATCH_BODY, key="shared-key")

        assert theirs.status_code == 201
        assert not is_replay(theirs)
        assert theirs.json()["id"] != mine.json()["id"]
        assert_problem(theirs_other_body, 422, "idempotency_key_reused")  # reused within *its* account
        assert leads_of(account) == 1
        assert leads_of(other_account) == 1
        assert is_replay(post(api, LEADS, SINGLE_BODY, key="shared-key"))

    @pytest.mark.parametrize("key", ["k" * 256, "   "], ids=["256-chars", "blank"])
    def test_a_key_that_is_blank_or_longer_than_255_characters_is_400(self, api, account, key):
        response = post(api, LEADS, SINGLE_BODY, key=key)

        body = assert_problem(response, 400, "invalid_parameter")
        assert body["errors"][0]["field"] == "Idempotency-Key"
        assert leads_of(account) == 0
        assert not IdempotencyKey.objects.exists()

    def test_a_key_of_255_characters_is_accepted(self, api, account):
        first = post(api, LEADS, SINGLE_BODY, key="k" * 255)
        again = post(api, LEADS, SINGLE_BODY, key="k" * 255)

        assert first.status_code == 201
        assert is_replay(again)

    def test_a_key_whose_request_is_still_running_is_409_in_progress(self, api, account):
        drf_request = Request(APIRequestFactory().post(LEADS, SINGLE_BODY, format="json"))
        IdempotencyKey.objects.create(
            account=account,
            key="running",
            method="POST",
            path=LEADS,
            request_hash=request_fingerprint(drf_request),
            expires_at=timezone.now() + timedelta(hours=1),
        )

        response = post(api, LEADS, SINGLE_BODY, key="running")

        assert_problem(response, 409, "idempotency_key_in_progress")
        assert leads_of(account) == 0
        assert IdempotencyKey.objects.get(key="running").state == IdempotencyKey.State.IN_PROGRESS


@pytest.mark.django_db
class TestExpiry:
    def test_purge_deletes_expired_keys_of_every_account_and_keeps_live_ones(self, account, other_account):
        now = timezone.now()
        for acct, key, expires in [
            (account, "old", now - timedelta(seconds=1)),
            (other_account, "old", now - timedelta(hours=3)),
            (account, "live", now + timedelta(hours=23)),
        ]:
            IdempotencyKey.objects.create(
                account=acct, key=key, method="POST", path=LEADS, request_hash="0" * 64, expires_at=expires
            )

        assert idempotency_keys_purge() == 2
        assert list(IdempotencyKey.objects.values_list("key", flat=True)) == ["live"]
        assert idempotency_keys_purge() == 0

    def test_a_key_expires_24_hours_after_its_first_use(self, api, account):
        before = timezone.now()
        post(api, LEADS, SINGLE_BODY, key="key-ttl")

        stored = IdempotencyKey.objects.get(account=account, key="key-ttl")
        assert stored.state == IdempotencyKey.State.COMPLETED
        assert before + timedelta(hours=24) <= stored.expires_at <= timezone.now() + timedelta(hours=24)

    def test_after_expiry_the_same_key_runs_the_request_again(self, api, account):
        first = post(api, LEADS, SINGLE_BODY, key="key-old")
        IdempotencyKey.objects.filter(key="key-old").update(expires_at=timezone.now() - timedelta(seconds=1))

        again = post(api, LEADS, SINGLE_BODY, key="key-old")

        assert first.status_code == 201
        assert_problem(again, 409, "duplicate_lead")  # ran again: the lead it made the first time is there
        assert not is_replay(again)

    def test_after_expiry_the_same_key_may_carry_another_body(self, api, account):
        post(api, LEADS, SINGLE_BODY, key="key-old")
        IdempotencyKey.objects.filter(key="key-old").update(expires_at=timezone.now() - timedelta(seconds=1))
        assert idempotency_keys_purge() == 1

        response = post(api, LEADS, {"email": "new@example.com"}, key="key-old")

        assert response.status_code == 201
        assert leads_of(account) == 2
        assert is_replay(post(api, LEADS, {"email": "new@example.com"}, key="key-old"))


# --- concurrency -----------------------------------------------------------------------------

THREADS = 5
TIMEOUT = 30


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_posts_with_one_key_run_the_create_once(make_key, account):
    raw_key = make_key(account)
    barrier = threading.Barrier(THREADS)
    responses: list[tuple[int, dict, bool]] = []
    failures: list[BaseException] = []
    lock = threading.Lock()

    def worker() -> None:
        try:
            client = APIClient()
            client.credentials(HTTP_X_API_KEY=raw_key)
            barrier.wait(timeout=TIMEOUT)
            response = post(client, LEADS, SINGLE_BODY, key="race-key")
            with lock:
                responses.append((response.status_code, response.json(), is_replay(response)))
        except BaseException as exc:  # reported by the test, not lost in the thread
            with lock:
                failures.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=TIMEOUT)

    assert not any(thread.is_alive() for thread in threads), "a request hung"
    assert not failures, failures
    assert len(responses) == THREADS
    originals = [body for status, body, replayed in responses if status == 201 and not replayed]
    assert len(originals) == 1, responses
    for status, body, _replayed in responses:
        if status == 201:
            assert body == originals[0]
        else:
            assert (status, body["code"]) == (409, "idempotency_key_in_progress"), body
    assert list(Lead.objects.filter(account=account).values_list("id", flat=True)) == [uuid.UUID(originals[0]["id"])]
    assert IdempotencyKey.objects.get(account=account, key="race-key").state == IdempotencyKey.State.COMPLETED
