"""OpenAPI pieces shared by every API view: auth schemes and the problem+json responses."""

from __future__ import annotations

import django_filters as df
from django import forms
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, inline_serializer
from rest_framework import serializers

from .problems import PROBLEM_CONTENT_TYPE
from .serializers import ProblemSerializer


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.ApiKeyAuthentication"
    name = ["ApiKeyHeader", "BearerApiKey"]

    def get_security_definition(self, auto_schema):
        return [
            {"type": "apiKey", "in": "header", "name": "X-API-Key", "description": "lb_… API key"},
            {"type": "http", "scheme": "bearer", "description": "lb_… API key as `Authorization: Bearer`"},
        ]

    def get_security_requirement(self, auto_schema):
        # Either header, not both (a list of requirements is OR in OpenAPI; one dict is AND).
        return [{name: []} for name in self.name]


def problem(description: str) -> OpenApiResponse:
    return OpenApiResponse(ProblemSerializer, description=description)


def _problem_status(status: int) -> tuple[int, str]:
    # Errors are served as application/problem+json (§4.6), and the schema says so: a (status, media
    # type) key makes drf-spectacular document that media type instead of the renderer's JSON.
    return (status, PROBLEM_CONTENT_TYPE)


COMMON_ERRORS = {
    _problem_status(401): problem("authentication_required / invalid_credentials"),
    _problem_status(403): problem("insufficient_scope / permission_denied"),
    _problem_status(429): problem("rate_limited"),
}


def errors(*statuses: int) -> dict:
    descriptions = {
        400: "validation_error, unknown_field, read_only_field, unknown_filter, invalid_filter, invalid_cursor …",
        404: "not_found",
        409: "duplicate_lead / conflict",
        412: "precondition_failed",
        413: "payload_too_large",
    }
    out = dict(COMMON_ERRORS)
    for status in statuses:
        out[_problem_status(status)] = problem(descriptions.get(status, "error"))
    return out


def filterset_parameters(filterset_class) -> list[OpenApiParameter]:
    """Query parameters documented from the FilterSet itself, so schema and code cannot drift."""
    params = []
    for name, flt in filterset_class.base_filters.items():
        many = False
        if isinstance(flt, df.BooleanFilter):
            kind = OpenApiTypes.BOOL
        elif isinstance(flt, df.NumberFilter) and not isinstance(flt, df.BaseInFilter):
            integer = issubclass(flt.field_class, forms.IntegerField)
            kind = OpenApiTypes.INT if integer else OpenApiTypes.NUMBER
        elif isinstance(flt, df.IsoDateTimeFilter):
            kind = OpenApiTypes.DATETIME
        else:
            kind = OpenApiTypes.STR
        enum = None
        if isinstance(flt, df.ChoiceFilter) and not isinstance(flt, df.BaseInFilter):
            enum = [c[0] for c in flt.extra.get("choices", [])]
        if name == "tag":
            many = True
        description = str(flt.extra.get("help_text") or "")
        if isinstance(flt, df.BaseInFilter):
            description = description or "Comma-separated values."
        params.append(
            OpenApiParameter(
                name,
                kind,
                OpenApiParameter.QUERY,
                required=False,
                many=many or None,
                enum=enum,
                description=description,
            )
        )
    return params


def list_envelope(serializer_class, name: str):
    """The `{"results", "next_cursor", "has_more"}` envelope every list of the API answers with."""
    return inline_serializer(
        name=name,
        fields={
            "results": serializer_class(many=True),
            "next_cursor": serializers.CharField(allow_null=True),
            "has_more": serializers.BooleanField(),
        },
    )


def strip_trailing_slash(endpoints, **kwargs):
    """Routes accept an optional trailing slash (`/?$`); the schema lists the canonical path without it."""
    return [(path.rstrip("/") or "/", regex, method, callback) for path, regex, method, callback in endpoints]


IDEMPOTENCY_ERRORS = {
    "400": "invalid_parameter (a malformed Idempotency-Key)",
    "409": "idempotency_key_in_progress",
    "422": "idempotency_key_reused",
}


def document_idempotency_errors(result, **kwargs):
    """Every operation that takes `Idempotency-Key` can answer these three problems (core/idempotency.py),
    whatever its own `errors(...)` lists: added here once, so no view can forget one."""
    for path_item in result.get("paths", {}).values():
        for operation in path_item.values():
            if not isinstance(operation, dict):
                continue
            headers = {p.get("name") for p in operation.get("parameters", []) if p.get("in") == "header"}
            if "Idempotency-Key" not in headers:
                continue
            responses = operation.setdefault("responses", {})
            for status, description in IDEMPOTENCY_ERRORS.items():
                responses.setdefault(
                    status,
                    {
                        "content": {PROBLEM_CONTENT_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
                        "description": description,
                    },
                )
    return result
