"""Thin Celery tasks for scoring: ids in, a service call inside."""

from celery import shared_task
from celery.utils.time import get_exponential_backoff_interval

from . import services


@shared_task(name="scoring.recalculate_account", bind=True, acks_late=True, max_retries=3)
def recalculate_account(self, account_id: int, job_id: str) -> None:
    """Rescore an account's leads. A transient database error is retried with jittered exponential
    backoff, the job showing queued (not failed) meanwhile; then, or on any other error, the job is
    recorded as failed. Run eagerly (the embedded mode) nobody would retry later: it fails at once."""
    will_retry = not self.request.is_eager and self.request.retries < self.max_retries
    try:
        services.recalculation_run(account_id=account_id, job_id=job_id, will_retry=will_retry)
    except services.TRANSIENT_DB_ERRORS as exc:
        if not will_retry:
            raise
        countdown = get_exponential_backoff_interval(
            factor=1, retries=self.request.retries, maximum=600, full_jitter=True
        )
        raise self.retry(exc=exc, countdown=countdown) from exc
