"""Forms of the web UI. They only collect and render input: validation is the API's input
serializer and the service's own checks, so a person sees exactly the messages the API returns."""

from __future__ import annotations

from django import forms

from accounts.scopes import ALL_SCOPES
from leads.models import LeadStatus

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


class LeadBulkForm(forms.Form):
    action = forms.ChoiceField(choices=[("tag", "Add tag"), ("status", "Set status"), ("delete", "Delete")])
    tag = forms.CharField(required=False)
    status = forms.ChoiceField(choices=[("", "—"), *LeadStatus.choices], required=False)
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
