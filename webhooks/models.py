"""Events (the transactional outbox and change feed) and signed webhook deliveries (§4.10)."""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q

from core.models import AccountScopedModel


class EventType(models.TextChoices):
    LEAD_CREATED = "lead.created"
    LEAD_UPDATED = "lead.updated"
    LEAD_DELETED = "lead.deleted"
    LEAD_SCORED = "lead.scored"
    EXPORT_COMPLETED = "export.completed"
    WEBHOOK_DISABLED = "webhook.disabled"
    WEBHOOK_TEST = "webhook.test"


class Event(AccountScopedModel):
    """One change, written in the same transaction as the change itself. The id orders the feed."""

    id = models.BigAutoField(primary_key=True)
    # No index of its own: every index below leads with the account (event_acct_id_idx serves the
    # foreign key), and each index is paid on every event, up to a million per rescoring.
    account = models.ForeignKey("accounts.Account", on_delete=models.CASCADE, related_name="+", db_index=False)
    type = models.CharField(max_length=40, choices=EventType.choices)
    lead_id = models.UUIDField(null=True, blank=True)
    data = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["account", "id"], name="event_acct_id_idx"),
            models.Index(fields=["account", "type", "id"], name="event_acct_type_idx"),
            models.Index(fields=["created_at"], name="event_created_idx"),
            # A lead's timeline (GET /leads/{id}/activity), newest first, keyset on (created_at, id).
            models.Index(fields=["account", "lead_id", "created_at", "id"], name="event_acct_lead_created_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.type} #{self.pk}"

    def payload(self) -> dict:
        """The JSON a webhook receiver or feed reader gets for this event."""
        return {
            "id": str(self.pk),
            "type": self.type,
            "created_at": self.created_at.isoformat().replace("+00:00", "Z"),
            "account": self.account_id,
            "data": self.data,
        }


class WebhookSubscription(AccountScopedModel):
    """Where to POST which events. The secret signs every delivery; after a rotation the previous
    secret signs too until `previous_secret_expires_at`, so receivers can switch without a gap."""

    url = models.URLField(max_length=2000)
    description = models.CharField(max_length=200, blank=True)
    event_types = models.JSONField(default=list, blank=True, help_text="Empty: every event type.")
    active = models.BooleanField(default=True)
    secret = models.CharField(max_length=100)
    previous_secret = models.CharField(max_length=100, blank=True)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    failing_since = models.DateTimeField(null=True, blank=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.url

    def wants(self, event_type: str) -> bool:
        return not self.event_types or event_type in self.event_types


class DeliveryStatus(models.TextChoices):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class WebhookDelivery(models.Model):
    """One event for one subscription: retried with backoff from the outbox until it succeeds or
    its retry window (at least 24 h) ends. `next_attempt_at` is the schedule, not a task countdown."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    subscription = models.ForeignKey(WebhookSubscription, on_delete=models.CASCADE, related_name="deliveries")
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="deliveries")
    status = models.CharField(max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["next_attempt_at"], name="delivery_due_idx", condition=Q(status="pending")),
            models.Index(fields=["subscription", "-created_at"], name="delivery_sub_created_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.event} -> {self.subscription} ({self.status})"


class DeliveryAttempt(models.Model):
    """Every attempt is logged: status, duration and a short snippet of the response (never more)."""

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log")
    attempted_at = models.DateTimeField(auto_now_add=True)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)
    response_snippet = models.CharField(max_length=500, blank=True)
    error = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["attempted_at", "id"]

    def __str__(self) -> str:
        return f"{self.attempted_at:%Y-%m-%d %H:%M:%S} {self.status_code or self.error}"
