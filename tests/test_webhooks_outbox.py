"""The transactional outbox (§4.10, issue 6): an event and its deliveries commit with the change,
so a process that dies between commit and enqueue, or a broker that is down, loses nothing: the
sweeper finds the pending rows and delivers each event once, with the payload that was committed.
Workers lease due rows with FOR UPDATE SKIP LOCKED, so two at once never send a delivery twice.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone
from kombu.exceptions import OperationalError

from webhooks import services, tasks
from webhooks.models import DeliveryAttempt, DeliveryStatus, Event, WebhookDelivery

from .webhook_receiver import Receiver, Reply, documented_verify

pytestmark = pytest.mark.django_db

WEBHOOKS = "/api/v1/webhooks"
LEADS = "/api/v1/leads"
verify = documented_verify()


@pytest.fixture(autouse=True)
def private_targets_allowed(settings):
    settings.LEADBASE_WEBHOOKS_ALLOW_PRIVATE = True  # the receiver lives on 127.0.0.1


@pytest.fixture
def receiver():
    with Receiver() as r:
        yield r


@pytest.fixture
def broker_down(monkeypatch):
    """Every enqueue of the delivery task fails as it does when Redis is unreachable."""

    def unreachable(*args, **kwargs):
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(tasks.deliver_due, "delay", unreachable)


@pytest.fixture
def dies_after_commit(monkeypatch):
    """The process dies right after COMMIT: the after-commit hooks (the enqueue) never run."""
    monkeypatch.setattr(transaction, "on_commit", lambda *args, **kwargs: None)


def subscribe(api, url: str, event_types: list[str] | None = None) -> dict:
    response = api.post(WEBHOOKS, {"url": url, "event_types": event_types or []}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def feed(api) -> list[dict]:
    response = api.get("/api/v1/events", {"limit": 500})
    assert response.status_code == 200, response.content
    return response.json()["results"]


def write_some_leads(api) -> None:
    """A single create, a batch of three, an update and a delete: six events."""
    created = api.post(LEADS, {"email": "ada@example.com", "city": "Paris"}, format="json")
    assert created.status_code == 201, created.content
    ada = created.json()["id"]
    batch = [{"email": f"b{i}@example.com"} for i in range(3)]
    response = api.post(f"{LEADS}/batch", {"leads": batch}, format="json")
    assert response.status_code == 207 and all(r["status"] == 201 for r in response.json()["results"])
    assert api.patch(f"{LEADS}/{ada}", {"status": "contacted", "city": "Lyon"}, format="json").status_code == 200
    doomed = response.json()["results"][0]["id"]
    assert api.delete(f"{LEADS}/{doomed}").status_code == 204


def assert_each_event_delivered_once_as_committed(receiver, events: list[dict], secret: str) -> None:
    requests = receiver.wait_for(len(events))
    assert len(requests) == len(events)
    pending = set(WebhookDelivery.objects.values_list("pk", flat=True))
    assert sorted(r.delivery for r in requests) == sorted(str(pk) for pk in pending)  # each delivery once
    by_id = {e["id"]: e for e in events}
    received = [r.json() for r in requests]
    assert sorted(e["id"] for e in received) == sorted(by_id)  # each event once
    for request, body in zip(requests, received, strict=True):
        assert body == by_id[body["id"]]  # byte for byte what the feed shows was committed
        assert request.event == body["type"]
        assert verify(secret, request.body, request.signature)
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {DeliveryStatus.SUCCEEDED}


# --- the broker is down / the process died between commit and enqueue -----------------------


@pytest.mark.django_db(transaction=True)
def test_with_the_broker_unreachable_writes_succeed_and_the_sweeper_later_delivers_each_event_once_as_committed(
    api, receiver, broker_down, caplog
):
    hook = subscribe(api, receiver.url)

    with caplog.at_level(logging.WARNING, logger="leadbase.webhooks"):
        write_some_leads(api)

    assert receiver.requests == []
    assert "could not enqueue webhook delivery" in caplog.text
    events = feed(api)
    assert [e["type"] for e in events] == ["lead.created"] * 4 + ["lead.updated", "lead.deleted"]
    pending = WebhookDelivery.objects.select_related("event")
    assert pending.count() == 6
    assert all(d.status == DeliveryStatus.PENDING and d.attempts == 0 for d in pending)
    assert sorted(d.event.payload()["id"] for d in pending) == sorted(e["id"] for e in events)

    assert services.sweep() == 6

    assert_each_event_delivered_once_as_committed(receiver, events, hook["secret"])
    created = next(e for e in events if e["type"] == "lead.created" and e["data"]["lead"]["email"] == "ada@example.com")
    assert (created["data"]["lead"]["status"], created["data"]["lead"]["city"]) == ("new", "Paris")  # as created
    assert services.sweep() == 0
    assert len(receiver.requests) == 6


@pytest.mark.django_db(transaction=True)
def test_when_the_process_dies_between_commit_and_enqueue_the_periodic_sweep_task_delivers_the_events(
    api, receiver, dies_after_commit, settings
):
    hook = subscribe(api, receiver.url)

    write_some_leads(api)

    assert receiver.requests == []
    assert WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING, attempts=0).count() == 6
    assert settings.CELERY_BEAT_SCHEDULE["webhooks-sweep"]["task"] == tasks.sweep.name

    tasks.sweep.delay()  # what beat runs every 30 s (eager in tests)

    assert_each_event_delivered_once_as_committed(receiver, feed(api), hook["secret"])


def test_a_delivery_whose_worker_died_mid_attempt_is_sent_again_once_its_lease_runs_out(api, receiver, broker_down):
    subscribe(api, receiver.url)
    assert api.post(LEADS, {"email": "ada@example.com"}, format="json").status_code == 201
    now = timezone.now()
    (leased,) = services._lease(now, 10)  # a worker took it and died before POSTing

    assert services.sweep(now=now) == 0  # leased: nobody else sends it meanwhile
    assert services.sweep(now=now + timedelta(minutes=5)) == 1

    (request,) = receiver.wait_for(1)
    assert request.delivery == str(leased)
    assert WebhookDelivery.objects.get().status == DeliveryStatus.SUCCEEDED


def test_an_unexpected_error_on_one_delivery_does_not_hold_up_the_others_and_it_is_retried_later(
    api, receiver, broker_down, monkeypatch, caplog
):
    subscribe(api, receiver.url)
    batch = [{"email": f"e{i}@example.com"} for i in range(3)]
    assert api.post(f"{LEADS}/batch", {"leads": batch}, format="json").status_code == 207
    real_post, calls = services.http.post, []

    def first_call_crashes(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("bug")
        return real_post(*args, **kwargs)

    monkeypatch.setattr(services.http, "post", first_call_crashes)
    now = timezone.now()

    with caplog.at_level(logging.ERROR, logger="leadbase.webhooks"):
        assert services.deliver_due(now=now) == 3

    assert len(receiver.wait_for(2)) == 2
    assert "failed unexpectedly" in caplog.text
    assert WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING).count() == 1
    assert services.deliver_due(now=now) == 0  # still leased
    assert services.deliver_due(now=now + timedelta(minutes=5)) == 1
    assert len(receiver.wait_for(3)) == 3
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {DeliveryStatus.SUCCEEDED}


def test_a_dry_run_batch_writes_no_event_and_no_delivery(api, receiver, django_capture_on_commit_callbacks):
    subscribe(api, receiver.url)

    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(f"{LEADS}/batch?dry_run=true", {"leads": [{"email": "x@example.com"}]}, format="json")

    assert response.status_code == 207, response.content
    assert Event.objects.count() == 0
    assert WebhookDelivery.objects.count() == 0
    assert services.sweep() == 0
    assert receiver.requests == []


def test_events_are_written_even_without_subscriptions_and_no_delivery_rows_then(api):
    write_some_leads(api)

    assert Event.objects.count() == 6
    assert WebhookDelivery.objects.count() == 0


# --- concurrent workers (PostgreSQL: FOR UPDATE SKIP LOCKED) ----------------------------------


def _in_thread(target, results: list, errors: list, barrier: threading.Barrier | None = None) -> threading.Thread:
    def run():
        try:
            if barrier is not None:
                barrier.wait(timeout=10)
            results.append(target())
        except Exception as exc:  # surfaced by the test
            errors.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_workers_delivering_at_once_never_send_one_delivery_twice(api, monkeypatch, dies_after_commit):
    monkeypatch.setattr(services, "DELIVERY_BATCH", 2)  # small leases, so the workers interleave
    with Receiver(default=Reply(hang=0.01)) as receiver:
        subscribe(api, receiver.url)
        batch = [{"email": f"c{i}@example.com"} for i in range(30)]
        assert api.post(f"{LEADS}/batch", {"leads": batch}, format="json").status_code == 207
        results, errors = [], []
        barrier = threading.Barrier(2)

        threads = [_in_thread(services.deliver_due, results, errors, barrier) for _ in range(2)]
        for thread in threads:
            thread.join(timeout=30)

        assert not errors and not any(t.is_alive() for t in threads)
        requests = receiver.wait_for(30)
    assert sorted(results) and sum(results) == 30 and min(results) > 0  # both worked, nothing twice
    ids = [r.delivery for r in requests]
    assert len(ids) == len(set(ids)) == 30
    assert DeliveryAttempt.objects.count() == 30
    assert set(WebhookDelivery.objects.values_list("status", "attempts")) == {(DeliveryStatus.SUCCEEDED, 1)}


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_delivery_locked_by_one_worker_is_skipped_not_waited_for_by_another(api, receiver, dies_after_commit):
    subscribe(api, receiver.url)
    batch = [{"email": f"d{i}@example.com"} for i in range(3)]
    assert api.post(f"{LEADS}/batch", {"leads": batch}, format="json").status_code == 207
    locked = WebhookDelivery.objects.order_by("pk").first()
    results, errors = [], []

    with transaction.atomic():
        WebhookDelivery.objects.select_for_update().get(pk=locked.pk)  # another worker's open lease
        thread = _in_thread(services.deliver_due, results, errors)
        thread.join(timeout=10)
        assert not thread.is_alive(), "deliver_due waited for a locked row instead of skipping it"
    assert not errors and results == [2]
    assert str(locked.pk) not in [r.delivery for r in receiver.wait_for(2)]

    assert services.deliver_due() == 1
    assert sorted(r.delivery for r in receiver.wait_for(3)) == sorted(
        str(pk) for pk in WebhookDelivery.objects.values_list("pk", flat=True)
    )


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_reader_polling_the_feed_never_skips_an_event_whose_transaction_commits_after_a_newer_one(api, account):
    """Event ids come from a sequence when inserted, but become visible at commit: had a later id
    committed first, a reader's cursor would pass the earlier one before it was visible."""
    inserted, release = threading.Event(), threading.Event()
    results, errors = [], []

    def slow_writer():
        with transaction.atomic():
            services.events_record(account=account, type="lead.created", items=[(None, {"writer": "slow"})])
            inserted.set()
            release.wait(timeout=10)

    def fast_writer():
        with transaction.atomic():
            services.events_record(account=account, type="lead.created", items=[(None, {"writer": "fast"})])

    slow = _in_thread(slow_writer, results, errors)
    assert inserted.wait(timeout=10)
    fast = _in_thread(fast_writer, results, errors)
    fast.join(timeout=0.3)  # it commits now, or waits for the slow writer to commit first
    first = api.get("/api/v1/events").json()
    release.set()
    slow.join(timeout=10)
    fast.join(timeout=10)
    assert not errors

    cursor = {"cursor": first["next_cursor"]} if first["next_cursor"] else {}
    later = api.get("/api/v1/events", cursor).json()
    seen = [e["data"]["writer"] for e in first["results"] + later["results"]]
    assert sorted(seen) == ["fast", "slow"]


# --- retention ----------------------------------------------------------------------------------


def _age(event_ids, days: float) -> None:
    Event.objects.filter(pk__in=event_ids).update(created_at=timezone.now() - timedelta(days=days))


def test_events_purge_deletes_events_past_retention_with_their_deliveries_and_keeps_newer_ones(api, receiver, settings):
    settings.LEADBASE_EVENT_RETENTION_DAYS = 30
    subscribe(api, receiver.url)
    write_some_leads(api)
    old, edge, recent, *fresh = Event.objects.order_by("id").values_list("pk", flat=True)
    _age([old], 31)
    _age([edge], 30.01)
    _age([recent], 29.9)

    services.events_purge()

    assert sorted(Event.objects.values_list("pk", flat=True)) == sorted([recent, *fresh])
    assert not WebhookDelivery.objects.filter(event_id__in=[old, edge]).exists()
    assert WebhookDelivery.objects.count() == 4
    assert {e["id"] for e in feed(api)} == {str(pk) for pk in [recent, *fresh]}


def test_events_purge_honours_a_longer_retention_setting_and_its_now_parameter(api, settings):
    settings.LEADBASE_EVENT_RETENTION_DAYS = 45
    write_some_leads(api)
    first, second, *_ = Event.objects.order_by("id").values_list("pk", flat=True)
    _age([first], 44)
    _age([second], 46)

    services.events_purge()
    assert set(Event.objects.values_list("pk", flat=True)) >= {first} and not Event.objects.filter(pk=second).exists()

    services.events_purge(now=timezone.now() + timedelta(days=2))
    assert not Event.objects.filter(pk=first).exists()
    assert Event.objects.count() == 4


def test_the_daily_purge_task_runs_the_purge(api, settings):
    write_some_leads(api)
    _age(list(Event.objects.order_by("id").values_list("pk", flat=True)[:2]), 400)

    tasks.purge_events.delay()

    assert Event.objects.count() == 4
    assert settings.CELERY_BEAT_SCHEDULE["purge-events"]["task"] == tasks.purge_events.name
