"""Lead input and output serializers (input and output are separate, §4.1)."""

from __future__ import annotations

import math

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core.serializers import StrictInputSerializer

from ..exports import DEFAULT_FORMAT, EXPORT_FORMATS
from ..limits import (
    CUSTOM_KEY,
    LEAD_TEXT_MAX_LENGTHS,
    MAX_CUSTOM_FIELDS,
    MAX_CUSTOM_KEY_LENGTH,
    MAX_CUSTOM_VALUE_LENGTH,
    MAX_SAFE_INTEGER,
    MAX_TAG_LENGTH,
    MAX_TAGS,
)
from ..models import Lead, LeadStatus
from ..normalization import normalize_email
from ..representation import LEAD_FIELDS, lead_to_dict  # noqa: F401  (lead_to_dict re-exported for the views)

LEAD_READ_ONLY = frozenset(
    {"id", "score", "score_breakdown", "possible_duplicate_of", "created_at", "updated_at", "scored_at"}
)


CUSTOM_FIELDS_HELP = (
    f"A flat object: at most {MAX_CUSTOM_FIELDS} keys of 1-{MAX_CUSTOM_KEY_LENGTH} letters, digits, '_' or '-' "
    f"(no '__'); each value a string of at most {MAX_CUSTOM_VALUE_LENGTH} characters, a number within "
    f"+/-{MAX_SAFE_INTEGER}, a boolean or null. Nested objects and lists are refused."
)


def custom_value_error(value) -> str | None:
    """Why a custom field's value is refused, or None when it is a scalar within the limits."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str):
        return None if len(value) <= MAX_CUSTOM_VALUE_LENGTH else f"At most {MAX_CUSTOM_VALUE_LENGTH} characters."
    if isinstance(value, int | float):
        # JSON has no NaN or Infinity, though a non-REST caller could still pass one in.
        if isinstance(value, float) and not math.isfinite(value):
            return "Numbers must be finite."
        return None if abs(value) <= MAX_SAFE_INTEGER else f"Numbers are within +/-{MAX_SAFE_INTEGER}."
    return "Values are strings, numbers, booleans or null (no nested objects or lists)."


CUSTOM_FIELDS_SCHEMA = {
    "type": "object",
    "maxProperties": MAX_CUSTOM_FIELDS,
    "additionalProperties": {
        "nullable": True,
        "anyOf": [
            {"type": "string", "maxLength": MAX_CUSTOM_VALUE_LENGTH},
            {"type": "number", "minimum": -MAX_SAFE_INTEGER, "maximum": MAX_SAFE_INTEGER},
            {"type": "boolean"},
        ],
    },
    "description": CUSTOM_FIELDS_HELP,
}


@extend_schema_field(CUSTOM_FIELDS_SCHEMA)
class CustomFieldsField(serializers.DictField):
    """String keys (letters, digits, _ and -); string, number, boolean or null values (§4.1), within
    the limits of leads/limits.py."""

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            self.fail("not_a_dict", input_type=type(data).__name__)
        if len(data) > MAX_CUSTOM_FIELDS:
            raise serializers.ValidationError(
                f"At most {MAX_CUSTOM_FIELDS} custom fields; this has {len(data)}.", code="max_length"
            )
        errors = {}
        for key, value in data.items():
            if not CUSTOM_KEY.match(key) or "__" in key:
                errors[key[: MAX_CUSTOM_KEY_LENGTH + 1]] = (
                    f"Keys are 1-{MAX_CUSTOM_KEY_LENGTH} letters, digits, '_' or '-' (no '__')."
                )
            elif (problem := custom_value_error(value)) is not None:
                errors[key] = problem
        if errors:
            raise serializers.ValidationError(errors)
        return dict(data)


_MAX = LEAD_TEXT_MAX_LENGTHS


class LeadInputSerializer(StrictInputSerializer):
    """The writable fields of a lead; every field is optional (create needs an identity, checked by the service)."""

    read_only_names = LEAD_READ_ONLY

    email = serializers.EmailField(
        max_length=_MAX["email"], required=False, allow_null=True, allow_blank=True, help_text="Stored lower-cased."
    )
    first_name = serializers.CharField(
        max_length=_MAX["first_name"], required=False, allow_blank=True, trim_whitespace=False
    )
    last_name = serializers.CharField(
        max_length=_MAX["last_name"], required=False, allow_blank=True, trim_whitespace=False
    )
    company = serializers.CharField(max_length=_MAX["company"], required=False, allow_blank=True, trim_whitespace=False)
    job_title = serializers.CharField(
        max_length=_MAX["job_title"], required=False, allow_blank=True, trim_whitespace=False
    )
    website = serializers.CharField(max_length=_MAX["website"], required=False, allow_blank=True)
    city = serializers.CharField(max_length=_MAX["city"], required=False, allow_blank=True)
    phone = serializers.CharField(max_length=_MAX["phone"], required=False, allow_blank=True)
    country = serializers.CharField(max_length=_MAX["country"], required=False, allow_blank=True)
    source = serializers.CharField(max_length=_MAX["source"], required=False, allow_blank=True)
    status = serializers.ChoiceField(choices=LeadStatus.choices, required=False)
    tags = serializers.ListField(
        child=serializers.CharField(max_length=MAX_TAG_LENGTH, allow_blank=False),
        required=False,
        max_length=MAX_TAGS,
        help_text=f"At most {MAX_TAGS} tags of at most {MAX_TAG_LENGTH} characters; stored lower-cased and unique.",
    )
    owner = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    external_id = serializers.CharField(
        max_length=_MAX["external_id"], required=False, allow_null=True, allow_blank=True
    )
    custom_fields = CustomFieldsField(required=False, child=serializers.JSONField())

    def validate_email(self, value):
        # Lower-casing can lengthen a string ("İ" becomes two characters): the stored form must fit
        # the column too, or PostgreSQL would refuse it with a database error.
        if value and len(normalize_email(value) or "") > _MAX["email"]:
            raise serializers.ValidationError(
                f"Ensure this field has no more than {_MAX['email']} characters once lower-cased.", code="max_length"
            )
        return value


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
    add_tags = serializers.ListField(
        child=serializers.CharField(max_length=MAX_TAG_LENGTH), required=False, max_length=MAX_TAGS
    )
    remove_tags = serializers.ListField(
        child=serializers.CharField(max_length=MAX_TAG_LENGTH), required=False, max_length=MAX_TAGS
    )


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
