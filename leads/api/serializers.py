"""Lead input and output serializers (input and output are separate, §4.1)."""

from __future__ import annotations

import re

from rest_framework import serializers

from core.serializers import StrictInputSerializer

from ..models import Lead, LeadStatus

MAX_TAGS = 100
MAX_CUSTOM_FIELDS = 100
MAX_CUSTOM_VALUE_LENGTH = 2000
CUSTOM_KEY = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")

LEAD_READ_ONLY = frozenset(
    {"id", "score", "score_breakdown", "possible_duplicate_of", "created_at", "updated_at", "scored_at"}
)


class CustomFieldsField(serializers.DictField):
    """String keys (letters, digits, _ and -); string, number, boolean or null values."""

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            self.fail("not_a_dict", input_type=type(data).__name__)
        if len(data) > MAX_CUSTOM_FIELDS:
            raise serializers.ValidationError(f"At most {MAX_CUSTOM_FIELDS} custom fields.")
        errors = {}
        for key, value in data.items():
            if not CUSTOM_KEY.match(key) or "__" in key:
                errors[key] = "Keys are 1-64 letters, digits, '_' or '-' (no '__')."
            elif isinstance(value, str) and len(value) > MAX_CUSTOM_VALUE_LENGTH:
                errors[key] = f"At most {MAX_CUSTOM_VALUE_LENGTH} characters."
            elif not (value is None or isinstance(value, str | int | float | bool)):
                errors[key] = "Values are strings, numbers, booleans or null."
        if errors:
            raise serializers.ValidationError(errors)
        return dict(data)


class LeadInputSerializer(StrictInputSerializer):
    """The writable fields of a lead; every field is optional (create needs an identity, checked by the service)."""

    read_only_names = LEAD_READ_ONLY

    email = serializers.EmailField(max_length=254, required=False, allow_null=True, allow_blank=True)
    first_name = serializers.CharField(max_length=100, required=False, allow_blank=True, trim_whitespace=False)
    last_name = serializers.CharField(max_length=100, required=False, allow_blank=True, trim_whitespace=False)
    company = serializers.CharField(max_length=200, required=False, allow_blank=True, trim_whitespace=False)
    job_title = serializers.CharField(max_length=200, required=False, allow_blank=True, trim_whitespace=False)
    website = serializers.CharField(max_length=500, required=False, allow_blank=True)
    city = serializers.CharField(max_length=100, required=False, allow_blank=True)
    phone = serializers.CharField(max_length=40, required=False, allow_blank=True)
    country = serializers.CharField(max_length=2, required=False, allow_blank=True)
    source = serializers.CharField(max_length=100, required=False, allow_blank=True)
    status = serializers.ChoiceField(choices=LeadStatus.choices, required=False)
    tags = serializers.ListField(
        child=serializers.CharField(max_length=50, allow_blank=False), required=False, max_length=MAX_TAGS
    )
    owner = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    external_id = serializers.CharField(max_length=200, required=False, allow_null=True, allow_blank=True)
    custom_fields = CustomFieldsField(required=False, child=serializers.JSONField())


class ScoreRuleHitSerializer(serializers.Serializer):
    rule_id = serializers.IntegerField()
    name = serializers.CharField()
    points = serializers.IntegerField()


class LeadOutputSerializer(serializers.ModelSerializer):
    owner = serializers.IntegerField(source="owner_id", allow_null=True)
    possible_duplicate_of = serializers.UUIDField(source="possible_duplicate_of_id", allow_null=True)
    tags = serializers.ListField(child=serializers.CharField())
    custom_fields = serializers.DictField(child=serializers.JSONField())
    score_breakdown = ScoreRuleHitSerializer(many=True)

    class Meta:
        model = Lead
        fields = [
            "id", "email", "first_name", "last_name", "company", "job_title", "website", "city", "phone",
            "country", "source", "status", "score", "score_breakdown", "tags", "owner", "external_id",
            "custom_fields", "possible_duplicate_of", "created_at", "updated_at", "scored_at",
        ]
        read_only_fields = fields


class LeadListSerializer(serializers.Serializer):
    results = LeadOutputSerializer(many=True)
    next_cursor = serializers.CharField(allow_null=True)
    has_more = serializers.BooleanField()
    total_count = serializers.IntegerField(required=False, help_text="Only with count=true.")
