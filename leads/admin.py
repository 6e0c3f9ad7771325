from django.contrib import admin

from .models import Lead, Suppression


@admin.register(Lead)
class LeadAdmin(admin.ModelAdmin):
    list_display = [
        "__str__",
        "first_name",
        "last_name",
        "company",
        "account",
        "status",
        "score",
        "owner",
        "created_at",
    ]
    list_filter = ["status", "country", "account"]
    search_fields = ["email", "first_name", "last_name", "company", "external_id", "phone"]
    list_select_related = ["account", "owner"]
    readonly_fields = [
        "id",
        "score",
        "score_breakdown",
        "possible_duplicate_of",
        "version",
        "created_at",
        "updated_at",
        "scored_at",
    ]
    raw_id_fields = ["owner"]
    show_full_result_count = False
    date_hierarchy = "created_at"

    # Leads are written only through leads.services (normalization, dedup, events); admin reads.
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Suppression)
class SuppressionAdmin(admin.ModelAdmin):
    """Read-only: entries are added by erasing a lead or through the API, and lifted by an account
    admin (DELETE /api/v1/suppressions/{id}), which audits it. Only the keyed hash is stored."""

    list_display = ["email_hash", "account", "reason", "created_by", "created_at"]
    list_filter = ["reason"]
    list_select_related = ["account", "created_by"]
    search_fields = ["email_hash"]
    show_full_result_count = False

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
