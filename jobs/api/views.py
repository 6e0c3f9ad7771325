"""Thin DRF views for /jobs/{id} and /jobs/{id}/download."""

from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.response import Response

from core.api import AccountScopedAPIView
from core.errors import Conflict
from core.negotiation import FileContentNegotiation
from core.schema import errors

from ..models import JobStatus
from ..selectors import job_get
from .serializers import JobSerializer


class JobDetailView(AccountScopedAPIView):
    @extend_schema(operation_id="jobs_retrieve", responses={200: JobSerializer, **errors(404)})
    def get(self, request, job_id):
        """A job's status, progress, result or error."""
        job = job_get(account=self.account, job_id=job_id)
        return Response(JobSerializer(job, context={"request": request}).data)


class JobDownloadView(AccountScopedAPIView):
    content_negotiation_class = FileContentNegotiation

    @extend_schema(
        operation_id="jobs_download",
        responses={200: OpenApiResponse(OpenApiTypes.BINARY, description="The job's file"), **errors(404, 409)},
    )
    def get(self, request, job_id):
        """Download the file a finished job produced (e.g. an export)."""
        job = job_get(account=self.account, job_id=job_id)
        if job.status != JobStatus.SUCCEEDED or not job.file:
            raise Conflict(f"The job is {job.status}; there is no file to download yet.")
        name = job.result.get("filename") or job.file.name.rsplit("/", 1)[-1]
        return FileResponse(job.file.open("rb"), as_attachment=True, filename=name)
