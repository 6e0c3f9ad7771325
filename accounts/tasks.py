"""Thin Celery tasks of the accounts app."""

from __future__ import annotations

from celery import shared_task

from .usage import api_key_usage_flush


@shared_task(name="accounts.flush_api_key_usage", ignore_result=True)
def flush_api_key_usage() -> int:
    """Write the API keys' usage gathered in Redis to their rows (beat, every flush interval)."""
    return api_key_usage_flush()
