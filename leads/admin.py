from django.contrib import admin

from .models import Lead


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
