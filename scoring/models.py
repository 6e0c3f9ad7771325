"""Scoring rules: an account's own rules that add (or subtract) points to matching leads."""

from __future__ import annotations

from django.db import models

from core.models import AccountScopedModel


class Operator(models.TextChoices):
    EQUALS = "equals", "equals"
    NOT_EQUALS = "not_equals", "does not equal"
    CONTAINS = "contains", "contains"
    IN = "in", "is one of"
    GTE = "gte", "is at least"
    LTE = "lte", "is at most"
    EXISTS = "exists", "is present"
    IS_FREE_EMAIL = "is_free_email", "is a free email address"


class ScoringRule(AccountScopedModel):
    """`field` `operator` `value` -> `points` (may be negative). Score = clamp(sum of matches, 0, 100)."""

    name = models.CharField(max_length=100)
    field = models.CharField(max_length=80, help_text="A lead field, custom_fields.<key>, or email_domain.")
    operator = models.CharField(max_length=20, choices=Operator.choices)
    value = models.JSONField(null=True, blank=True)
    points = models.SmallIntegerField()
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["account", "active"], name="rule_acct_active_idx")]

    def __str__(self) -> str:
        return f"{self.name}: {self.field} {self.operator} {self.value!r} -> {self.points:+d}"
