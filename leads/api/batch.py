"""Thin DRF view for POST|PUT|DELETE /leads/batch (§4.5): 207 with one result per item."""

from __future__ import annotations

from collections.abc import Mapping

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.exceptions import ValidationError as DRFValidationError
from rest_framework.response import Response

from core.api import AccountScopedAPIView
from core.errors import ApplicationError, BatchTooLarge, MalformedRequest, UnknownField, ValidationFailed
from core.exceptions import flatten_validation_errors
from core.idempotency import IDEMPOTENCY_PARAMETER, idempotent
from core.schema import errors

from .. import batch
from .serializers import (
    BatchCreateRequestSerializer,
    BatchDeleteRequestSerializer,
    BatchResponseSerializer,
    BatchUpdateRequestSerializer,
    LeadBatchUpdateItemSerializer,
    LeadInputSerializer,
    lead_to_dict,
)
from .views import ON_DUPLICATE_PARAMETER, parse_on_duplicate

DRY_RUN_PARAMETER = OpenApiParameter(
    "dry_run", bool, description="Validate and deduplicate the whole batch, report what would happen, write nothing."
)


def batch_items(body, key: str) -> list:
    """The body must be `{key: [...]}` with 1-500 items: 400 otherwise, 413 past 500."""
    if not isinstance(body, Mapping):
        raise MalformedRequest(f'The body must be a JSON object: {{"{key}": [...]}}.')
    extra = sorted(set(body) - {key})
    if extra:
        raise UnknownField(
            f"Unknown field(s): {', '.join(extra)}.",
            errors=[{"field": k, "code": "unknown_field", "message": "Unknown field."} for k in extra],
        )
    items = body.get(key)
    if not isinstance(items, list) or not items:
        raise ValidationFailed(
            f'"{key}" must be a non-empty list.',
            errors=[{"field": key, "code": "invalid", "message": "A list of 1-500 items."}],
        )
    if len(items) > batch.MAX_BATCH_ITEMS:
        raise BatchTooLarge(
            f"A batch holds at most {batch.MAX_BATCH_ITEMS} items; this one has {len(items)}.",
            max_items=batch.MAX_BATCH_ITEMS,
        )
    return items


def validate_items(items: list, serializer_class) -> list:
    """Validate each item on its own: its data, or the ApplicationError that explains it.
    One serializer instance validates every item (building its fields 500 times would cost more
    than the whole database round)."""
    validator = serializer_class()
    out = []
    for item in items:
        try:
            out.append(validator.run_validation(item))
        except DRFValidationError as exc:
            errs = flatten_validation_errors(exc.detail)
            out.append(ValidationFailed("; ".join(f"{e['field']}: {e['message']}" for e in errs), errors=errs))
        except ApplicationError as exc:
            out.append(exc)
    return out


def parse_dry_run(request) -> bool:
    raw = (request.query_params.get("dry_run") or "false").lower()
    if raw not in ("true", "false", "1", "0"):
        from core.errors import InvalidParameter

        raise InvalidParameter("dry_run must be true or false.")
    return raw in ("true", "1")


def render(result: batch.BatchResult, dry_run: bool) -> Response:
    rows = []
    for item in result.results:
        row: dict = {"index": item.index, "status": item.status}
        if item.error is not None:
            error = {"code": item.error.code, "message": item.error.detail}
            if item.error.errors:
                error["errors"] = item.error.errors
            error.update({k: v for k, v in item.error.extra.items() if v is not None})
            row["error"] = error
        else:
            row["id"] = str(item.lead.pk) if item.lead is not None else item.deleted_id
            row["outcome"] = item.outcome
            if item.lead is not None:
                row["lead"] = lead_to_dict(item.lead)
        rows.append(row)
    return Response({"results": rows, "summary": result.summary, "dry_run": dry_run}, status=207)


class LeadBatchView(AccountScopedAPIView):
    @extend_schema(
        operation_id="leads_batch_create",
        request=BatchCreateRequestSerializer,
        parameters=[ON_DUPLICATE_PARAMETER, DRY_RUN_PARAMETER, IDEMPOTENCY_PARAMETER],
        responses={207: BatchResponseSerializer, **errors(400, 413, 422)},
    )
    @idempotent
    def post(self, request):
        """Create up to 500 leads; each item succeeds or fails on its own (207)."""
        on_duplicate, dry_run = parse_on_duplicate(request), parse_dry_run(request)
        items = validate_items(batch_items(request.data, "leads"), LeadInputSerializer)
        result = batch.leads_batch_create(
            account=self.account, actor=self.actor, items=items, on_duplicate=on_duplicate, dry_run=dry_run
        )
        return render(result, dry_run)

    @extend_schema(
        operation_id="leads_batch_update",
        request=BatchUpdateRequestSerializer,
        parameters=[DRY_RUN_PARAMETER],
        responses={207: BatchResponseSerializer, **errors(400, 413)},
    )
    def put(self, request):
        """Update up to 500 leads by id (add_tags / remove_tags allowed); 207."""
        dry_run = parse_dry_run(request)
        items = validate_items(batch_items(request.data, "leads"), LeadBatchUpdateItemSerializer)
        result = batch.leads_batch_update(account=self.account, actor=self.actor, items=items, dry_run=dry_run)
        return render(result, dry_run)

    @extend_schema(
        operation_id="leads_batch_destroy",
        request=BatchDeleteRequestSerializer,
        parameters=[DRY_RUN_PARAMETER],
        responses={207: BatchResponseSerializer, **errors(400, 413)},
    )
    def delete(self, request):
        """Delete up to 500 leads by id; 207 (other accounts' ids are 404 per item)."""
        dry_run = parse_dry_run(request)
        ids = batch_items(request.data, "ids")
        result = batch.leads_batch_delete(account=self.account, actor=self.actor, ids=ids, dry_run=dry_run)
        return render(result, dry_run)
