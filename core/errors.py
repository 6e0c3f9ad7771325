"""Domain errors and the catalogue of stable error codes (§4.6).

Services raise `ApplicationError` subclasses; the DRF exception handler and the Django middleware
turn them (and every framework error) into RFC 9457 problem details. `ERROR_CODES` is the one list
of codes: docs/errors.md is generated from it and a test checks every response code is listed.
"""

from __future__ import annotations

from typing import Any

PROBLEM_TYPE_BASE = "urn:leadbase:problem:"

# code -> (HTTP status, title, when it happens)
ERROR_CODES: dict[str, tuple[int, str, str]] = {
    "validation_error": (400, "Validation error", "A field is missing, malformed or out of range; see `errors`."),
    "unknown_field": (400, "Unknown field", "The body has a field the resource does not have."),
    "read_only_field": (400, "Read-only field", "The body writes a field that only the server sets."),
    "unknown_filter": (400, "Unknown filter", "A query parameter is not a known filter of this list."),
    "invalid_filter": (
        400,
        "Invalid filter value",
        "A filter's value is malformed (wrong type, bad date, bad choice).",
    ),
    "invalid_parameter": (
        400,
        "Invalid parameter",
        "`limit`, `sort`, `count` or another query parameter is malformed.",
    ),
    "invalid_cursor": (400, "Invalid cursor", "The cursor was tampered with or belongs to another list or sort."),
    "malformed_request": (400, "Malformed request", "The body is not valid JSON or not of the expected shape."),
    "authentication_required": (401, "Authentication required", "No credentials were sent."),
    "invalid_credentials": (401, "Invalid credentials", "The API key or token is unknown, revoked or expired."),
    "insufficient_scope": (403, "Insufficient scope", "The credential lacks the scope this operation needs."),
    "permission_denied": (403, "Permission denied", "Your role does not allow this operation."),
    "plan_limit_reached": (403, "Plan limit reached", "The account's plan does not allow more of this resource."),
    "not_found": (404, "Not found", "No such resource in this account (other accounts' objects are 404 too)."),
    "method_not_allowed": (405, "Method not allowed", "The resource does not support this HTTP method."),
    "not_acceptable": (406, "Not acceptable", "The requested response format is not available."),
    "duplicate_lead": (409, "Duplicate lead", "A lead with this email or external_id exists; see `existing_id`."),
    "conflict": (409, "Conflict", "The request conflicts with the current state of the resource."),
    "duplicate_in_batch": (
        409,
        "Duplicate in batch",
        "An earlier item of the same batch has this email or external_id.",
    ),
    "suppressed": (
        409,
        "Suppressed email",
        "The email is on the account's suppression list (erased, or suppressed by an admin); an admin can lift it.",
    ),
    "idempotency_key_in_progress": (
        409,
        "Request in progress",
        "A request with this Idempotency-Key is still running; retry shortly.",
    ),
    "precondition_failed": (412, "Precondition failed", "`If-Match` does not match the resource's current ETag."),
    "payload_too_large": (413, "Payload too large", "The request body is larger than the server accepts."),
    "batch_too_large": (413, "Batch too large", "A batch holds at most 500 items."),
    "unsupported_media_type": (415, "Unsupported media type", "Send `Content-Type: application/json`."),
    "idempotency_key_reused": (
        422,
        "Idempotency key reused",
        "This Idempotency-Key was used with a different request body.",
    ),
    "rate_limited": (429, "Too many requests", "The account or client used its request budget; see `Retry-After`."),
    "internal_error": (500, "Internal error", "Something failed on our side; quote `request_id` to support."),
    "service_unavailable": (503, "Service unavailable", "A backing service is unavailable; retry later."),
}


def problem_type(code: str) -> str:
    return PROBLEM_TYPE_BASE + code


class ApplicationError(Exception):
    """An error a service raises on purpose; it carries everything a problem+json body needs."""

    code = "validation_error"

    def __init__(
        self,
        detail: str,
        *,
        code: str | None = None,
        errors: list[dict[str, Any]] | None = None,
        status: int | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.code = code or self.code
        if self.code not in ERROR_CODES:
            raise ValueError(f"Undocumented error code {self.code!r}")
        self.detail = detail
        self.status = status or ERROR_CODES[self.code][0]
        self.errors = errors or []
        self.extra = extra


class ValidationFailed(ApplicationError):
    code = "validation_error"


class UnknownField(ApplicationError):
    code = "unknown_field"


class ReadOnlyField(ApplicationError):
    code = "read_only_field"


class UnknownFilter(ApplicationError):
    code = "unknown_filter"


class InvalidFilter(ApplicationError):
    code = "invalid_filter"


class InvalidParameter(ApplicationError):
    code = "invalid_parameter"


class InvalidCursor(ApplicationError):
    code = "invalid_cursor"


class NotFound(ApplicationError):
    code = "not_found"


class PermissionDenied(ApplicationError):
    code = "permission_denied"


class InsufficientScope(ApplicationError):
    code = "insufficient_scope"


class DuplicateLead(ApplicationError):
    code = "duplicate_lead"


class Conflict(ApplicationError):
    code = "conflict"


class Suppressed(ApplicationError):
    code = "suppressed"


class PreconditionFailed(ApplicationError):
    code = "precondition_failed"


class PlanLimitReached(ApplicationError):
    code = "plan_limit_reached"


def field_error(field: str, message: str, code: str = "invalid") -> dict[str, str]:
    return {"field": field, "code": code, "message": message}


class BatchTooLarge(ApplicationError):
    code = "batch_too_large"


class IdempotencyKeyReused(ApplicationError):
    code = "idempotency_key_reused"


class IdempotencyKeyInProgress(ApplicationError):
    code = "idempotency_key_in_progress"


class RateLimited(ApplicationError):
    code = "rate_limited"


class MalformedRequest(ApplicationError):
    code = "malformed_request"
