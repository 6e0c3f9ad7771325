"""Thin DRF views for leads: validate -> service/selector -> serialize."""

from __future__ import annotations

from django.utils.cache import get_conditional_response
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.response import Response

from core.api import AccountScopedAPIView, data_response, page_response
from core.errors import InvalidParameter, PreconditionFailed
from core.idempotency import IDEMPOTENCY_PARAMETER, idempotent
from core.schema import errors, filterset_parameters

from .. import selectors, services
from ..filtersets import LeadFilterSet
from .serializers import LeadInputSerializer, LeadListSerializer, LeadOutputSerializer, lead_to_dict

SORT_PARAMETER = OpenApiParameter(
    "sort",
    str,
    description="Comma-separated of created_at, updated_at, score, email, company, last_name; '-' for "
    "descending. Default -created_at; id is always the final tie-breaker.",
)
FILTER_PARAMETERS = filterset_parameters(LeadFilterSet)
LIST_PARAMETERS = [
    OpenApiParameter("limit", int, description="Page size, 1-500 (default 50)."),
    OpenApiParameter("cursor", str, description="`next_cursor` of the previous page."),
    SORT_PARAMETER,
    OpenApiParameter("count", bool, description="Add total_count (costs a COUNT)."),
    *FILTER_PARAMETERS,
]
ON_DUPLICATE_PARAMETER = OpenApiParameter(
    "on_duplicate",
    str,
    enum=list(services.ON_DUPLICATE_CHOICES),
    description="error (default): 409 duplicate_lead; update: merge into the existing lead; skip: return it.",
)
IF_MATCH = OpenApiParameter("If-Match", str, OpenApiParameter.HEADER, description="ETag from a previous read.")
IF_NONE_MATCH = OpenApiParameter(
    "If-None-Match", str, OpenApiParameter.HEADER, description="ETag from a previous read: 304 while it is current."
)


def parse_on_duplicate(request) -> str:
    value = request.query_params.get("on_duplicate") or "error"
    if value not in services.ON_DUPLICATE_CHOICES:
        raise InvalidParameter(
            "on_duplicate must be error, update or skip.",
            errors=[{"field": "on_duplicate", "code": "invalid_choice", "message": "Use error, update or skip."}],
        )
    return value


class LeadListCreateView(AccountScopedAPIView):
    @extend_schema(
        operation_id="leads_list", parameters=LIST_PARAMETERS, responses={200: LeadListSerializer, **errors(400)}
    )
    def get(self, request):
        """List leads: filters, sort and cursor pagination."""
        page = selectors.lead_list(account=self.account, params=request.query_params)
        extra = {"total_count": page.total_count} if page.total_count is not None else None
        return page_response(request, page, render=lead_to_dict, extra=extra)

    @extend_schema(
        operation_id="leads_create",
        request=LeadInputSerializer,
        parameters=[ON_DUPLICATE_PARAMETER, IDEMPOTENCY_PARAMETER],
        responses={201: LeadOutputSerializer, 200: LeadOutputSerializer, **errors(400, 409, 422)},
    )
    @idempotent
    def post(self, request):
        """Create a lead, deduplicated by email or external_id."""
        on_duplicate = parse_on_duplicate(request)
        serializer = LeadInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        result = services.lead_create(
            account=self.account, actor=self.actor, data=serializer.validated_data, on_duplicate=on_duplicate
        )
        lead = result.lead
        created = result.outcome == "created"
        headers = {"ETag": lead.etag, "X-Leadbase-Outcome": result.outcome}
        if created:
            headers["Location"] = request.build_absolute_uri(f"/api/v1/leads/{lead.pk}")
        return Response(
            lead_to_dict(lead),
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
            headers=headers,
        )


class LeadDetailView(AccountScopedAPIView):
    read_ahead: selectors.LeadReadAhead | None = None

    def initial(self, request, *args, **kwargs):
        # A GET sends the lead's read as soon as the API key names its account, so PostgreSQL runs it during
        # the key's Redis round trip (selectors.lead_read_ahead); the read is used only once authenticated.
        if request.method == "GET":
            lead_id = kwargs.get("lead_id")

            def read_ahead(account_id: int) -> None:
                self.read_ahead = selectors.lead_read_ahead(account_id=account_id, lead_id=lead_id)

            request._request.read_ahead = read_ahead
        super().initial(request, *args, **kwargs)

    def dispatch(self, request, *args, **kwargs):
        try:
            return super().dispatch(request, *args, **kwargs)
        finally:
            if self.read_ahead is not None:  # refused (401, 403, 429) or failed before the read: dropped
                self.read_ahead.pending.discard()

    @extend_schema(
        operation_id="leads_retrieve",
        parameters=[IF_NONE_MATCH, IF_MATCH],
        responses={200: LeadOutputSerializer, 304: None, **errors(404, 412)},
    )
    def get(self, request, lead_id):
        """Get one lead, with its ETag."""
        lead = selectors.lead_get(account=self.account, lead_id=lead_id, read_ahead=self.read_ahead)
        etag = lead.etag
        meta = request._request.META
        # Only If-None-Match and If-Match can apply (there is no Last-Modified); most reads send neither.
        if "HTTP_IF_NONE_MATCH" in meta or "HTTP_IF_MATCH" in meta:
            conditional = get_conditional_response(request._request, etag=etag)
            if conditional is not None:  # 304 Not Modified, or 412 for a failed If-Match
                if conditional.status_code == status.HTTP_304_NOT_MODIFIED:
                    return Response(status=status.HTTP_304_NOT_MODIFIED, headers={"ETag": etag})
                raise PreconditionFailed(
                    "The lead changed since you read it; fetch it again and retry.", current_etag=etag
                )
        return data_response(request, lead_to_dict(lead), headers={"ETag": etag})

    @extend_schema(
        operation_id="leads_update",
        request=LeadInputSerializer,
        parameters=[IF_MATCH],
        responses={200: LeadOutputSerializer, **errors(400, 404, 409, 412)},
    )
    def put(self, request, lead_id):
        """Partially update a lead (only the fields sent change); honours If-Match."""
        serializer = LeadInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        lead = services.lead_update(
            account=self.account,
            actor=self.actor,
            lead_id=lead_id,
            data=serializer.validated_data,
            if_match=request.headers.get("If-Match"),
        )
        return Response(lead_to_dict(lead), headers={"ETag": lead.etag})

    @extend_schema(
        operation_id="leads_partial_update",
        request=LeadInputSerializer,
        parameters=[IF_MATCH],
        responses={200: LeadOutputSerializer, **errors(400, 404, 409, 412)},
    )
    def patch(self, request, lead_id):
        """Partially update a lead (same as PUT)."""
        return self.put(request, lead_id)

    @extend_schema(
        operation_id="leads_destroy",
        parameters=[IF_MATCH],
        responses={204: OpenApiResponse(description="Deleted"), **errors(404, 412)},
    )
    def delete(self, request, lead_id):
        """Delete a lead."""
        services.lead_delete(
            account=self.account, actor=self.actor, lead_id=lead_id, if_match=request.headers.get("If-Match")
        )
        return Response(status=status.HTTP_204_NO_CONTENT)
