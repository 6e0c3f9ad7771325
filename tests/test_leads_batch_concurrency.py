"""Two batches with overlapping identities posted at the same moment (§4.4, §4.5): the unique
constraints decide every race, so each email ends up as one lead and every item's report tells the
truth about the database. Needs PostgreSQL: SQLite serializes writers and could not show a race.
"""

from __future__ import annotations

import threading
import uuid

import pytest
from django.db import connection
from rest_framework.test import APIClient

from leads.models import Lead

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

BATCH = "/api/v1/leads/batch"
TIMEOUT = 60
OVERLAP = 100


def batches() -> tuple[list[dict], list[dict]]:
    """Two batches of 200: 100 emails of their own and 100 shared ones. The second batch lists the
    shared emails in the opposite order, every third one written in another case."""
    shared = [f"shared{i}@example.com" for i in range(OVERLAP)]
    first = [{"email": email, "city": "First"} for email in shared]
    first += [{"email": f"first{i}@example.com", "city": "First"} for i in range(OVERLAP)]
    second = [
        {"email": email.upper() if i % 3 == 0 else email, "city": "Second"}
        for i, email in reversed(list(enumerate(shared)))
    ]
    second += [{"email": f"second{i}@example.com", "city": "Second"} for i in range(OVERLAP)]
    return first, second


def race(raw_key: str, path: str, bodies: list[dict]) -> list[list[dict]]:
    """POST each body from its own thread, released together; returns each batch's results."""
    barrier = threading.Barrier(len(bodies))
    reports: list[list[dict] | None] = [None] * len(bodies)
    failures: list[BaseException] = []
    lock = threading.Lock()

    def worker(index: int) -> None:
        try:
            client = APIClient()
            client.credentials(HTTP_X_API_KEY=raw_key)
            barrier.wait(timeout=TIMEOUT)
            response = client.post(path, bodies[index], format="json")
            assert response.status_code == 207, response.content[:500]
            reports[index] = response.json()["results"]
        except BaseException as exc:  # reported by the test, not lost in the thread
            with lock:
                failures.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=TIMEOUT)
    assert not any(thread.is_alive() for thread in threads), "a request hung"
    assert not failures, failures
    return reports


def paired(items: list[dict], results: list[dict]) -> list[tuple[str, dict]]:
    assert [r["index"] for r in results] == list(range(len(items)))
    return [(item["email"].strip().lower(), result) for item, result in zip(items, results, strict=True)]


def stored(account) -> dict[str, str]:
    rows = list(Lead.objects.filter(account=account).values_list("email", "id"))
    emails = [email for email, _ in rows]
    assert len(emails) == len(set(emails)), "an email was stored twice"
    return {email: str(pk) for email, pk in rows}


def test_concurrent_overlapping_batches_make_one_lead_per_email_and_report_each_item_truthfully(make_key, account):
    first, second = batches()

    reports = race(make_key(account), BATCH, [{"leads": first}, {"leads": second}])

    rows = stored(account)
    distinct = {item["email"].lower() for item in first + second}
    assert set(rows) == distinct
    created = 0
    for items, results in zip((first, second), reports, strict=True):
        for email, result in paired(items, results):
            if result["status"] == 201:
                created += 1
                assert result["id"] == rows[email]
                assert result["lead"]["email"] == email
            else:
                assert (result["status"], result["error"]["code"]) == (409, "duplicate_lead"), result
                assert result["error"]["existing_id"] == rows[email]
    assert created == len(distinct)


@pytest.mark.parametrize("on_duplicate, outcome", [("skip", "skipped"), ("update", "updated")])
def test_concurrent_overlapping_batches_with_on_duplicate_succeed_for_every_item(
    make_key, account, on_duplicate, outcome
):
    first, second = batches()

    reports = race(make_key(account), f"{BATCH}?on_duplicate={on_duplicate}", [{"leads": first}, {"leads": second}])

    rows = stored(account)
    distinct = {item["email"].lower() for item in first + second}
    assert set(rows) == distinct
    created = 0
    for items, results in zip((first, second), reports, strict=True):
        for email, result in paired(items, results):
            assert result["id"] == rows[email], result
            if result["status"] == 201:
                created += 1
                assert result["outcome"] == "created"
            else:
                assert (result["status"], result["outcome"]) == (200, outcome), result
    assert created == len(distinct)
    cities = dict(Lead.objects.filter(account=account).values_list("email", "city"))
    assert {cities[f"first{i}@example.com"] for i in range(OVERLAP)} == {"First"}
    assert {cities[f"second{i}@example.com"] for i in range(OVERLAP)} == {"Second"}
    shared_cities = {cities[f"shared{i}@example.com"] for i in range(OVERLAP)}
    if on_duplicate == "skip":
        assert len(shared_cities) == 1  # the batch that created them all; the other skipped them all
    else:
        assert shared_cities <= {"First", "Second"}


def test_concurrent_batches_whose_items_are_soft_duplicates_of_each_other_both_commit(make_key, account):
    """An item that loses its email to the other batch must not leave a later item of its own batch
    pointing (possible_duplicate_of) at a lead that was never inserted."""
    first, second = [], []
    for i in range(OVERLAP):
        phone = f"+1 202 555 {i:04d}"
        first.append({"email": f"shared{i}@example.com", "phone": phone})
        second.append({"email": f"shared{i}@example.com", "phone": phone})
        first.append({"email": f"first{i}@example.com", "phone": phone})
        second.append({"email": f"second{i}@example.com", "phone": phone})

    reports = race(make_key(account), BATCH, [{"leads": first}, {"leads": second}])

    rows = stored(account)
    assert len(rows) == 3 * OVERLAP
    for items, results in zip((first, second), reports, strict=True):
        for email, result in paired(items, results):
            if result["status"] == 201:
                assert result["id"] == rows[email]
                pointer = result["lead"]["possible_duplicate_of"]
                assert pointer is None or pointer in rows.values(), result
            else:
                assert result["error"]["existing_id"] == rows[email]
    pointers = set(Lead.objects.filter(account=account).values_list("possible_duplicate_of_id", flat=True))
    assert pointers - {None} <= {uuid.UUID(pk) for pk in rows.values()}


@pytest.mark.parametrize("on_duplicate", ["error", "update"])
def test_concurrent_batches_of_the_same_500_emails_in_opposite_orders_do_not_deadlock(make_key, account, on_duplicate):
    raw_key = make_key(account)
    for round_ in range(3):  # a deadlock needs the two INSERTs to overlap: give it several chances
        forward = [
            {
                "email": f"r{round_}-lead{i}@example.com",
                "phone": f"+1 202 555 {i:04d}",
                "first_name": "Ada",
                "last_name": f"L{i}",
                "company": "Engines",
                "tags": ["race"],
            }
            for i in range(500)
        ]
        backward = list(reversed(forward))

        reports = race(raw_key, f"{BATCH}?on_duplicate={on_duplicate}", [{"leads": forward}, {"leads": backward}])

        rows = stored(account)
        assert len(rows) == 500 * (round_ + 1)
        assert sum(r["status"] == 201 for report in reports for r in report) == 500
        for items, results in zip((forward, backward), reports, strict=True):
            for email, result in paired(items, results):
                assert result.get("id", result.get("error", {}).get("existing_id")) == rows[email], result
