"""Helpers shared by the UI views: the API's input validation, a safe `next` redirect, and the page
that shows a secret once."""

from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import render
from django.utils.http import url_has_allowed_host_and_scheme
from rest_framework.exceptions import ValidationError as DRFValidationError

from core.errors import ValidationFailed
from core.exceptions import flatten_validation_errors


def validated(serializer_class, data: dict) -> dict:
    """The API's input validation: ValidationFailed with the API's `errors` on bad input."""
    serializer = serializer_class(data=data)
    try:
        serializer.is_valid(raise_exception=True)
    except DRFValidationError as exc:
        errs = flatten_validation_errors(exc.detail)
        raise ValidationFailed("Check the highlighted fields.", errors=errs) from None
    return serializer.validated_data


def safe_next(request, fallback: str) -> str:
    """The form's `next` field when it points back into this site, else `fallback`."""
    target = request.POST.get("next") or ""
    if target and url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        return target
    return fallback


def secret_page(request, template: str, context: dict) -> HttpResponse:
    """The answer that shows a secret (an API key, a client secret, a webhook signing secret) the one
    time it is ever shown. `no-store`: neither the browser's cache nor its back button nor a proxy may
    keep a copy of the page."""
    response = render(request, template, context)
    response["Cache-Control"] = "no-store"
    return response
