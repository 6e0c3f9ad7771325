from rest_framework import serializers

from core.serializers import StrictInputSerializer

from ..models import DeliveryAttempt, Event, WebhookDelivery, WebhookSubscription
from ..services import SUBSCRIPTION_EVENT_TYPES


class WebhookSerializer(serializers.ModelSerializer):
    """A subscription as listed: the secret is never shown again after creation or rotation."""

    class Meta:
        model = WebhookSubscription
        fields = ["id", "url", "description", "event_types", "active", "failing_since", "disabled_at",
                  "disabled_reason", "previous_secret_expires_at", "created_at"]  # fmt: skip
        read_only_fields = fields


class WebhookWithSecretSerializer(WebhookSerializer):
    secret = serializers.CharField(help_text="Shown once: store it to verify X-Leadbase-Signature.")

    class Meta(WebhookSerializer.Meta):
        fields = [*WebhookSerializer.Meta.fields, "secret"]
        read_only_fields = fields


WEBHOOK_READ_ONLY = frozenset(WebhookWithSecretSerializer.Meta.fields) - {"url", "description", "event_types", "active"}


class WebhookInputSerializer(StrictInputSerializer):
    read_only_names = WEBHOOK_READ_ONLY
    url = serializers.CharField(max_length=2000)
    description = serializers.CharField(max_length=200, required=False, allow_blank=True)
    event_types = serializers.ListField(
        child=serializers.ChoiceField(choices=SUBSCRIPTION_EVENT_TYPES), required=False, help_text="Empty: all."
    )
    active = serializers.BooleanField(required=False)


class WebhookPatchSerializer(WebhookInputSerializer):
    url = serializers.CharField(max_length=2000, required=False)


class RotateSecretInputSerializer(StrictInputSerializer):
    overlap_hours = serializers.IntegerField(
        required=False, default=24, min_value=0, max_value=168,
        help_text="How long the previous secret keeps signing beside the new one.",
    )  # fmt: skip


class DeliveryAttemptSerializer(serializers.ModelSerializer):
    class Meta:
        model = DeliveryAttempt
        fields = ["attempted_at", "status_code", "duration_ms", "response_snippet", "error"]
        read_only_fields = fields


class DeliverySerializer(serializers.ModelSerializer):
    event_id = serializers.CharField(source="event.pk")
    event_type = serializers.CharField(source="event.type")
    attempt_log = DeliveryAttemptSerializer(many=True)

    class Meta:
        model = WebhookDelivery
        fields = ["id", "event_id", "event_type", "status", "attempts", "next_attempt_at", "last_attempt_at",
                  "last_status_code", "created_at", "attempt_log"]  # fmt: skip
        read_only_fields = fields


class EventSerializer(serializers.Serializer):
    id = serializers.CharField()
    type = serializers.CharField()
    created_at = serializers.DateTimeField()
    account = serializers.IntegerField()
    data = serializers.DictField()

    def to_representation(self, instance: Event):
        return instance.payload()
