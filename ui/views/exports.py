"""Export as a background job, and the job pages every background job of the UI shares: the job
with a progress bar that polls (htmx, every second) until the job ends, and the file download.

API twins: POST /api/v1/exports (`exports_create`), GET /api/v1/jobs/{id} (`jobs_retrieve`) and
GET /api/v1/jobs/{id}/download (`jobs_download`), on the same services and selectors."""

from __future__ import annotations

from django.contrib import messages
from django.http import FileResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views import View

from accounts.scopes import LEADS_READ
from core.errors import ApplicationError
from jobs.models import JobKind, JobStatus
from jobs.selectors import job_get
from leads import exports
from leads.api.serializers import ExportCreateSerializer

from ..context import UiMixin
from ..forms_data import ExportForm
from .common import validated

# Parameters of the lead list that are not filters of an export (paging) or are the form's own.
NOT_FILTERS = frozenset({"csrfmiddlewaretoken", "format", "sort", "limit", "cursor", "count"})


def export_filters(query) -> dict:
    """The list's query parameters as the `filters` object of POST /exports: empty values dropped
    (an empty form field means no filter, as on the list page), `tag` kept as a list (repeatable)."""
    filters: dict = {}
    for name in query:
        if name in NOT_FILTERS:
            continue
        values = [v.strip() for v in query.getlist(name) if v.strip()]
        if not values:
            continue
        filters[name] = values if name == "tag" else values[-1]
    return filters


def _extra_filters(filters: dict) -> list[tuple[str, str]]:
    """The list's filters the form has no field for: carried as hidden fields and listed on the page."""
    return [(k, v) for k, v in filters.items() if k not in ExportForm.FILTER_FIELDS]


class ExportView(UiMixin, View):
    """Choose a format (and the list's filters and sort, carried over from the list's URL) and start
    the export job; then the job page shows its progress and the download."""

    required_scopes = {"*": LEADS_READ}

    def _page(self, request, form, extra: list, error: ApplicationError | None = None):
        context = {"form": form, "extra": extra, "error": error}
        return render(request, "ui/exports/new.html", context)

    def get(self, request):
        filters = export_filters(request.GET)
        initial = {"format": request.GET.get("format") or "csv", "sort": request.GET.get("sort") or "-created_at"}
        initial.update({name: filters.get(name, "") for name in ExportForm.FILTER_FIELDS})
        tags = initial["tag"] or [""]
        initial["tag"] = tags[0]
        extra = _extra_filters(filters) + [("tag", t) for t in tags[1:]]
        return self._page(request, ExportForm(initial=initial), extra)

    def post(self, request):
        form = ExportForm(request.POST)
        filters = export_filters(request.POST)
        extra = _extra_filters(filters) + [("tag", t) for t in filters.get("tag", [])[1:]]
        if not form.is_valid():
            return self._page(request, form, extra)
        try:
            data = validated(
                ExportCreateSerializer,
                {"format": form.cleaned_data["format"], "filters": filters, "sort": form.cleaned_data["sort"]},
            )
            job = exports.export_job_create(account=self.account, actor=self.actor, **data)
        except ApplicationError as exc:
            return self._page(request, form, extra, error=exc)
        messages.success(request, f"Export started ({job.params['format'].upper()}).")
        return redirect("ui:job-detail", job_id=job.pk)


# --- Jobs (exports, score recalculations) -------------------------------------------------------


def job_context(job) -> dict:
    """What the progress partial shows: percentage (None while the total is unknown), finished or not,
    and the download link of a finished job with a file."""
    total, done = job.progress_total, job.progress_done
    percent = None
    if total:
        percent = min(100, round(100 * done / total))
    elif job.status == JobStatus.SUCCEEDED:
        percent = 100
    finished = job.status in (JobStatus.SUCCEEDED, JobStatus.FAILED)
    download = None
    if job.status == JobStatus.SUCCEEDED and job.file:
        download = reverse("ui:job-download", kwargs={"job_id": job.pk})
    return {"job": job, "percent": percent, "finished": finished, "download_url": download}


class JobDetailView(UiMixin, View):
    """A job with its progress bar; the bar polls ui:job-progress until the job has ended."""

    def get(self, request, job_id):
        job = job_get(account=self.account, job_id=job_id)
        context = job_context(job)
        context["is_export"] = job.kind == JobKind.EXPORT
        return render(request, "ui/jobs/detail.html", context)


class JobProgressView(UiMixin, View):
    """The progress partial alone (htmx polls it; it stops polling once the job has ended)."""

    def get(self, request, job_id):
        job = job_get(account=self.account, job_id=job_id)
        return render(request, "ui/jobs/_progress.html", job_context(job))


class JobDownloadView(UiMixin, View):
    """The finished job's file, as GET /api/v1/jobs/{id}/download sends it."""

    def get(self, request, job_id):
        job = job_get(account=self.account, job_id=job_id)
        if job.status != JobStatus.SUCCEEDED or not job.file:
            messages.error(request, f"The job is {job.get_status_display().lower()}; there is no file to download yet.")
            return redirect("ui:job-detail", job_id=job.pk)
        name = job.result.get("filename") or job.file.name.rsplit("/", 1)[-1]
        fmt = exports.EXPORT_FORMATS.get(job.params.get("format", ""))
        content_type = fmt.content_type if fmt else None
        return FileResponse(job.file.open("rb"), as_attachment=True, filename=name, content_type=content_type)
