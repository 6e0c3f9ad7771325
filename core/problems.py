"""Building RFC 9457 problem+json bodies and responses."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, JsonResponse

from .errors import ERROR_CODES, problem_type
from .logging import request_id_var

PROBLEM_CONTENT_TYPE = "application/problem+json"


def problem_body(
    code: str,
    detail: str | None = None,
    *,
    status: int | None = None,
    errors: list[dict[str, Any]] | None = None,
    request: HttpRequest | None = None,
    **extra: Any,
) -> dict[str, Any]:
    default_status, title, _ = ERROR_CODES[code]
    body: dict[str, Any] = {
        "type": problem_type(code),
        "title": title,
        "status": status or default_status,
        "detail": detail or title,
        "code": code,
    }
    if errors:
        body["errors"] = errors
    body.update({k: v for k, v in extra.items() if v is not None})
    rid = getattr(request, "request_id", None) if request is not None else None
    body["request_id"] = rid or request_id_var.get()
    return body


def problem_response(code: str, detail: str | None = None, *, request=None, **kwargs: Any) -> JsonResponse:
    """A plain Django response, for errors raised outside DRF (404s of unknown paths, 500s)."""
    body = problem_body(code, detail, request=request, **kwargs)
    return JsonResponse(body, status=body["status"], content_type=PROBLEM_CONTENT_TYPE)
