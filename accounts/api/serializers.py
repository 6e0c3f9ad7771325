from __future__ import annotations

from rest_framework import serializers

from core.serializers import StrictInputSerializer

from ..models import Account, ApiKey, Membership, Role
from ..scopes import ALL_SCOPES


class UserSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    email = serializers.EmailField()
    name = serializers.CharField()


class AccountSerializer(serializers.ModelSerializer):
    request_budget = serializers.IntegerField(help_text="Requests per rate-limit window.")
    rate_limit_window_seconds = serializers.SerializerMethodField()
    lead_limit = serializers.IntegerField(allow_null=True, help_text="null: no cap.")
    lead_count = serializers.SerializerMethodField()

    class Meta:
        model = Account
        fields = [
            "id",
            "name",
            "slug",
            "plan",
            "request_budget",
            "rate_limit_window_seconds",
            "lead_limit",
            "lead_count",
            "created_at",
        ]
        read_only_fields = fields

    def get_rate_limit_window_seconds(self, obj) -> int:
        from django.conf import settings

        return settings.LEADBASE_RATE_WINDOW_SECONDS

    def get_lead_count(self, obj) -> int:
        return self.context["lead_count"]


class AccountUpdateSerializer(StrictInputSerializer):
    read_only_names = frozenset({"id", "slug", "plan", "request_budget", "lead_limit", "lead_count", "created_at"})
    name = serializers.CharField(max_length=200)


class MeSerializer(serializers.Serializer):
    user = UserSerializer()
    account = serializers.DictField()
    role = serializers.ChoiceField(choices=Role.choices)
    scopes = serializers.ListField(child=serializers.CharField())
    credential = serializers.DictField()


class MembershipSerializer(serializers.ModelSerializer):
    user = UserSerializer()

    class Meta:
        model = Membership
        fields = ["id", "user", "role", "created_at"]
        read_only_fields = fields


class MembershipCreateSerializer(StrictInputSerializer):
    read_only_names = frozenset({"id", "user", "created_at"})
    email = serializers.EmailField()
    role = serializers.ChoiceField(choices=Role.choices, default=Role.MEMBER)


class MembershipUpdateSerializer(StrictInputSerializer):
    read_only_names = frozenset({"id", "user", "email", "created_at"})
    role = serializers.ChoiceField(choices=Role.choices)


class ApiKeySerializer(serializers.ModelSerializer):
    created_by = serializers.EmailField(source="created_by.email")
    is_active = serializers.BooleanField()

    class Meta:
        model = ApiKey
        fields = [
            "id",
            "name",
            "prefix",
            "scopes",
            "created_by",
            "created_at",
            "expires_at",
            "revoked_at",
            "last_used_at",
            "last_used_ip",
            "request_count",
            "is_active",
        ]
        read_only_fields = fields


class ApiKeyCreatedSerializer(ApiKeySerializer):
    key = serializers.CharField(help_text="The full key. Shown once, now; store it safely.")

    class Meta(ApiKeySerializer.Meta):
        fields = [*ApiKeySerializer.Meta.fields, "key"]
        read_only_fields = fields


class ApiKeyCreateSerializer(StrictInputSerializer):
    read_only_names = frozenset(ApiKeySerializer.Meta.fields) - {"name", "scopes", "expires_at"}
    name = serializers.CharField(max_length=100)
    scopes = serializers.ListField(child=serializers.ChoiceField(choices=list(ALL_SCOPES)), min_length=1)
    expires_at = serializers.DateTimeField(required=False, allow_null=True)
