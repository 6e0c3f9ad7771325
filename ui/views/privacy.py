"""Privacy pages (§4.12, admins and owners): erase a lead, and the account's suppression list.

The same services as the API twins: `lead_erase` (POST /api/v1/leads/{id}/erase, `leads_erase`),
`suppression_create` (POST /api/v1/suppressions, `suppressions_create`) and `suppression_lift`
(DELETE /api/v1/suppressions/{id}, `suppressions_destroy`); the list pages with the API's keyset
cursor, so a cursor from one front door works in the other. Only hashes are stored, so no page here
ever shows a suppressed email: not in the list, not in a message."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.shortcuts import redirect, render
from django.views import View

from accounts.scopes import ADMIN
from core.errors import ApplicationError
from leads import selectors, services
from leads.api.privacy import MANUAL_REASONS, SuppressionCreateSerializer
from leads.models import SuppressionReason
from leads.suppression import suppression_get, suppression_page

from ..context import UiMixin
from ..forms import ServiceErrorsMixin
from .common import validated

SUPPRESSIONS_PAGE_SIZE = 50
HASH_PREFIX = 12  # enough to tell entries apart and to match an erase receipt's `email_hash`


class SuppressionAddForm(ServiceErrorsMixin, forms.Form):
    """Suppress an email by hand; the API's serializer validates it (same messages as the API)."""

    # Not an EmailField: the API's serializer judges the address, so both doors say the same thing.
    email = forms.CharField(
        label="Email",
        required=False,
        strip=True,
        widget=forms.TextInput(attrs={"type": "email", "autocomplete": "off", "spellcheck": "false"}),
        help_text="Kept only as a keyed hash: it is not stored and not shown again.",
    )
    reason = forms.ChoiceField(
        label="Reason",
        choices=[(value, SuppressionReason(value).label) for value in MANUAL_REASONS],
        initial=SuppressionReason.REQUESTED,
    )

    def to_data(self) -> dict:
        return {"email": self.cleaned_data["email"], "reason": self.cleaned_data["reason"]}


class LeadEraseView(UiMixin, View):
    """GET says plainly what an erase does and asks for confirmation; POST erases (`lead_erase`)."""

    required_scopes = {"*": ADMIN}

    def get(self, request, lead_id):
        lead = selectors.lead_get(account=self.account, lead_id=lead_id)
        return render(request, "ui/privacy/erase_confirm.html", {"lead": lead})

    def post(self, request, lead_id):
        result = services.lead_erase(account=self.account, actor=self.actor, lead_id=lead_id)
        # The message names no email: it travels in a cookie, and the person asked to be forgotten.
        if result.suppression is not None:
            messages.success(
                request,
                "Lead erased: it and its notes are deleted, its events no longer hold personal data, and its "
                f"email is suppressed (entry {result.suppression.email_hash[:HASH_PREFIX]}…).",
            )
        else:
            messages.success(
                request,
                "Lead erased: it and its notes are deleted and its events no longer hold personal data. "
                "It had no email, so nothing was suppressed.",
            )
        return redirect("ui:lead-list")


class SuppressionListView(UiMixin, View):
    """The suppression list, newest first on the API's cursor, and the form that adds an email."""

    required_scopes = {"*": ADMIN}

    def _page(self, request, form):
        cursor = request.GET.get("cursor") or None
        page, error = None, None
        try:
            page = suppression_page(account=self.account, cursor=cursor, limit=SUPPRESSIONS_PAGE_SIZE)
        except ApplicationError as exc:  # a tampered or foreign cursor: say so, like the lead list
            error = exc
        context = {"page": page, "error": error, "form": form, "cursor": cursor, "hash_prefix": HASH_PREFIX}
        return render(request, "ui/privacy/suppressions.html", context)

    def get(self, request):
        return self._page(request, SuppressionAddForm())

    def post(self, request):
        form = SuppressionAddForm(request.POST)
        if form.is_valid():
            try:
                data = validated(SuppressionCreateSerializer, form.to_data())
                entry, created = services.suppression_create(account=self.account, actor=self.actor, **data)
            except ApplicationError as exc:
                form.add_service_errors(exc.detail, exc.errors)
            else:
                prefix = entry.email_hash[:HASH_PREFIX]
                if created:
                    messages.success(request, f"Email suppressed (entry {prefix}…): it cannot be added as a lead.")
                else:
                    messages.info(
                        request,
                        f"That email is already suppressed (entry {prefix}…, since {entry.created_at:%Y-%m-%d}).",
                    )
                return redirect("ui:suppression-list")
        return self._page(request, form)


class SuppressionLiftView(UiMixin, View):
    """GET asks for confirmation; POST lifts the suppression (`suppression_lift`)."""

    required_scopes = {"*": ADMIN}

    def get(self, request, suppression_id):
        entry = suppression_get(account=self.account, suppression_id=suppression_id)
        return render(request, "ui/privacy/lift_confirm.html", {"entry": entry, "hash_prefix": HASH_PREFIX})

    def post(self, request, suppression_id):
        entry = suppression_get(account=self.account, suppression_id=suppression_id)
        prefix = entry.email_hash[:HASH_PREFIX]
        services.suppression_lift(account=self.account, actor=self.actor, suppression_id=entry.pk)
        messages.success(request, f"Suppression {prefix}… lifted: that email may be added again.")
        return redirect("ui:suppression-list")
