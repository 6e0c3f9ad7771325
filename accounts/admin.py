from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin

from .models import Account, ApiKey, AuditLogEntry, Membership, OAuthAppRegistration, User


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    ordering = ["email"]
    list_display = ["email", "name", "is_active", "is_staff", "date_joined"]
    list_filter = ["is_active", "is_staff", "is_superuser"]
    search_fields = ["email", "name"]
    fieldsets = [
        (None, {"fields": ["email", "password"]}),
        ("Profile", {"fields": ["name"]}),
        ("Permissions", {"fields": ["is_active", "is_staff", "is_superuser", "groups", "user_permissions"]}),
        ("Dates", {"fields": ["last_login", "date_joined"]}),
    ]
    add_fieldsets = [(None, {"classes": ["wide"], "fields": ["email", "password1", "password2"]})]


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "plan", "rate_limit_override", "lead_limit_override", "created_at"]
    list_filter = ["plan"]
    search_fields = ["slug", "name"]
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "account", "role", "created_at"]
    list_filter = ["role"]
    search_fields = ["user__email", "account__slug"]
    autocomplete_fields = ["user", "account"]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Keys are created through the API, the UI or `create_api_key`; the hash is never displayed."""

    list_display = [
        "prefix",
        "name",
        "account",
        "created_by",
        "created_at",
        "expires_at",
        "revoked_at",
        "last_used_at",
        "request_count",
    ]
    list_filter = ["revoked_at", "account"]
    search_fields = ["prefix", "name", "account__slug", "created_by__email"]
    exclude = ["key_hash"]
    readonly_fields = [
        "prefix",
        "account",
        "created_by",
        "created_at",
        "last_used_at",
        "last_used_ip",
        "request_count",
        "scopes",
    ]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(AuditLogEntry)
class AuditLogEntryAdmin(admin.ModelAdmin):
    list_display = ["created_at", "account", "action", "actor_user", "object_type", "object_id", "ip"]
    list_filter = ["action"]
    search_fields = ["account__slug", "action", "object_id"]
    readonly_fields = [f.name for f in AuditLogEntry._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(OAuthAppRegistration)
class OAuthAppRegistrationAdmin(admin.ModelAdmin):
    """Which account registered an OAuth app through the API; the app itself is under Django OAuth Toolkit."""

    list_display = ["application", "account", "created_by", "created_at"]
    search_fields = ["application__name", "application__client_id", "account__slug"]
    list_select_related = ["application", "account", "created_by"]
    readonly_fields = ["application", "account", "created_by", "created_at"]

    def has_add_permission(self, request) -> bool:
        return False
