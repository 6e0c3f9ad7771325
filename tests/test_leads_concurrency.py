"""Concurrent creates of one identity make one lead (§4.4): the database constraints decide the race.

Ten threads, each with its own APIClient and database connection, POST at the same moment through
the whole stack (authentication, view, service, constraint). Needs PostgreSQL: SQLite serializes
writers, so it could not show a race.
"""

from __future__ import annotations

import threading

import pytest
from django.db import connection
from rest_framework.test import APIClient

from leads.models import Lead

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

THREADS = 10
TIMEOUT = 30


def race(raw_key: str, path: str, payload: dict) -> list[tuple[int, dict]]:
    """POST `payload` to `path` from THREADS threads released together; returns (status, body) each."""
    barrier = threading.Barrier(THREADS)
    results: list[tuple[int, dict]] = []
    failures: list[BaseException] = []
    lock = threading.Lock()

    def worker() -> None:
        try:
            client = APIClient()
            client.credentials(HTTP_X_API_KEY=raw_key)
            barrier.wait(timeout=TIMEOUT)
            response = client.post(path, payload, format="json")
            with lock:
                results.append((response.status_code, response.json()))
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
    assert len(results) == THREADS
    return results


def statuses(results) -> list[int]:
    return sorted(status for status, _ in results)


def created_id(results) -> str:
    (body,) = [body for status, body in results if status == 201]
    return body["id"]


@pytest.mark.parametrize(
    "payload",
    [{"email": "race@example.com"}, {"external_id": "crm-race-1"}],
    ids=["email", "external_id"],
)
def test_concurrent_creates_of_one_identity_make_one_lead_and_nine_duplicate_errors(make_key, account, payload):
    results = race(make_key(account), "/api/v1/leads", payload)

    assert statuses(results) == [201] + [409] * (THREADS - 1)
    lead_id = created_id(results)
    for status, body in results:
        if status == 409:
            assert body["code"] == "duplicate_lead"
            assert body["existing_id"] == lead_id
    assert Lead.objects.filter(account=account).count() == 1
    assert str(Lead.objects.get(account=account).pk) == lead_id


def test_concurrent_creates_with_differently_written_emails_make_one_lead(make_key, account):
    raw_key = make_key(account)
    barrier = threading.Barrier(THREADS)
    codes: list[int] = []
    lock = threading.Lock()

    def worker(index: int) -> None:
        try:
            client = APIClient()
            client.credentials(HTTP_X_API_KEY=raw_key)
            email = " Race@Example.com " if index % 2 else "RACE@example.COM"
            barrier.wait(timeout=TIMEOUT)
            response = client.post("/api/v1/leads", {"email": email}, format="json")
            with lock:
                codes.append(response.status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=TIMEOUT)

    assert sorted(codes) == [201] + [409] * (THREADS - 1)
    assert list(Lead.objects.filter(account=account).values_list("email", flat=True)) == ["race@example.com"]


@pytest.mark.parametrize(
    "payload",
    [{"email": "skip-race@example.com", "city": "Paris"}, {"external_id": "crm-race-2", "city": "Paris"}],
    ids=["email", "external_id"],
)
def test_concurrent_creates_with_on_duplicate_skip_make_one_lead_and_return_it_to_everyone(make_key, account, payload):
    results = race(make_key(account), "/api/v1/leads?on_duplicate=skip", payload)

    assert statuses(results) == [200] * (THREADS - 1) + [201]
    lead_id = created_id(results)
    assert all(body["id"] == lead_id for _, body in results)
    assert Lead.objects.filter(account=account).count() == 1
    assert Lead.objects.get(account=account).version == 1
