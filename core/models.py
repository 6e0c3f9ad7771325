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
