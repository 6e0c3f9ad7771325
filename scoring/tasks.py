"""Thin Celery tasks for scoring: ids in, a service call inside."""

from celery import shared_task
from django.db import InterfaceError, OperationalError

from . import services


@shared_task(
    name="scoring.recalculate_account",
    bind=True,
    acks_late=True,
    max_retries=3,
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=True,
)
def recalculate_account(self, account_id: int, job_id: str) -> None:
    services.recalculation_run(account_id=account_id, job_id=job_id)
