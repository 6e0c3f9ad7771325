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


class OAuthAppSerializer(serializers.Serializer):
    """An OAuth app the account registered (authorization code grant with PKCE only)."""

    id = serializers.IntegerField()
    name = serializers.CharField()
    client_id = serializers.CharField()
    client_type = serializers.ChoiceField(
        choices=["confidential", "public"], help_text="public: no secret (native and browser apps)."
    )
    redirect_uris = serializers.SerializerMethodField(help_text="Matched exactly, character for character.")
    created_at = serializers.DateTimeField(source="created")
    created_by = serializers.SerializerMethodField()

    def get_redirect_uris(self, obj) -> list[str]:
        return obj.redirect_uris.split()

    def get_created_by(self, obj) -> str | None:
        registration = getattr(obj, "registration", None)
        user = registration.created_by if registration is not None else None
        return user.email if user is not None else None


class OAuthAppCreatedSerializer(OAuthAppSerializer):
    client_secret = serializers.CharField(
        allow_null=True,
        help_text="Confidential clients: the secret, shown once, now; store it safely. Public clients: null.",
    )


class OAuthAppCreateSerializer(StrictInputSerializer):
    read_only_names = frozenset({"id", "client_id", "client_secret", "created_at", "created_by"})
    name = serializers.CharField(max_length=255)
    redirect_uris = serializers.ListField(
        child=serializers.CharField(max_length=2000),
        min_length=1,
        max_length=10,
        help_text="https in production (http too in the embedded mode); no fragment, no wildcard.",
    )
    client_type = serializers.ChoiceField(choices=["confidential", "public"], default="confidential")


class AuthorizedAppSerializer(serializers.Serializer):
    """An app the user authorised to act in this account, and what its tokens may do here."""

    class ApplicationSerializer(serializers.Serializer):
        id = serializers.IntegerField(source="pk")
        name = serializers.CharField()
        client_id = serializers.CharField()

    application = ApplicationSerializer()
    scopes = serializers.ListField(child=serializers.CharField(), help_text="As granted; the role caps them.")
    token_issued_at = serializers.DateTimeField(help_text="When its newest token was issued (consent or refresh).")
