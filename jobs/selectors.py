from __future__ import annotations

import uuid

from accounts.models import Account
from core.errors import NotFound

from .models import Job


def job_get(*, account: Account, job_id) -> Job:
    """One job of the account (another account's job is NotFound)."""
    try:
        pk = uuid.UUID(str(job_id))
    except ValueError as exc:
        raise NotFound("No such job.") from exc
    job = Job.objects.for_account(account).filter(pk=pk).first()
    if job is None:
        raise NotFound("No such job.")
    return job
