"""Forms of the data pages (CSV import, export, scoring rules). Like ui/forms.py they collect and
render input; the checks are the services' and the API serializers', so a person reads the API's
messages next to the fields."""

from __future__ import annotations

import json
import re
from typing import Any

from django import forms

from leads import imports
from leads.exports import EXPORT_FORMATS
from leads.models import LeadStatus
from scoring.compiler import SPECIAL_FIELDS, TEXT_FIELDS
from scoring.models import Operator

from .forms import SORT_CHOICES, ServiceErrorsMixin

ON_DUPLICATE_CHOICES = [
    ("error", "Report it as a failed row (the existing lead is left alone)"),
    ("skip", "Skip the row (the existing lead is left alone)"),
    ("update", "Update the existing lead with the row's values"),
]
FORMAT_LABELS = {"csv": "CSV", "json": "JSON", "ndjson": "NDJSON (one lead per line)", "xlsx": "Excel (XLSX)"}
RULE_FIELD_SUGGESTIONS = (*TEXT_FIELDS, *SPECIAL_FIELDS, "custom_fields.")
NUMBER = re.compile(r"^-?\d+(\.\d+)?$")


def _mark_invalid(form: forms.Form, name: str) -> None:
    form.fields[name].widget.attrs.update({"aria-invalid": "true", "aria-describedby": f"id_{name}-error"})


class ImportUploadForm(forms.Form):
    file = forms.FileField(
        label="CSV file",
        allow_empty_file=True,  # csv_parse says "The file is empty." like for a file of blank lines
        help_text="UTF-8 text, comma or semicolon separated, the first row naming the columns.",
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,text/csv"}),
    )

    def add_file_error(self, message: str) -> None:
        self.add_error("file", message)
        _mark_invalid(self, "file")


class ImportMappingForm(forms.Form):
    """One select per column of the file (`col_<n>`), guessed from the header, and on_duplicate."""

    on_duplicate = forms.ChoiceField(
        label="When a row matches an existing lead (same email or external id)",
        choices=ON_DUPLICATE_CHOICES,
        initial="error",
        widget=forms.RadioSelect,
    )

    def __init__(self, *args, headers: list[str], samples: list[list[str]], **kwargs):
        super().__init__(*args, **kwargs)
        self.headers = headers
        guess = imports.mapping_guess(headers)
        self.columns = []
        for index, header in enumerate(headers):
            name = f"col_{index}"
            self.fields[name] = forms.ChoiceField(
                label=header or f"Column {index + 1}",
                choices=imports.column_choices(headers, index),
                initial=guess[index],
                required=False,  # a column left out is ignored
            )
            example = next((row[index] for row in samples if index < len(row) and row[index].strip()), "")
            self.columns.append({"name": name, "header": header, "example": example})
        # the column selects first, in file order; the duplicate policy after them
        self.order_fields([f"col_{i}" for i in range(len(headers))] + ["on_duplicate"])

    def bound_columns(self):
        return [(col, self[col["name"]]) for col in self.columns]

    def clean(self):
        data = super().clean()
        mapping = self.mapping()
        if None in mapping:
            return data
        for index, message in imports.mapping_errors(self.headers, mapping).items():
            self.add_error(f"col_{index}", message)
            _mark_invalid(self, f"col_{index}")
        if not imports.mapping_has_identity(mapping):
            raise forms.ValidationError(
                "Map at least one column to Email, Phone or External id: a lead needs one of them."
            )
        return data

    def mapping(self) -> list[str | None]:
        """The target of each column; None for a column whose choice was not valid."""
        out = []
        for i in range(len(self.headers)):
            name = f"col_{i}"
            out.append(None if name in self.errors else (self.cleaned_data.get(name) or imports.IGNORE))
        return out


class ExportForm(forms.Form):
    format = forms.ChoiceField(
        label="Format", choices=[(name, FORMAT_LABELS.get(name, name)) for name in EXPORT_FORMATS], initial="csv"
    )
    q = forms.CharField(label="Search", required=False, widget=forms.TextInput(attrs={"type": "search"}))
    status = forms.ChoiceField(label="Status", required=False, choices=[("", "Any"), *LeadStatus.choices])
    tag = forms.CharField(label="Tag", required=False)
    sort = forms.ChoiceField(label="Sort", required=False, choices=SORT_CHOICES)

    # the form's own filter fields; any other list parameter arrives as a hidden field
    FILTER_FIELDS = ("q", "status", "tag")


class ScoringRuleForm(ServiceErrorsMixin, forms.Form):
    """A rule as a person types it; `value` text becomes the API's JSON value (see rule_value)."""

    name = forms.CharField(label="Name", required=False, max_length=100)
    field = forms.CharField(
        label="Lead field",
        required=False,
        help_text="A lead field, custom_fields.<key>, or email_domain.",
        widget=forms.TextInput(attrs={"list": "rule-fields", "autocomplete": "off"}),
    )
    operator = forms.ChoiceField(label="Operator", choices=Operator.choices)
    value = forms.CharField(
        label="Value",
        required=False,
        help_text='Numbers and true/false are read as such ("42" in quotes for text); '
        "for “is one of”, separate values with commas; empty for “is present” and free email.",
    )
    points = forms.CharField(label="Points", required=False, help_text="From -100 to 100.")
    active = forms.BooleanField(label="Active", required=False, initial=True)

    def to_data(self) -> dict[str, Any]:
        """The API's rule body for this form (the serializer and validate_rule judge it)."""
        cd = self.cleaned_data
        data: dict[str, Any] = {
            "name": cd["name"],
            "field": cd["field"].strip(),
            "operator": cd["operator"],
            "points": cd["points"].strip(),
            "active": cd["active"],
        }
        value = rule_value(cd.get("value") or "", cd["operator"])
        if value is not None:
            data["value"] = value
        return data

    @staticmethod
    def initial_for(rule) -> dict[str, Any]:
        return {
            "name": rule.name,
            "field": rule.field,
            "operator": rule.operator,
            "value": rule_value_text(rule.value, rule.operator),
            "points": str(rule.points),
            "active": rule.active,
        }


def _scalar(text: str) -> Any:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1]
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    if NUMBER.match(text):
        return float(text) if "." in text else int(text)
    return text


def rule_value(text: str, operator: str) -> Any:
    """The JSON value a typed text means: nothing -> None; for `in` a comma-separated list (or a
    JSON list); otherwise a number, true/false, or the text itself ("..." keeps digits as text)."""
    text = text.strip()
    if not text:
        return None
    if operator == Operator.IN:
        if text.startswith("["):
            try:
                parsed = json.loads(text)
            except ValueError:
                parsed = None
            if isinstance(parsed, list):
                return parsed
        return [_scalar(part) for part in text.split(",") if part.strip()]
    return _scalar(text)


def rule_value_text(value: Any, operator: str) -> str:
    """The text that rule_value reads back as this value."""

    def one(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str) and (v.lower() in ("true", "false") or NUMBER.match(v)):
            return json.dumps(v)
        return "" if v is None else str(v)

    if isinstance(value, list):
        if any(isinstance(v, str) and "," in v for v in value):
            return json.dumps(value)
        return ", ".join(one(v) for v in value)
    if operator in (Operator.EXISTS, Operator.IS_FREE_EMAIL) and value is True:
        return ""
    return one(value)
