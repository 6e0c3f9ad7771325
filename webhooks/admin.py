from django.contrib import admin

from .models import DeliveryAttempt, Event, WebhookDelivery, WebhookSubscription


@admin.register(WebhookSubscription)
class WebhookSubscriptionAdmin(admin.ModelAdmin):
    list_display = ["url", "account", "active", "failing_since", "disabled_at", "created_at"]
    list_filter = ["active"]
    search_fields = ["url", "account__slug"]
    exclude = ["secret", "previous_secret"]  # never displayed


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ["id", "account", "type", "lead_id", "created_at"]
    list_filter = ["type"]
    search_fields = ["lead_id", "account__slug"]
    readonly_fields = [f.name for f in Event._meta.fields]
    show_full_result_count = False


class DeliveryAttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    extra = 0
    readonly_fields = ["attempted_at", "status_code", "duration_ms", "response_snippet", "error"]


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = ["id", "subscription", "status", "attempts", "next_attempt_at", "last_status_code", "created_at"]
    list_filter = ["status"]
    readonly_fields = [f.name for f in WebhookDelivery._meta.fields]
    inlines = [DeliveryAttemptInline]
