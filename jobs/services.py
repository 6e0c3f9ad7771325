"""Job lifecycle: create (and enqueue after commit), start, report progress, succeed, fail."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import transaction
from django.utils import timezone

from accounts.actor import Actor
from accounts.models import Account

from .models import Job, JobKind, JobStatus


def job_create(
    *, account: Account, actor: Actor | None, kind: JobKind, params: dict[str, Any], enqueue: Callable[[Job], None]
) -> Job:
    """Create a queued job and call `enqueue(job)` once the surrounding transaction commits."""
    job = Job.objects.create(account=account, kind=kind, params=params, created_by=actor.user if actor else None)
    transaction.on_commit(lambda: enqueue(job))
    return job


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


def job_fail(*, job_id, error: str) -> None:
    Job.objects.filter(pk=job_id).update(status=JobStatus.FAILED, error=error[:2000], finished_at=timezone.now())
