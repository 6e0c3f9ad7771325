"""Thin Celery tasks for events and webhooks. Retry schedules live in the outbox rows
(`next_attempt_at`), not in task countdowns: a Redis broker redelivers unacknowledged tasks
after an hour, so a countdown of hours would be unreliable."""

from celery import shared_task

from . import services


@shared_task(name="webhooks.deliver_due", acks_late=True, ignore_result=True)
def deliver_due() -> int:
    return services.deliver_due()


@shared_task(name="webhooks.sweep", acks_late=True, ignore_result=True)
def sweep() -> int:
    return services.sweep()


@shared_task(name="webhooks.purge_events", acks_late=True, ignore_result=True)
def purge_events() -> int:
    return services.events_purge()
