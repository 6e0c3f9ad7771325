"""Lead input and output serializers (input and output are separate, §4.1)."""

from __future__ import annotations

import re

from rest_framework import serializers

from core.serializers import StrictInputSerializer

from ..exports import DEFAULT_FORMAT, EXPORT_FORMATS
from ..models import Lead, LeadStatus
from ..representation import LEAD_FIELDS, lead_to_dict  # noqa: F401  (lead_to_dict re-exported for the views)

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
        fields = list(LEAD_FIELDS)
        read_only_fields = fields


class LeadListSerializer(serializers.Serializer):
    results = LeadOutputSerializer(many=True)
    next_cursor = serializers.CharField(allow_null=True)
    has_more = serializers.BooleanField()
    total_count = serializers.IntegerField(required=False, help_text="Only with count=true.")


class LeadBatchUpdateItemSerializer(LeadInputSerializer):
    """One item of PUT /leads/batch: the lead's id, the fields to change, and tag edits."""

    id = serializers.UUIDField()
    add_tags = serializers.ListField(child=serializers.CharField(max_length=50), required=False, max_length=MAX_TAGS)
    remove_tags = serializers.ListField(child=serializers.CharField(max_length=50), required=False, max_length=MAX_TAGS)


class BatchCreateRequestSerializer(serializers.Serializer):
    leads = LeadInputSerializer(many=True, help_text="1-500 leads.")


class BatchUpdateRequestSerializer(serializers.Serializer):
    leads = LeadBatchUpdateItemSerializer(many=True, help_text="1-500 partial updates, each with its id.")


class BatchDeleteRequestSerializer(serializers.Serializer):
    ids = serializers.ListField(child=serializers.UUIDField(), help_text="1-500 lead ids.")


class BatchItemErrorSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    errors = serializers.ListField(child=serializers.DictField(), required=False)
    existing_id = serializers.UUIDField(required=False)
    duplicate_of_index = serializers.IntegerField(required=False)


class BatchItemResultSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    status = serializers.IntegerField()
    id = serializers.UUIDField(required=False)
    outcome = serializers.ChoiceField(choices=["created", "updated", "skipped", "unchanged", "deleted"], required=False)
    lead = LeadOutputSerializer(required=False)
    error = BatchItemErrorSerializer(required=False)


class BatchSummarySerializer(serializers.Serializer):
    succeeded = serializers.IntegerField()
    failed = serializers.IntegerField()


class BatchResponseSerializer(serializers.Serializer):
    results = BatchItemResultSerializer(many=True)
    summary = BatchSummarySerializer()
    dry_run = serializers.BooleanField()


class ExportCreateSerializer(StrictInputSerializer):
    """POST /exports: a format, the list's filters as a JSON object, and the list's sort."""

    format = serializers.ChoiceField(choices=list(EXPORT_FORMATS), default=DEFAULT_FORMAT)
    filters = serializers.DictField(
        child=serializers.JSONField(),
        required=False,
        default=dict,
        help_text='Query-style filters of GET /leads, e.g. {"status__in": "new,contacted", "tag": ["hot", "vip"], '
        '"score__gte": 50}. Lists are comma-joined (`tag`: repeated).',
    )
    sort = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)
