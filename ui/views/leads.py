"""Lead pages: list (filters, sort, search, cursor), bulk actions, detail with timeline and notes,
create, edit, delete; and the home redirect and account switcher."""

from __future__ import annotations

import json
import uuid

from django.contrib import messages
from django.http import HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views import View

from accounts import selectors as account_selectors
from accounts.scopes import LEADS_READ
from core.errors import ApplicationError, DuplicateLead, Suppressed, field_error
from leads import batch, selectors, services
from leads.api.batch import validate_items
from leads.api.notes import NoteInputSerializer
from leads.api.serializers import LeadBatchUpdateItemSerializer, LeadInputSerializer
from leads.models import LeadStatus

from ..context import SESSION_ACCOUNT_KEY, UiMixin, user_memberships
from ..forms import LEAD_TEXT_FIELDS, SORT_CHOICES, UNASSIGNED, LeadBulkForm, LeadForm, NoteForm
from .common import safe_next, validated

PAGE_SIZES = (25, 50, 100)


class HomeView(UiMixin, View):
    def get(self, request):
        return redirect("ui:lead-list")


class AccountSwitchView(UiMixin, View):
    """Choose the account the UI acts in; only an account the user is a member of."""

    required_scopes = {"POST": LEADS_READ}

    def post(self, request):
        raw = request.POST.get("account", "")
        membership = next((m for m in user_memberships(request.user) if str(m.account_id) == raw), None)
        if membership is None:
            messages.error(request, "You are not a member of that account.")
        else:
            request.session[SESSION_ACCOUNT_KEY] = membership.account_id
            messages.success(request, f"Now working in {membership.account.name}.")
        return redirect("ui:lead-list")


# --- Leads ------------------------------------------------------------------------------------


class LeadListView(UiMixin, View):
    """The API's list: the same LeadFilterSet parameters, sort and keyset cursor."""

    def get(self, request):
        # An empty form field means "no filter" here (the API refuses an empty filter value).
        params = request.GET.copy()
        for name in list(params):
            values = [v for v in params.getlist(name) if v.strip()]
            if values:
                params.setlist(name, values)
            else:
                del params[name]
        params.setdefault("limit", str(PAGE_SIZES[0]))
        page, error = None, None
        try:
            page = selectors.lead_list(account=self.account, params=params)
        except ApplicationError as exc:
            error = exc
        next_query = None
        if page is not None and page.next_cursor:
            query = params.copy()
            query["cursor"] = page.next_cursor
            next_query = query.urlencode()
        context = {
            "page": page,
            "error": error,
            "params": params,
            "next_query": next_query,
            "first_query": _without(params, "cursor"),
            "current_url": request.get_full_path(),
            "statuses": LeadStatus.choices,
            "sorts": SORT_CHOICES,
            "page_sizes": PAGE_SIZES,
            "owners": [m.user for m in account_selectors.member_list(account=self.account)],
            "unassigned": UNASSIGNED,
        }
        template = "ui/leads/_results.html" if request.htmx else "ui/leads/list.html"
        # A page that shows a problem is still a 200, like a re-rendered form: Chromium logs every 4xx
        # document as a console error, and htmx swaps only 2xx answers.
        return render(request, template, context)


def _without(params, name: str) -> str:
    query = params.copy()
    query.pop(name, None)
    return query.urlencode()


class LeadBulkView(UiMixin, View):
    """Bulk tag / status / owner / delete of the selected leads, through the batch services (207 per item)."""

    def post(self, request):
        back = safe_next(request, reverse("ui:lead-list"))
        form = LeadBulkForm(request.POST)
        ids = request.POST.getlist("ids")
        if not form.is_valid() or not ids:
            messages.error(request, "Select at least one lead and an action.")
            return HttpResponseRedirect(back)
        action = form.cleaned_data["action"]
        if action == "delete":
            if not form.cleaned_data["confirm"]:
                leads = selectors.lead_queryset(account=self.account).filter(pk__in=_uuids(ids))
                return render(request, "ui/leads/bulk_delete_confirm.html", {"leads": leads, "next": back})
            result = batch.leads_batch_delete(account=self.account, actor=self.actor, ids=ids)
            self._report(request, result, "Deleted")
            return HttpResponseRedirect(back)
        if action == "tag":
            tag = form.cleaned_data["tag"].strip()
            if not tag:
                messages.error(request, "Type the tag to add.")
                return HttpResponseRedirect(back)
            raw_items = [{"id": lead_id, "add_tags": [tag]} for lead_id in ids]
            verb = f"Tagged “{tag}”:"
        elif action == "assign":
            owner = form.cleaned_data["owner"].strip()
            if not owner:
                messages.error(request, "Choose the owner to assign.")
                return HttpResponseRedirect(back)
            # The API's `owner` is a user id or null; the serializer and the service check it.
            value = None if owner == UNASSIGNED else owner
            raw_items = [{"id": lead_id, "owner": value} for lead_id in ids]
            verb = "Unassigned" if value is None else "Assigned"
        else:
            status = form.cleaned_data["status"]
            if not status:
                messages.error(request, "Choose the status to set.")
                return HttpResponseRedirect(back)
            raw_items = [{"id": lead_id, "status": status} for lead_id in ids]
            verb = f"Set status {status}:"
        items = validate_items(raw_items, LeadBatchUpdateItemSerializer)
        result = batch.leads_batch_update(account=self.account, actor=self.actor, items=items)
        self._report(request, result, verb)
        return HttpResponseRedirect(back)

    @staticmethod
    def _report(request, result: batch.BatchResult, verb: str) -> None:
        done = [r for r in result.results if r.error is None]
        failed = [r for r in result.results if r.error is not None]
        if done:
            messages.success(request, f"{verb} {len(done)} lead{'s' if len(done) != 1 else ''}.")
        for item in failed:
            messages.error(request, f"Item {item.index + 1}: {item.error.detail}")


def _uuids(ids) -> list[uuid.UUID]:
    out = []
    for raw in ids:
        try:
            out.append(uuid.UUID(str(raw)))
        except ValueError:
            continue
    return out


TIMELINE_PAGE_SIZE = 20


def _timeline_context(account, lead, cursor: str | None = None) -> dict:
    """The timeline page after `cursor` (the API's lead_activity), with values made readable."""
    page = selectors.lead_activity(account=account, lead_id=lead.pk, cursor=cursor, limit=TIMELINE_PAGE_SIZE)
    emails = {}
    if any(item.changes and "owner" in item.changes for item in page.items):
        emails = {m.user_id: m.user.email for m in account_selectors.member_list(account=account)}
    entries = []
    for item in page.items:
        changes = [
            (field, _readable(change.get("before"), field, emails), _readable(change.get("after"), field, emails))
            for field, change in (item.changes or {}).items()
        ]
        entries.append({"item": item, "changes": changes})
    return {"lead": lead, "timeline": entries, "timeline_next": page.next_cursor}


def _readable(value, field: str, emails: dict) -> str:
    if value in (None, "", [], {}):
        return "—"
    if field == "owner":
        return emails.get(value, f"user {value}")
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


class LeadDetailView(UiMixin, View):
    """The lead, its score breakdown, the first page of its timeline and the add-note form."""

    def get(self, request, lead_id):
        lead = selectors.lead_get(account=self.account, lead_id=lead_id)
        return _detail_page(request, self.account, lead, NoteForm())


def _detail_page(request, account, lead, note_form):
    context = {**_timeline_context(account, lead), "note_form": note_form}
    return render(request, "ui/leads/detail.html", context)


class LeadActivityView(UiMixin, View):
    """Older timeline entries after a cursor: the entries alone for htmx's load-more, else a page."""

    def get(self, request, lead_id):
        lead = selectors.lead_get(account=self.account, lead_id=lead_id)
        try:
            context = _timeline_context(self.account, lead, cursor=request.GET.get("cursor") or None)
        except ApplicationError as exc:  # a tampered or foreign cursor: say so, like the lead list
            context = {"lead": lead, "timeline": [], "timeline_next": None, "error": exc}
        template = "ui/leads/_timeline.html" if request.htmx else "ui/leads/activity.html"
        return render(request, template, context)


class LeadNoteCreateView(UiMixin, View):
    """Add a note: the API's NoteInputSerializer and note_add, as POST /api/v1/leads/{id}/notes."""

    def post(self, request, lead_id):
        lead = selectors.lead_get(account=self.account, lead_id=lead_id)
        form = NoteForm(request.POST)
        if form.is_valid():
            try:
                data = validated(NoteInputSerializer, {"body": form.cleaned_data["body"]})
                services.note_add(account=self.account, actor=self.actor, lead_id=lead.pk, body=data["body"])
            except ApplicationError as exc:
                form.add_service_errors(exc.detail, exc.errors)
            else:
                messages.success(request, "Note added.")
                return HttpResponseRedirect(reverse("ui:lead-detail", args=[lead.pk]) + "#timeline")
        return _detail_page(request, self.account, lead, form)


class LeadFormMixin:
    def owners(self):
        return [m.user for m in account_selectors.member_list(account=self.account)]

    def save(self, form, lead=None):
        """Validate like the API, call the service; on an error, put its messages on the form."""
        try:
            data = validated(LeadInputSerializer, form.to_data(only_changed=lead is not None))
            if lead is None:
                return services.lead_create(account=self.account, actor=self.actor, data=data).lead
            if not data:
                return lead
            return services.lead_update(
                account=self.account,
                actor=self.actor,
                lead_id=lead.pk,
                data=data,
                if_match=self.request.POST.get("etag") or None,
            )
        except DuplicateLead as exc:
            self.duplicate_of = exc.extra.get("existing_id")
            form.add_service_errors(exc.detail, exc.errors)
        except Suppressed as exc:  # only an email is ever suppressed: say so next to that field
            form.add_service_errors(exc.detail, [field_error("email", exc.detail, exc.code)])
        except ApplicationError as exc:
            form.add_service_errors(exc.detail, exc.errors)
        return None


class LeadCreateView(UiMixin, LeadFormMixin, View):
    duplicate_of = None

    def get(self, request):
        form = LeadForm(owners=self.owners(), initial={"status": LeadStatus.choices[0][0]})
        return render(request, "ui/leads/form.html", {"form": form})

    def post(self, request):
        form = LeadForm(request.POST, owners=self.owners())
        if form.is_valid():
            lead = self.save(form)
            if lead is not None:
                messages.success(request, f"Lead {lead.email or lead.pk} created.")
                return redirect("ui:lead-detail", lead_id=lead.pk)
        context = {"form": form, "duplicate_of": self.duplicate_of}
        return render(request, "ui/leads/form.html", context)


class LeadEditView(UiMixin, LeadFormMixin, View):
    duplicate_of = None

    @staticmethod
    def initial(lead) -> dict:
        initial = {name: getattr(lead, name) or "" for name, _label, _type in LEAD_TEXT_FIELDS}
        initial.update(
            status=lead.status,
            tags=", ".join(lead.tags or []),
            owner=str(lead.owner_id) if lead.owner_id else "",
        )
        return initial

    def get(self, request, lead_id):
        lead = selectors.lead_get(account=self.account, lead_id=lead_id)
        form = LeadForm(owners=self.owners(), initial=self.initial(lead))
        return render(request, "ui/leads/form.html", {"form": form, "lead": lead})

    def post(self, request, lead_id):
        lead = selectors.lead_get(account=self.account, lead_id=lead_id)
        form = LeadForm(request.POST, owners=self.owners(), initial=self.initial(lead))
        if form.is_valid():
            updated = self.save(form, lead=lead)
            if updated is not None:
                messages.success(request, "Lead saved." if form.has_changed() else "Nothing changed.")
                return redirect("ui:lead-detail", lead_id=lead.pk)
        context = {"form": form, "lead": lead, "duplicate_of": self.duplicate_of}
        return render(request, "ui/leads/form.html", context)


class LeadDeleteView(UiMixin, View):
    """GET asks for confirmation; POST deletes."""

    def get(self, request, lead_id):
        lead = selectors.lead_get(account=self.account, lead_id=lead_id)
        return render(request, "ui/leads/delete_confirm.html", {"lead": lead})

    def post(self, request, lead_id):
        lead = selectors.lead_get(account=self.account, lead_id=lead_id)
        services.lead_delete(account=self.account, actor=self.actor, lead_id=lead.pk)
        messages.success(request, f"Lead {lead.email or lead.pk} deleted.")
        return redirect("ui:lead-list")
