"""Job lifecycle: create (and enqueue after commit), start, report progress, succeed, fail."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.db import transaction
from django.utils import timezone

from accounts.actor import Actor
from accounts.models import Account

from .models import Job, JobKind, JobStatus

logger = logging.getLogger("leadbase.jobs")


def job_create(
    *, account: Account, actor: Actor | None, kind: JobKind, params: dict[str, Any], enqueue: Callable[[Job], None]
) -> Job:
    """Create a queued job and call `enqueue(job)` once the surrounding transaction commits."""
    job = Job.objects.create(account=account, kind=kind, params=params, created_by=actor.user if actor else None)
    transaction.on_commit(lambda: _enqueue(job, enqueue))
    return job


def _enqueue(job: Job, enqueue: Callable[[Job], None]) -> None:
    """Hand the job to Celery. Should that raise (the broker is unreachable, or in the embedded mode
    the eagerly run task failed), the job is marked failed with the reason instead of the error
    escaping a request whose transaction has already committed: the client gets its 2xx with the
    job, and the job says what went wrong, rather than a 500 and a job left queued forever."""
    try:
        enqueue(job)
    except Exception as exc:
        logger.exception("job %s (%s) failed to run or to be enqueued", job.pk, job.kind)
        # A task that recorded its own failure keeps that (more precise) error.
        Job.objects.filter(pk=job.pk, status__in=[JobStatus.QUEUED, JobStatus.RUNNING]).update(
            status=JobStatus.FAILED, error=f"{type(exc).__name__}: {exc}"[:2000], finished_at=timezone.now()
        )


def job_start(*, job_id, total: int | None = None) -> Job:
    Job.objects.filter(pk=job_id).update(
        status=JobStatus.RUNNING, started_at=timezone.now(), progress_total=total, progress_done=0, error=""
    )
    return Job.objects.get(pk=job_id)


def job_progress(*, job_id, done: int, total: int | None = None) -> None:
    fields: dict[str, Any] = {"progress_done": done}
    if total is not None:
        fields["progress_total"] = total
    Job.objects.filter(pk=job_id).update(**fields)


def job_succeed(*, job_id, result: dict[str, Any], file_name: str | None = None) -> None:
    fields: dict[str, Any] = {"status": JobStatus.SUCCEEDED, "result": result, "finished_at": timezone.now()}
    if file_name is not None:
        fields["file"] = file_name
    Job.objects.filter(pk=job_id).update(**fields)


def job_requeue(*, job_id, reason: str) -> None:
    """The task hit a transient error and will be retried: the job waits in the queue again (not
    failed, which a client would take as final), with the reason in `error` until it restarts."""
    Job.objects.filter(pk=job_id).update(status=JobStatus.QUEUED, error=f"Will retry after: {reason}"[:2000])


def job_fail(*, job_id, error: str) -> None:
    Job.objects.filter(pk=job_id).update(status=JobStatus.FAILED, error=error[:2000], finished_at=timezone.now())
