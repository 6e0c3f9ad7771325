"""A real Celery worker on the Redis broker runs the score recalculation (§4.9, jobs of §4.2).

Everywhere else the tasks run eagerly. Here the app from config.celery is pointed at Redis for
the duration of a test, a worker thread (celery.contrib.testing) consumes a queue of the test's
own (so parallel test processes never take each other's tasks), and the Job is polled from the
outside as a client would: queued while it waits in the broker, running with progress, then
succeeded or failed.
"""

from __future__ import annotations

import time
import uuid
from contextlib import contextmanager

import pytest
import redis
from celery.contrib.testing.worker import start_worker
from django.conf import settings
from django.db import OperationalError, connection
from django.db.models import Count
from kombu import pools

from config.celery import app
from jobs.models import Job, JobStatus
from leads.models import Lead
from scoring import services
from scoring.models import ScoringRule

from .factories import AccountFactory

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

LEADS = 25_000
CHUNK = 5_000
POLL_SECONDS = 60


def _reset_broker_state() -> None:
    """Drop what the app built from the old configuration: connection pools and the queue/route tables."""
    pools.reset()  # closes kombu's process-wide connection and producer pools, and forgets them
    app._pool = None
    app.__dict__.pop("amqp", None)


@contextmanager
def redis_worker(monkeypatch):
    """The config.celery app on the Redis broker, with a worker thread consuming a queue of this test's own."""
    queue = f"leadbase-test-{uuid.uuid4().hex}"
    overrides = {
        "broker_url": settings.REDIS_URL,
        "task_always_eager": False,
        "task_default_queue": queue,
        "worker_hijack_root_logger": False,
        "worker_enable_remote_control": False,
    }
    saved = {key: app.conf[key] for key in overrides}
    # The worker thread opens its own database connection: close it after each task, so none is left
    # behind holding the test database.
    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", 0)
    app.conf.update(overrides)
    _reset_broker_state()
    try:
        with start_worker(app, perform_ping_check=False, shutdown_timeout=30, loglevel="WARNING"):
            yield queue
    finally:
        app.conf.update(saved)
        _reset_broker_state()
        client = redis.Redis.from_url(settings.REDIS_URL)
        client.delete(queue)
        for key in client.scan_iter("_kombu.binding.*"):
            for member in client.smembers(key):
                if queue.encode() in member:
                    client.srem(key, member)


def poll(job_id, until: set[str], *, timeout: float = POLL_SECONDS) -> list[tuple[str, int]]:
    """Every distinct (status, progress_done) the job passes through, in order, until a final status."""
    seen: list[tuple[str, int]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = tuple(Job.objects.filter(pk=job_id).values_list("status", "progress_done").get())
        if not seen or seen[-1] != state:
            seen.append(state)
        if state[0] in until:
            return seen
        time.sleep(0.005)
    raise AssertionError(f"job {job_id} did not finish within {timeout} s; seen: {seen}")


def statuses(seen: list[tuple[str, int]]) -> list[str]:
    out: list[str] = []
    for status, _ in seen:
        if not out or out[-1] != status:
            out.append(status)
    return out


@pytest.fixture
def slow_progress(monkeypatch):
    """Each chunk's progress stays visible for 50 ms, so a 5 ms poll sees every chunk even on a fast machine."""
    original = services.job_progress

    def job_progress(**kwargs):
        original(**kwargs)
        time.sleep(0.05)

    monkeypatch.setattr(services, "job_progress", job_progress)


def make_leads(account, count: int) -> None:
    Lead.objects.bulk_create(
        (
            Lead(
                account=account,
                email=f"w{i}@{'acme.example' if i % 2 else 'gmail.com'}",
                company="Acme" if i % 5 == 0 else "Initech",
            )
            for i in range(count)
        ),
        batch_size=5_000,
    )


def test_a_real_worker_runs_a_recalculation_queued_then_running_with_progress_then_succeeded(
    monkeypatch, slow_progress
):
    monkeypatch.setattr(services, "RECALCULATION_CHUNK", CHUNK)
    account = AccountFactory(slug="worker-acme")
    other = AccountFactory(slug="worker-globex")
    make_leads(account, LEADS)
    make_leads(other, 10)
    ScoringRule.objects.create(
        account=account, name="Acme", field="company", operator="equals", value="acme", points=40
    )
    ScoringRule.objects.create(
        account=account, name="Free", field="email", operator="is_free_email", value=True, points=-10
    )

    with redis_worker(monkeypatch):
        # Autocommit: the job commits and its task goes to the broker at once.
        job = services.recalculation_enqueue(account=account, actor=None)
        seen = poll(job.pk, until={JobStatus.SUCCEEDED, JobStatus.FAILED})

    assert statuses(seen) == ["queued", "running", "succeeded"], seen
    done = [progress for _, progress in seen]
    assert done == sorted(done), seen
    running = [progress for status, progress in seen if status == "running"]
    assert any(0 < progress < LEADS for progress in running), seen
    assert seen[-1] == ("succeeded", LEADS)
    job.refresh_from_db()
    assert (job.progress_done, job.progress_total, job.error) == (LEADS, LEADS, "")
    assert job.result == {"leads": LEADS, "changed": LEADS // 5 + LEADS // 2 - LEADS // 10, "rules": 2}
    assert job.started_at is not None and job.finished_at is not None
    scores = dict(
        Lead.objects.filter(account=account).values("score").annotate(n=Count("pk")).values_list("score", "n")
    )
    # i % 5 == 0 is Acme (+40); odd i has a company address, even i a free one (-10).
    assert scores == {40: LEADS // 10, 30: LEADS // 10, 0: LEADS - LEADS // 5}
    assert not Lead.objects.filter(account=other).exclude(score=0).exists()
    assert not Lead.objects.filter(account=other, scored_at__isnull=False).exists()


def test_a_task_failure_in_a_real_worker_is_recorded_on_the_job_as_failed(monkeypatch):
    account = AccountFactory(slug="worker-failing")
    make_leads(account, 10)

    def explode(**kwargs):
        raise RuntimeError("rules table is corrupt")

    monkeypatch.setattr(services, "account_rescore", explode)

    with redis_worker(monkeypatch):
        job = services.recalculation_enqueue(account=account, actor=None)
        seen = poll(job.pk, until={JobStatus.SUCCEEDED, JobStatus.FAILED})

    assert statuses(seen)[0] == "queued"
    assert statuses(seen)[-1] == "failed", seen
    job.refresh_from_db()
    assert job.error == "RuntimeError: rules table is corrupt"
    assert job.finished_at is not None


def test_a_transient_database_error_is_retried_by_the_worker_and_the_job_is_never_reported_failed(monkeypatch):
    account = AccountFactory(slug="worker-flaky")
    make_leads(account, 10)
    ScoringRule.objects.create(
        account=account, name="Acme", field="company", operator="equals", value="acme", points=40
    )
    original = services.account_rescore
    calls = []

    def flaky(**kwargs):
        calls.append(kwargs)
        if len(calls) == 1:
            raise OperationalError("server closed the connection unexpectedly")
        return original(**kwargs)

    monkeypatch.setattr(services, "account_rescore", flaky)

    with redis_worker(monkeypatch):
        job = services.recalculation_enqueue(account=account, actor=None)
        seen = poll(job.pk, until={JobStatus.SUCCEEDED})

    assert len(calls) == 2
    assert "failed" not in statuses(seen), seen
    job.refresh_from_db()
    assert (job.status, job.progress_done, job.error) == (JobStatus.SUCCEEDED, 10, "")
    assert Lead.objects.filter(account=account).exclude(score=0).count() == 2
