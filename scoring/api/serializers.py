from rest_framework import serializers

from core.serializers import StrictInputSerializer
from jobs.api.serializers import JobSerializer

from ..models import Operator, ScoringRule

RULE_READ_ONLY = frozenset({"id", "created_at", "updated_at"})


class ScoringRuleSerializer(serializers.ModelSerializer):
    value = serializers.JSONField(allow_null=True)

    class Meta:
        model = ScoringRule
        fields = ["id", "name", "field", "operator", "value", "points", "active", "created_at", "updated_at"]
        read_only_fields = fields


class ScoringRuleInputSerializer(StrictInputSerializer):
    """A rule: `field` (lead field, custom_fields.<key> or email_domain) `operator` `value` -> `points`."""

    read_only_names = RULE_READ_ONLY
    name = serializers.CharField(max_length=100)
    field = serializers.CharField(max_length=80, help_text="A lead field, custom_fields.<key>, or email_domain.")
    operator = serializers.ChoiceField(choices=Operator.choices)
    value = serializers.JSONField(
        required=False, allow_null=True, help_text="A string/number/boolean; a list for `in`; ignored by `exists`."
    )
    points = serializers.IntegerField(min_value=-100, max_value=100)
    active = serializers.BooleanField(required=False, default=True)


class ScoringRulePartialSerializer(ScoringRuleInputSerializer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            field.required = False
        self.fields["active"].default = serializers.empty


class ScoringRuleWriteResultSerializer(ScoringRuleSerializer):
    recalculation_job = JobSerializer()

    class Meta(ScoringRuleSerializer.Meta):
        fields = [*ScoringRuleSerializer.Meta.fields, "recalculation_job"]
        read_only_fields = fields


class PreviewSerializer(serializers.Serializer):
    class DistributionSerializer(serializers.Serializer):
        buckets = serializers.ListField(child=serializers.CharField())
        before = serializers.ListField(child=serializers.IntegerField())
        after = serializers.ListField(child=serializers.IntegerField())

    matches = serializers.IntegerField(help_text="Leads the rule matches.")
    total = serializers.IntegerField(help_text="Leads in the account.")
    distribution = DistributionSerializer()


class PreviewInputSerializer(ScoringRuleInputSerializer):
    rule_id = serializers.IntegerField(required=False, help_text="Preview a change to this existing rule.")


class RecalculateInputSerializer(StrictInputSerializer):
    filters = serializers.DictField(
        child=serializers.CharField(), required=False, help_text="List filters (§4.3) to rescore only some leads."
    )


class LeadScoreSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    score = serializers.IntegerField()
    score_breakdown = serializers.ListField(child=serializers.DictField())
    scored_at = serializers.DateTimeField(allow_null=True)
