"""Thin Celery tasks for leads: ids in, a service call inside, retries for transient errors."""

from __future__ import annotations

from celery import shared_task

from . import exports, imports

RETRY_BASE_SECONDS = 30


@shared_task(name="leads.export", bind=True, acks_late=True, max_retries=3)
def export_leads(self, account_id: int, job_id: str) -> None:
    """Write an export job's file. The service records any non-transient failure on the job. A
    transient database error is retried with backoff (30 s, 60 s, 120 s), the job showing queued
    meanwhile, then recorded as failed. Run eagerly (the embedded mode, inside the request) nobody
    would retry later: it is recorded at once."""
    try:
        exports.export_job_run(account_id=account_id, job_id=job_id)
    except exports.TRANSIENT_DB_ERRORS as exc:
        retries = self.request.retries
        if self.request.is_eager or retries >= self.max_retries:
            exports.export_job_give_up(job_id=job_id, retries=retries)
            return
        exports.export_job_requeue(job_id=job_id, error=exc)
        raise self.retry(exc=exc, countdown=RETRY_BASE_SECONDS * 2**retries) from exc


@shared_task(name="leads.purge_imports")
def purge_imports() -> int:
    """Daily: drop stored CSV imports older than LEADBASE_IMPORT_RETENTION_HOURS."""
    return imports.imports_purge()
