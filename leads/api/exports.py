"""Thin DRF views for exports (§4.8): the streamed download and the background export job."""

from __future__ import annotations

from django.http import FileResponse, StreamingHttpResponse
from django.utils.http import content_disposition_header
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.reverse import reverse

from accounts.scopes import LEADS_READ
from core.api import AccountScopedAPIView
from core.idempotency import IDEMPOTENCY_PARAMETER, idempotent
from core.negotiation import FileContentNegotiation
from core.schema import errors
from jobs.api.serializers import JobSerializer

from .. import exports
from .serializers import ExportCreateSerializer, LeadOutputSerializer
from .views import FILTER_PARAMETERS, SORT_PARAMETER

FORMAT_PARAMETER = OpenApiParameter(
    "format",
    str,
    enum=list(exports.EXPORT_FORMATS),
    description="File format (default csv). csv and xlsx neutralise cells a spreadsheet would run as a formula.",
)


def _file(description: str) -> OpenApiResponse:
    return OpenApiResponse(OpenApiTypes.BINARY, description=description)


class LeadExportView(AccountScopedAPIView):
    content_negotiation_class = FileContentNegotiation

    @extend_schema(
        operation_id="leads_export",
        parameters=[FORMAT_PARAMETER, SORT_PARAMETER, *FILTER_PARAMETERS],
        responses={
            (200, "text/csv"): _file("CSV with a header row; tags joined with '|'; custom_fields as JSON."),
            (200, "application/json"): OpenApiResponse(LeadOutputSerializer(many=True), description="A JSON array."),
            (200, "application/x-ndjson"): _file("One lead object per line."),
            (200, exports.EXPORT_FORMATS["xlsx"].content_type): _file("One sheet; every cell a string."),
            **errors(400),
        },
    )
    def get(self, request):
        """Download every lead matching the list's filters, in the list's sort, as a file."""
        export = exports.lead_export(account=self.account, actor=self.actor, params=request.query_params)
        if export.file is not None:
            return FileResponse(
                export.file, as_attachment=True, filename=export.filename, content_type=export.format.content_type
            )
        response = StreamingHttpResponse(export.chunks, content_type=export.format.content_type)
        response["Content-Disposition"] = content_disposition_header(True, export.filename)
        return response


class ExportCreateView(AccountScopedAPIView):
    required_scopes = {"POST": LEADS_READ}

    @extend_schema(
        operation_id="exports_create",
        request=ExportCreateSerializer,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={202: JobSerializer, **errors(400, 422)},
    )
    @idempotent
    def post(self, request):
        """Start an export as a background job: poll the job (Location), then download its file."""
        serializer = ExportCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        job = exports.export_job_create(account=self.account, actor=self.actor, **serializer.validated_data)
        location = reverse("job-detail", kwargs={"job_id": job.pk}, request=request)
        body = JobSerializer(job, context={"request": request}).data
        return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": location})
