from django.contrib import admin

from .models import ScoringRule


@admin.register(ScoringRule)
class ScoringRuleAdmin(admin.ModelAdmin):
    """Rules are changed through the API/UI (which enqueue a recalculation); admin shows them."""

    list_display = ["name", "account", "field", "operator", "value", "points", "active", "updated_at"]
    list_filter = ["operator", "active"]
    search_fields = ["name", "field", "account__slug"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
