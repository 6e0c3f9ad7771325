"""Periodic housekeeping, scheduled by Celery beat (CELERY_BEAT_SCHEDULE in settings)."""

from celery import shared_task

from .idempotency import idempotency_keys_purge


@shared_task(name="core.purge_idempotency_keys", acks_late=True, max_retries=3)
def purge_idempotency_keys() -> int:
    return idempotency_keys_purge()
