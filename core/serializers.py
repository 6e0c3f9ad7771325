"""Input serializer base: unknown fields and writes to read-only fields are errors (§4.1)."""

from __future__ import annotations

from collections.abc import Mapping

from rest_framework import serializers

from .errors import ReadOnlyField, UnknownField, ValidationFailed


class StrictInputSerializer(serializers.Serializer):
    """Rejects keys it does not know (`unknown_field`) and keys listed in `Meta.read_only` (`read_only_field`)."""

    read_only_names: frozenset[str] = frozenset()

    def to_internal_value(self, data):
        if not isinstance(data, Mapping):
            raise ValidationFailed(
                "The body must be a JSON object.",
                errors=[{"field": None, "code": "invalid", "message": "Expected a JSON object."}],
            )
        writable = set(self.fields)
        read_only = sorted(k for k in data if k not in writable and k in self.read_only_names)
        unknown = sorted(k for k in data if k not in writable and k not in self.read_only_names)
        if unknown:
            errors = [{"field": k, "code": "unknown_field", "message": "Unknown field."} for k in unknown]
            errors += [{"field": k, "code": "read_only_field", "message": "Read-only field."} for k in read_only]
            raise UnknownField(f"Unknown field(s): {', '.join(unknown)}.", errors=errors)
        if read_only:
            raise ReadOnlyField(
                f"Read-only field(s) cannot be written: {', '.join(read_only)}.",
                errors=[{"field": k, "code": "read_only_field", "message": "Read-only field."} for k in read_only],
            )
        return super().to_internal_value(data)


class ProblemSerializer(serializers.Serializer):
    """RFC 9457 problem details, as every error of the API is shaped (for the schema)."""

    class FieldErrorSerializer(serializers.Serializer):
        field = serializers.CharField(allow_null=True)
        code = serializers.CharField()
        message = serializers.CharField()

    type = serializers.CharField(help_text="urn:leadbase:problem:<code>")
    title = serializers.CharField()
    status = serializers.IntegerField()
    detail = serializers.CharField()
    code = serializers.CharField(help_text="Stable machine-readable code; see docs/errors.md.")
    errors = FieldErrorSerializer(many=True, required=False)
    request_id = serializers.CharField()
    existing_id = serializers.UUIDField(required=False, help_text="On duplicate_lead: the existing lead.")
