"""Request id on every request and response (§4.6)."""

from __future__ import annotations

import re
import uuid

from django.conf import settings

from .logging import request_id_var
from .problems import problem_response

_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


class RequestIDMiddleware:
    """Echo a well-formed client `X-Request-ID`, otherwise mint one; expose it to logs and bodies."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _VALID_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id
        token = request_id_var.set(request_id)
        try:
            response = self.get_response(request)
        finally:
            request_id_var.reset(token)
        response["X-Request-ID"] = request_id
        return response


class RateLimitHeadersMiddleware:
    """Every API response carries the rate-limit headers (§4.7), errors and 5xx included.

    API views decide before they run (AccountScopedAPIView). A response under /api/ that no view
    decided for (an unknown path, the public schema, a Django-level error) is counted against the
    client IP here, and refused with 429 if that budget is spent.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if not request.path.startswith("/api/") or not settings.LEADBASE_RATE_LIMIT_ENABLED:
            return response
        decision = getattr(request, "rate_decision", None)
        if decision is None:
            from accounts.authentication import client_ip

            from .ratelimit import hit_ip

            decision = hit_ip(client_ip(request))
            if not decision.allowed:
                response = problem_response(
                    "rate_limited",
                    f"The client address's budget of {decision.limit} requests per {decision.window} s is spent.",
                    request=request,
                )
                response["Retry-After"] = str(decision.retry_after)
        for name, value in decision.headers().items():
            response[name] = value
        if not decision.allowed and not response.has_header("Retry-After"):
            response["Retry-After"] = str(decision.retry_after)
        return response


class APISecurityHeadersMiddleware:
    """API responses are data, never a page: a Content-Security-Policy that lets nothing run or load,
    and no caching of account data by shared caches (OWASP API8). The interactive docs under
    /api/v1/docs and /redoc are HTML pages that load scripts, and are left alone."""

    CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if request.path.startswith("/api/") and not response.get("Content-Type", "").startswith("text/html"):
            response.setdefault("Content-Security-Policy", self.CSP)
            response.setdefault("Cache-Control", "private, no-cache")
        return response
