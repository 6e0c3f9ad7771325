"""Tenancy that fails closed: every account-owned model starts its queries from an account."""

from __future__ import annotations

from django.db import models


class AccountScopedQuerySet(models.QuerySet):
    def for_account(self, account) -> AccountScopedQuerySet:
        if account is None:
            raise ValueError("An account is required to query account-owned data")
        return self.filter(account=account)


class AccountScopedModel(models.Model):
    """Abstract base: an `account` foreign key and a manager with `for_account()`."""

    account = models.ForeignKey("accounts.Account", on_delete=models.CASCADE, related_name="+")

    objects = AccountScopedQuerySet.as_manager()

    class Meta:
        abstract = True


class IdempotencyKey(AccountScopedModel):
    """A POST's `Idempotency-Key` (§4.4): the request's hash and, once done, its response.

    The row is inserted (committed) before the work starts, so a concurrent duplicate finds it
    `in_progress` and is refused instead of running twice. Rows live 24 hours.
    """

    class State(models.TextChoices):
        IN_PROGRESS = "in_progress"
        COMPLETED = "completed"

    key = models.CharField(max_length=255)
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=500)
    request_hash = models.CharField(max_length=64)
    state = models.CharField(max_length=12, choices=State.choices, default=State.IN_PROGRESS)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.BinaryField(null=True, blank=True)
    response_headers = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "key"], name="idempotency_key_unique_per_account"),
        ]

    def __str__(self) -> str:
        return f"{self.key} ({self.state})"
