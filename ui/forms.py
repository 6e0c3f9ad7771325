"""Forms of the web UI. They only collect and render input: validation is the API's input
serializer and the service's own checks, so a person sees exactly the messages the API returns."""

from __future__ import annotations

from django import forms

from accounts.models import Role
from accounts.scopes import ALL_SCOPES
from leads.models import NOTE_MAX_LENGTH, LeadStatus
from webhooks.services import SUBSCRIPTION_EVENT_TYPES

LEAD_TEXT_FIELDS = (
    ("email", "Email", "email"),
    ("first_name", "First name", "text"),
    ("last_name", "Last name", "text"),
    ("company", "Company", "text"),
    ("job_title", "Job title", "text"),
    ("website", "Website", "text"),
    ("city", "City", "text"),
    ("phone", "Phone", "tel"),
    ("country", "Country (ISO code)", "text"),
    ("source", "Source", "text"),
    ("external_id", "External id", "text"),
)
SORT_CHOICES = [
    ("-created_at", "Newest first"),
    ("created_at", "Oldest first"),
    ("-score", "Highest score"),
    ("score", "Lowest score"),
    ("email", "Email A-Z"),
    ("company", "Company A-Z"),
    ("last_name", "Last name A-Z"),
    ("-updated_at", "Recently updated"),
]


class ServiceErrorsMixin:
    """Puts `[{field, code, message}]` errors (a serializer's or a service's) next to their fields."""

    def add_service_errors(self, detail: str, errors: list[dict]) -> None:
        placed = False
        for error in errors:
            field = (error.get("field") or "").split(".")[0].split("[")[0]
            if field in self.fields:
                self.add_error(field, error["message"])
                self.fields[field].widget.attrs.update(
                    {"aria-invalid": "true", "aria-describedby": f"id_{field}-error"}
                )
                placed = True
        if not placed:
            self.add_error(None, detail)


class LeadForm(ServiceErrorsMixin, forms.Form):
    def __init__(self, *args, owners=(), **kwargs):
        super().__init__(*args, **kwargs)
        for name, label, input_type in LEAD_TEXT_FIELDS:
            widget = forms.TextInput(attrs={"type": input_type, "autocomplete": "off"})
            self.fields[name] = forms.CharField(label=label, required=False, strip=True, widget=widget)
        self.fields["status"] = forms.ChoiceField(label="Status", choices=LeadStatus.choices, required=False)
        self.fields["tags"] = forms.CharField(
            label="Tags", required=False, help_text="Comma-separated.", widget=forms.TextInput()
        )
        self.fields["owner"] = forms.ChoiceField(
            label="Owner", required=False, choices=[("", "—"), *[(str(u.pk), u.email) for u in owners]]
        )

    def to_data(self, *, only_changed: bool) -> dict:
        """The API's body for this form: create sends what was filled in, edit sends what changed."""
        data = {}
        names = self.changed_data if only_changed else list(self.fields)
        for name in names:
            value = self.cleaned_data.get(name)
            if name == "tags":
                value = [t.strip() for t in (value or "").split(",") if t.strip()]
                if not only_changed and not value:
                    continue
            elif name == "owner":
                value = int(value) if value else None
                if not only_changed and value is None:
                    continue
            elif not only_changed and value in ("", None):
                continue
            data[name] = value
        return data


# The bulk bar's owner select: "" is "nothing chosen", this value is "take the owner away".
UNASSIGNED = "unassigned"


class LeadBulkForm(forms.Form):
    action = forms.ChoiceField(
        choices=[("tag", "Add tag"), ("status", "Set status"), ("assign", "Assign owner"), ("delete", "Delete")]
    )
    tag = forms.CharField(required=False)
    status = forms.ChoiceField(choices=[("", "—"), *LeadStatus.choices], required=False)
    # Not a ChoiceField: whether the id is a member of the account is the batch service's check,
    # so a stale or foreign id gets the API's per-item message.
    owner = forms.CharField(required=False)
    confirm = forms.BooleanField(required=False)
    next = forms.CharField(required=False)


class ApiKeyForm(ServiceErrorsMixin, forms.Form):
    name = forms.CharField(label="Name", required=False)
    scopes = forms.MultipleChoiceField(
        label="Scopes",
        required=False,
        choices=[(name, f"{name} — {text}") for name, text in ALL_SCOPES.items()],
        widget=forms.CheckboxSelectMultiple,
    )


class NoteForm(ServiceErrorsMixin, forms.Form):
    body = forms.CharField(
        label="Add a note",
        required=False,
        strip=False,  # the service trims and checks, so its message is the one shown
        widget=forms.Textarea(attrs={"rows": 3, "maxlength": NOTE_MAX_LENGTH}),
    )


class WebhookForm(ServiceErrorsMixin, forms.Form):
    url = forms.CharField(
        label="URL",
        required=False,
        help_text="Where to POST the events: a public address.",
        widget=forms.TextInput(attrs={"type": "url", "autocomplete": "off", "inputmode": "url"}),
    )
    description = forms.CharField(label="Description", required=False)
    event_types = forms.MultipleChoiceField(
        label="Event types",
        required=False,
        choices=[(t, t) for t in SUBSCRIPTION_EVENT_TYPES],
        widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: every event type.",
    )
    active = forms.BooleanField(label="Active", required=False, initial=True)

    def to_data(self, *, only_changed: bool) -> dict:
        """The API's body: everything on create, the changed fields on edit."""
        names = self.changed_data if only_changed else list(self.fields)
        return {name: self.cleaned_data[name] for name in names}


class RotateSecretForm(ServiceErrorsMixin, forms.Form):
    overlap_hours = forms.CharField(
        label="Keep the old secret signing for (hours)",
        required=False,
        initial="24",
        widget=forms.TextInput(attrs={"inputmode": "numeric"}),
        help_text="0-168. Receivers accept either secret meanwhile.",
    )


class OAuthAppForm(ServiceErrorsMixin, forms.Form):
    name = forms.CharField(label="Name", required=False)
    redirect_uris = forms.CharField(
        label="Redirect URIs",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "autocomplete": "off"}),
        help_text="One per line, matched exactly.",
    )
    client_type = forms.ChoiceField(
        label="Client type",
        choices=[
            ("confidential", "Confidential (a server that keeps a secret)"),
            ("public", "Public (a native or browser app, no secret)"),
        ],
        initial="confidential",
    )

    def to_data(self) -> dict:
        data = dict(self.cleaned_data)
        data["redirect_uris"] = [line.strip() for line in data["redirect_uris"].splitlines() if line.strip()]
        return data


class MemberAddForm(ServiceErrorsMixin, forms.Form):
    email = forms.CharField(label="Email", required=False, widget=forms.TextInput(attrs={"type": "email"}))
    role = forms.ChoiceField(label="Role", choices=Role.choices, initial=Role.MEMBER)
