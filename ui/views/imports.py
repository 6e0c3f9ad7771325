"""CSV import: upload -> column mapping -> run through the batch create path -> per-row report.

The API twin is POST /api/v1/leads/batch (`leads_batch_create`): leads/imports.py feeds the file
to that same function in batches of 500. The upload and the report are kept in the default storage
between the steps (see leads/imports.py), never in process memory."""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import redirect, render
from django.views import View

from accounts.scopes import LEADS_WRITE
from core.errors import ApplicationError
from leads import imports

from ..context import UiMixin
from ..forms_data import ImportMappingForm, ImportUploadForm

SAMPLE_ROWS = 3


class ImportUploadView(UiMixin, View):
    """Step 1: upload a CSV; its checks (size, encoding, header, rows) are form errors."""

    required_scopes = {"*": LEADS_WRITE}

    def _page(self, request, form):
        context = {
            "form": form,
            "max_bytes": imports.max_bytes(),
            "max_rows": imports.max_rows(),
            "fields": imports.IMPORT_FIELDS,
        }
        return render(request, "ui/imports/upload.html", context)

    def get(self, request):
        return self._page(request, ImportUploadForm())

    def post(self, request):
        form = ImportUploadForm(request.POST, request.FILES)
        if form.is_valid():
            upload = form.cleaned_data["file"]
            if upload.size > imports.max_bytes():
                # refused before reading it into memory
                form.add_file_error(
                    f"The file is {imports.human_size(upload.size)}; an import takes at most "
                    f"{imports.human_size(imports.max_bytes())}."
                )
            else:
                raw = upload.read()
                try:
                    imports.csv_parse(raw)
                except ApplicationError as exc:
                    form.add_file_error(exc.detail)
                else:
                    import_id = imports.import_upload_store(account=self.account, raw=raw, filename=upload.name)
                    messages.success(request, f"Uploaded {upload.name}. Now choose what each column holds.")
                    return redirect("ui:import-map", import_id=import_id)
        elif not request.FILES:
            form.errors.pop("file", None)
            form.add_file_error("Choose a CSV file to upload.")
        return self._page(request, form)


class ImportMapView(UiMixin, View):
    """Step 2: map each column to a lead field, choose what a duplicate does, and run the import."""

    required_scopes = {"*": LEADS_WRITE}

    def _load(self, import_id):
        """The stored upload, or None when this import already ran (its report is then the page)."""
        if imports.import_report_load(account=self.account, import_id=import_id) is not None:
            return None, None
        return imports.import_upload_load(account=self.account, import_id=import_id)

    def _page(self, request, form, csv_file, meta):
        context = {"form": form, "csv_file": csv_file, "meta": meta, "row_count": len(csv_file.rows)}
        return render(request, "ui/imports/map.html", context)

    def _form(self, csv_file, data=None):
        samples = [cells for _, cells in csv_file.rows[:SAMPLE_ROWS]]
        return ImportMappingForm(data, headers=csv_file.headers, samples=samples)

    def get(self, request, import_id):
        csv_file, meta = self._load(import_id)
        if csv_file is None or imports.import_running(account=self.account, import_id=import_id):
            return redirect("ui:import-report", import_id=import_id)
        return self._page(request, self._form(csv_file), csv_file, meta)

    def post(self, request, import_id):
        csv_file, meta = self._load(import_id)
        if csv_file is None:
            messages.info(request, "This file was imported already; here is its report.")
            return redirect("ui:import-report", import_id=import_id)
        form = self._form(csv_file, request.POST)
        if not form.is_valid():
            return self._page(request, form, csv_file, meta)
        # A double click (or a second tab) sends this POST twice, maybe to two processes: only the
        # one that claims the run imports; the other goes to the report, which says it is running.
        if not imports.import_run_claim(account=self.account, import_id=import_id):
            messages.info(request, "This file is being imported already; its report appears here when it is done.")
            return redirect("ui:import-report", import_id=import_id)
        if imports.import_report_load(account=self.account, import_id=import_id) is not None:
            return redirect("ui:import-report", import_id=import_id)  # it finished just now
        try:
            report = imports.leads_import(
                account=self.account,
                actor=self.actor,
                csv_file=csv_file,
                mapping=form.mapping(),
                on_duplicate=form.cleaned_data["on_duplicate"],
                filename=meta.get("filename", ""),
            )
            imports.import_report_store(account=self.account, import_id=import_id, report=report)
        except BaseException:
            imports.import_run_release(account=self.account, import_id=import_id)
            raise
        s = report.summary
        text = f"Import finished: {s['created']} created, {s['updated']} updated, {s['skipped']} skipped, "
        text += f"{s['failed']} failed."
        (messages.warning if s["failed"] else messages.success)(request, text)
        return redirect("ui:import-report", import_id=import_id)


class ImportReportView(UiMixin, View):
    """Step 3: every row's outcome (created / updated / skipped / failed with the API's code and message)."""

    def get(self, request, import_id):
        report = imports.import_report_load(account=self.account, import_id=import_id)
        if report is None:
            # running, not run yet (the mapping page), or no such import of this account (a 404 from there)
            _, meta = imports.import_upload_load(account=self.account, import_id=import_id)
            if imports.import_running(account=self.account, import_id=import_id):
                return render(request, "ui/imports/running.html", {"meta": meta})
            return redirect("ui:import-map", import_id=import_id)
        outcome = request.GET.get("outcome", "")
        rows = [r for r in report.rows if r["outcome"] == outcome] if outcome else report.rows
        rows = imports.import_report_rows(account=self.account, rows=rows)  # the leads' labels as they are now
        context = {"report": report, "summary": report.summary, "rows": rows, "outcome": outcome}
        return render(request, "ui/imports/report.html", context)
