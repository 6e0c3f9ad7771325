"""Fault injection (issue 11, docs/security.md "Fault injection"): real PostgreSQL, Redis and Celery,
each made to fail at a chosen point, and what a client sees and what is kept.

- PostgreSQL: the server kills our connection (pg_terminate_backend from another session) in the
  middle of a batch create. Nothing of the batch is written, the client gets 503
  `service_unavailable` with Retry-After, and the retry with the same Idempotency-Key creates the
  leads exactly once.
- Redis: the limiter and the cache point at a closed port. The API keeps answering 200 with the
  rate-limit headers from the per-process fallback window; the outage is logged once.
- Celery broker: unreachable while leads are written. The writes succeed, the events and their
  deliveries wait in the outbox tables, and once the broker is back a real worker's sweep delivers
  each of them once.
- A webhook receiver that accepts the connection and never answers: the attempt is cut off at the
  configured timeout, logged as failed with a next_attempt_at, and a healthy receiver still gets its
  event in the same sweep from the same single-threaded worker.
"""

from __future__ import annotations

import logging
import socket
import threading
from contextlib import contextmanager
from datetime import timedelta

import psycopg
import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from config.celery import app
from core import ratelimit
from core.idempotency import request_fingerprint
from core.models import IdempotencyKey
from leads import batch
from leads.models import Lead
from webhooks import tasks
from webhooks.models import DeliveryStatus, Event, WebhookDelivery

from .test_celery_worker import redis_worker
from .webhook_receiver import Receiver

LEADS = "/api/v1/leads"
BATCH = "/api/v1/leads/batch"
WEBHOOKS = "/api/v1/webhooks"


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/problem+json")
    body = response.json()
    assert (body["status"], body["code"]) == (status, code)
    return body


# --- PostgreSQL: the connection dies in the middle of a batch -------------------------------------


def terminate_our_backend() -> None:
    """Kill this thread's database session from a second session, as a server restart, a failover
    or an idle-session killer would, and wait until it is gone."""
    pid = connection.connection.info.backend_pid
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    with psycopg.connect(**params, autocommit=True) as admin:
        (killed,) = admin.execute("SELECT pg_terminate_backend(%s, 5000)", [pid]).fetchone()
    assert killed


@pytest.fixture
def kill_connection_at(monkeypatch):
    """kill_connection_at(module, name): the first call of module.name kills the connection, then
    runs the real function, whose first query finds it dead."""
    fired = []

    def arm(module, name: str) -> list:
        original = getattr(module, name)

        def dying(*args, **kwargs):
            if not fired:
                fired.append(name)
                terminate_our_backend()
            return original(*args, **kwargs)

        monkeypatch.setattr(module, name, dying)
        return fired

    return arm


BATCH_BODY = {"leads": [{"email": f"fault{i}@example.com", "tags": ["fault"]} for i in range(20)]}


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "step",
    [
        "lookup_identities",  # inside the transaction, before anything is written
        "events_record",  # after the INSERT and the scoring, before the events: the worst moment
        "_member_ids",  # outside the transaction, between the idempotency claim and the batch
    ],
)
def test_a_connection_killed_mid_batch_writes_nothing_answers_503_and_the_retry_with_the_key_runs_once(
    api, owner, kill_connection_at, step, caplog
):
    fired = kill_connection_at(batch, step)
    body = {"leads": [dict(item) for item in BATCH_BODY["leads"]]}
    body["leads"][0]["owner"] = owner.pk  # so that the batch asks for the account's members (_member_ids)

    with caplog.at_level(logging.ERROR, logger="leadbase.errors"):
        failed = api.post(BATCH, body, format="json", HTTP_IDEMPOTENCY_KEY="batch-under-fire")

    assert fired == [step]
    problem(failed, 503, "service_unavailable")
    assert failed["Retry-After"].isdigit() and int(failed["Retry-After"]) > 0
    assert "database unavailable" in caplog.text
    assert "Traceback" not in failed.content.decode() and "psycopg" not in failed.content.decode()
    # Nothing of the batch: no lead, no event, and the key is free again for the retry.
    assert Lead.objects.count() == 0
    assert Event.objects.count() == 0
    assert not IdempotencyKey.objects.filter(key="batch-under-fire").exists()

    retried = api.post(BATCH, body, format="json", HTTP_IDEMPOTENCY_KEY="batch-under-fire")
    assert retried.status_code == 207, retried.content
    assert retried.json()["summary"] == {"succeeded": 20, "failed": 0}
    assert "Idempotent-Replayed" not in retried

    again = api.post(BATCH, body, format="json", HTTP_IDEMPOTENCY_KEY="batch-under-fire")
    assert again.status_code == 207
    assert again["Idempotent-Replayed"] == "true"
    assert again.json() == retried.json()
    assert Lead.objects.count() == 20
    assert Event.objects.filter(type="lead.created").count() == 20


@pytest.mark.django_db
def test_a_key_whose_request_died_with_its_process_is_taken_over_after_the_lease(api, account, settings):
    """A worker killed mid-request (OOM, SIGKILL) never releases its claim: after the lease the key
    is free again instead of answering 409 for 24 hours."""
    settings.LEADBASE_IDEMPOTENCY_LEASE_SECONDS = 60
    IdempotencyKey.objects.create(
        account=account,
        key="orphan",
        method="POST",
        path=BATCH,
        request_hash=request_fingerprint(Request(APIRequestFactory().post(BATCH, BATCH_BODY, format="json"))),
        expires_at=timezone.now() + timedelta(hours=24),
    )
    problem(
        api.post(BATCH, BATCH_BODY, format="json", HTTP_IDEMPOTENCY_KEY="orphan"), 409, "idempotency_key_in_progress"
    )

    IdempotencyKey.objects.filter(key="orphan").update(created_at=timezone.now() - timedelta(seconds=61))
    response = api.post(BATCH, BATCH_BODY, format="json", HTTP_IDEMPOTENCY_KEY="orphan")
    assert response.status_code == 207, response.content
    assert Lead.objects.count() == 20
    assert api.post(BATCH, BATCH_BODY, format="json", HTTP_IDEMPOTENCY_KEY="orphan")["Idempotent-Replayed"] == "true"


# --- Redis down ------------------------------------------------------------------------------------


@pytest.fixture
def redis_down(settings):
    """REDIS_URL (limiter) and the cache both point at a port nothing listens on."""
    assert settings.CACHES["default"]["BACKEND"] == "core.cache.ResilientRedisCache"
    url = f"redis://127.0.0.1:{closed_port()}/0"
    settings.REDIS_URL = url
    settings.CACHES = {"default": {**settings.CACHES["default"], "LOCATION": url}}
    ratelimit.reset_limiter()
    yield url
    ratelimit.reset_limiter()


@pytest.mark.redis
@pytest.mark.django_db
def test_with_redis_down_the_api_keeps_serving_from_the_per_process_window_and_logs_the_outage_once(
    account, make_client, redis_down, caplog
):
    account.rate_limit_override = 5
    account.save(update_fields=["rate_limit_override"])
    api = make_client(account)
    api.post(LEADS, {"email": "still@example.com"}, format="json")

    with caplog.at_level(logging.ERROR):
        answers = [api.get(LEADS) for _ in range(5)]

    assert [r.status_code for r in answers[:4]] == [200] * 4
    assert answers[0].json()["results"][0]["email"] == "still@example.com"
    # The budget still holds, counted in this process: the create and four reads, then the fifth read.
    assert [r["X-RateLimit-Remaining"] for r in answers[:4]] == ["3", "2", "1", "0"]
    problem(answers[4], 429, "rate_limited")
    outage = [r for r in caplog.records if r.name == "leadbase.ratelimit"]
    assert len(outage) == 1 and "Redis unavailable" in outage[0].getMessage()
    assert not [r for r in caplog.records if r.name in ("django.request", "leadbase.errors")]


@pytest.mark.redis
@pytest.mark.django_db
def test_with_redis_down_people_can_still_log_in_to_the_web_ui(redis_down, owner, caplog):
    owner.set_password("pw-for-tests-123")
    owner.save()
    client = Client()
    with caplog.at_level(logging.ERROR):
        response = client.post("/login/", {"username": owner.email, "password": "pw-for-tests-123"})
        assert response.status_code == 302, response.content[:500]
        assert client.get("/leads/").status_code == 200
    outage = [r for r in caplog.records if r.name == "leadbase.cache"]
    assert len(outage) == 1 and "Redis unavailable" in outage[0].getMessage()
    assert not [r for r in caplog.records if r.name == "django.request"]


@pytest.mark.redis
@pytest.mark.django_db
def test_with_redis_down_the_login_form_is_still_rate_limited_per_process(redis_down, owner, settings):
    client = Client()
    statuses = [client.post("/login/", {"username": owner.email, "password": "wrong"}).status_code for _ in range(11)]
    # 5 a minute per username, in django-ratelimit's fixed windows: 11 attempts put at least 6 in one
    # window even if they straddle a window's end.
    assert statuses[:5] == [200] * 5
    assert 429 in statuses[5:]


# --- Celery broker down ----------------------------------------------------------------------------


@contextmanager
def broker_unreachable():
    """The real Celery app, not eager, on a broker nothing answers (publishing retries then fails)."""
    overrides = {
        "broker_url": f"redis://127.0.0.1:{closed_port()}/0",
        "task_always_eager": False,
        "broker_connection_retry": False,
        "broker_connection_max_retries": 0,
        "task_publish_retry_policy": {"max_retries": 1, "interval_start": 0, "interval_step": 0.1},
    }
    saved = {key: app.conf[key] for key in overrides}
    app.conf.update(overrides)
    from .test_celery_worker import _reset_broker_state

    _reset_broker_state()
    try:
        yield
    finally:
        app.conf.update(saved)
        _reset_broker_state()


@pytest.fixture
def private_targets_allowed(settings):
    settings.LEADBASE_WEBHOOKS_ALLOW_PRIVATE = True  # the receivers live on 127.0.0.1


def subscribe(api, url: str) -> dict:
    response = api.post(WEBHOOKS, {"url": url, "event_types": []}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_with_the_broker_down_writes_succeed_and_a_real_worker_delivers_the_outbox_once_the_broker_is_back(
    api, private_targets_allowed, monkeypatch, caplog
):
    with Receiver() as receiver:
        subscribe(api, receiver.url)
        with broker_unreachable(), caplog.at_level(logging.WARNING, logger="leadbase.webhooks"):
            created = api.post(BATCH, {"leads": [{"email": f"q{i}@example.com"} for i in range(5)]}, format="json")
            single = api.post(LEADS, {"email": "single@example.com"}, format="json")

        assert created.status_code == 207 and created.json()["summary"]["succeeded"] == 5
        assert single.status_code == 201
        assert "could not enqueue webhook delivery" in caplog.text
        assert receiver.requests == []
        pending = WebhookDelivery.objects.all()
        assert pending.count() == 6
        assert {(d.status, d.attempts) for d in pending} == {(DeliveryStatus.PENDING, 0)}

        # The broker is back: beat's periodic sweep reaches a real worker, which delivers everything once.
        with redis_worker(monkeypatch):
            tasks.sweep.delay()
            requests = receiver.wait_for(6)

        assert sorted(r.json()["data"]["lead"]["email"] for r in requests) == sorted(
            [f"q{i}@example.com" for i in range(5)] + ["single@example.com"]
        )
        assert sorted(r.delivery for r in requests) == sorted(str(d.pk) for d in pending)
        assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {DeliveryStatus.SUCCEEDED}


# --- a webhook receiver that hangs ---------------------------------------------------------------


class SilentServer:
    """Accepts TCP connections and never reads or answers: a receiver stuck behind a dead backend."""

    def __init__(self):
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self.port = self._sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def _serve(self):
        self._sock.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted.append(conn)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        for conn in self.accepted:
            conn.close()
        self._sock.close()


@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_receiver_that_never_answers_is_cut_off_at_the_timeout_and_does_not_starve_a_healthy_one(
    api, private_targets_allowed, settings, monkeypatch
):
    settings.LEADBASE_WEBHOOK_TIMEOUT = 1
    with SilentServer() as silent, Receiver() as healthy, broker_unreachable():
        hung = subscribe(api, silent.url)
        subscribe(api, healthy.url)
        # Two leads: the silent receiver's two deliveries are due first, the healthy one's after them.
        assert api.post(LEADS, {"email": "first@example.com"}, format="json").status_code == 201
        assert api.post(LEADS, {"email": "second@example.com"}, format="json").status_code == 201
        assert WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING).count() == 4
        started = timezone.now()

        with redis_worker(monkeypatch):  # one worker, one task at a time
            tasks.sweep.delay()
            received = healthy.wait_for(2)

        assert sorted(r.json()["data"]["lead"]["email"] for r in received) == [
            "first@example.com",
            "second@example.com",
        ]
        assert len(silent.accepted) == 2  # it was really tried, and really held the connection
        stuck = WebhookDelivery.objects.filter(subscription_id=hung["id"]).order_by("created_at")
        assert stuck.count() == 2
        for delivery in stuck:
            assert (delivery.status, delivery.attempts, delivery.last_status_code) == (DeliveryStatus.PENDING, 1, None)
            assert delivery.next_attempt_at > delivery.last_attempt_at >= started
            (attempt,) = delivery.attempt_log.all()
            assert attempt.error == "TimeoutError: no complete answer within 1 s"
        assert not WebhookDelivery.objects.exclude(subscription_id=hung["id"]).exclude(status=DeliveryStatus.SUCCEEDED)
