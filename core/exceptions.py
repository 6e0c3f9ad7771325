"""The one DRF exception handler: every API error becomes problem+json with a stable code."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import Http404
from rest_framework import exceptions as drf
from rest_framework.response import Response

from .errors import ERROR_CODES, ApplicationError
from .problems import PROBLEM_CONTENT_TYPE, problem_body

logger = logging.getLogger("leadbase.errors")

# Seconds a client should wait before retrying after a 503 (a database failover takes a few).
SERVICE_RETRY_AFTER = 5


def flatten_validation_errors(detail: Any, prefix: str = "") -> list[dict[str, str]]:
    """Turn DRF's nested error dict/list into `[{"field", "code", "message"}]`."""
    out: list[dict[str, str]] = []
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = "" if key in ("non_field_errors", "__all__") else str(key)
            path = f"{prefix}.{name}" if prefix and name else (prefix or name)
            out.extend(flatten_validation_errors(value, path))
    elif isinstance(detail, list):
        if all(isinstance(item, drf.ErrorDetail | str) for item in detail):
            for item in detail:
                out.append({"field": prefix or None, "code": getattr(item, "code", "invalid"), "message": str(item)})
        else:
            for index, item in enumerate(detail):
                out.extend(flatten_validation_errors(item, f"{prefix}[{index}]" if prefix else f"[{index}]"))
    else:
        out.append({"field": prefix or None, "code": getattr(detail, "code", "invalid"), "message": str(detail)})
    return out


def _map(exc: Exception) -> tuple[str, str | None, dict[str, Any]]:
    """Return (code, detail, extra) for an exception."""
    if isinstance(exc, ApplicationError):
        return exc.code, exc.detail, {"errors": exc.errors, "status": exc.status, **exc.extra}
    if isinstance(exc, drf.ValidationError):
        errors = flatten_validation_errors(exc.detail)
        detail = "; ".join(f"{e['field']}: {e['message']}" if e["field"] else e["message"] for e in errors[:5])
        return "validation_error", detail or "Invalid input.", {"errors": errors}
    if isinstance(exc, drf.ParseError):
        return "malformed_request", str(exc.detail), {}
    if isinstance(exc, drf.NotAuthenticated):
        return "authentication_required", "Send an API key in X-API-Key or Authorization: Bearer.", {}
    if isinstance(exc, drf.AuthenticationFailed):
        return "invalid_credentials", str(exc.detail), {}
    if isinstance(exc, drf.PermissionDenied):
        codes = exc.get_codes()
        code = codes if isinstance(codes, str) and codes in ERROR_CODES else "permission_denied"
        return code, str(exc.detail), {}
    if isinstance(exc, DjangoPermissionDenied):
        return "permission_denied", str(exc) or None, {}
    if isinstance(exc, drf.NotFound | Http404):
        return "not_found", "No such resource.", {}
    if isinstance(exc, drf.MethodNotAllowed):
        return "method_not_allowed", str(exc.detail), {}
    if isinstance(exc, drf.NotAcceptable):
        return "not_acceptable", str(exc.detail), {}
    if isinstance(exc, drf.UnsupportedMediaType):
        return "unsupported_media_type", str(exc.detail), {}
    if isinstance(exc, drf.Throttled):
        return "rate_limited", str(exc.detail), {}
    if isinstance(exc, RequestDataTooBig):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        return "payload_too_large", f"The request body is larger than {limit} bytes.", {"max_bytes": limit}
    if isinstance(exc, OperationalError | InterfaceError):
        # A lost connection, a failover, a server shutting down: nothing was committed (each write is
        # one transaction), so the client may retry, with the same Idempotency-Key for a POST.
        logger.error("database unavailable: %s", type(exc).__name__)
        return "service_unavailable", "The database is unavailable; retry later.", {"retry_after": SERVICE_RETRY_AFTER}
    logger.exception("unhandled error in API view", exc_info=exc)
    return "internal_error", None, {}


def problem_exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    request = context.get("request")
    code, detail, extra = _map(exc)
    body = problem_body(code, detail, request=request, **extra)
    headers: dict[str, str] = {}
    if isinstance(exc, drf.NotAuthenticated | drf.AuthenticationFailed):
        headers["WWW-Authenticate"] = 'Bearer realm="api"'
    if isinstance(exc, drf.MethodNotAllowed) and context.get("view") is not None:
        headers["Allow"] = ", ".join(context["view"].allowed_methods)
    if getattr(exc, "wait", None):
        headers["Retry-After"] = str(int(exc.wait))
    if extra.get("retry_after"):
        headers["Retry-After"] = str(extra["retry_after"])
    return Response(body, status=body["status"], headers=headers, content_type=PROBLEM_CONTENT_TYPE)
