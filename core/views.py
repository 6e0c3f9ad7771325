"""Django-level error handlers: problem+json under /api/, the usual HTML pages elsewhere."""

from django.shortcuts import render
from django.views import defaults

from .problems import problem_response


def _is_api(request) -> bool:
    return request.path.startswith("/api/")


def handler400(request, exception=None):
    if _is_api(request):
        return problem_response("malformed_request", "Bad request.", request=request)
    return defaults.bad_request(request, exception)


def handler403(request, exception=None):
    if _is_api(request):
        return problem_response("permission_denied", request=request)
    return defaults.permission_denied(request, exception)


def handler404(request, exception=None):
    if _is_api(request):
        return problem_response("not_found", f"No API route matches {request.path}.", request=request)
    return defaults.page_not_found(request, exception)


def ratelimited(request, exception=None):
    """django-ratelimit's view for refused login attempts: 429, never a 403."""
    if _is_api(request):
        return problem_response("rate_limited", "Too many attempts; wait a minute.", request=request)
    response = render(request, "429.html", status=429)
    response["Retry-After"] = "60"
    return response


def handler500(request):
    if _is_api(request):
        return problem_response("internal_error", request=request)
    return defaults.server_error(request)
