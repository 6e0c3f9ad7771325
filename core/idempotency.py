"""`Idempotency-Key` for every POST of the API (§4.4).

The same key with the same request within 24 h replays the first response without doing the
work again; with a different request it is 422 `idempotency_key_reused`; while the first request
is still running a duplicate is refused with 409 `idempotency_key_in_progress` (never run twice).
A request that fails with a server error (a 5xx, a lost database) releases its key, so the retry
runs; a claim whose process died before it could release it is taken over after a lease.
Keys are per account: one account's keys are invisible to another.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter
from rest_framework.response import Response

from .errors import IdempotencyKeyInProgress, IdempotencyKeyReused, InvalidParameter
from .models import IdempotencyKey

logger = logging.getLogger("leadbase.idempotency")

IDEMPOTENCY_TTL = timedelta(hours=24)
MAX_KEY_LENGTH = 255
# Content-Type is not copied from the header: an unrendered DRF Response still carries Django's
# default text/html there. Only an explicit `content_type` (problem+json) is stored; otherwise the
# replay is rendered by content negotiation, as the first response was.
REPLAYED_HEADERS = ("Location", "ETag", "X-Leadbase-Outcome")

IDEMPOTENCY_PARAMETER = OpenApiParameter(
    "Idempotency-Key",
    str,
    OpenApiParameter.HEADER,
    required=False,
    description="Make the POST safe to retry: the same key and body within 24 h replay the first response.",
)


def request_fingerprint(request) -> str:
    """SHA-256 of method, path, query and the body (canonical JSON when it parses)."""
    raw = request._request.body
    try:
        body = json.dumps(json.loads(raw or b"null"), sort_keys=True, separators=(",", ":")).encode()
    except ValueError:
        body = raw
    digest = hashlib.sha256()
    for part in (
        request.method.encode(),
        request.path.rstrip("/").encode(),
        request.META.get("QUERY_STRING", "").encode(),
    ):
        digest.update(part + b"\0")
    digest.update(body)
    return digest.hexdigest()


def _claim(account, key: str, method: str, path: str, fingerprint: str) -> IdempotencyKey | Response:
    """Insert the key as in_progress (committed at once), or return the stored outcome."""
    now = timezone.now()
    for _ in range(2):
        try:
            with transaction.atomic():
                return IdempotencyKey.objects.create(
                    account=account,
                    key=key,
                    method=method,
                    path=path[:500],
                    request_hash=fingerprint,
                    expires_at=now + IDEMPOTENCY_TTL,
                )
        except IntegrityError:
            existing = IdempotencyKey.objects.for_account(account).filter(key=key).first()
            if existing is None:
                continue  # deleted between our insert and read: try once more
            if existing.expires_at <= now:
                IdempotencyKey.objects.filter(pk=existing.pk, expires_at__lte=now).delete()
                continue
            if existing.request_hash != fingerprint:
                raise IdempotencyKeyReused(
                    "This Idempotency-Key was already used with a different request; use a new key."
                ) from None
            if existing.state == IdempotencyKey.State.IN_PROGRESS:
                if _take_over(existing, now):
                    return existing
                raise IdempotencyKeyInProgress(
                    "A request with this Idempotency-Key is still running; retry shortly.", retry_after=1
                ) from None
            return _replay(existing)
    raise IdempotencyKeyInProgress("Could not claim the Idempotency-Key; retry shortly.", retry_after=1)


def _take_over(existing: IdempotencyKey, now) -> bool:
    """An in-progress claim older than the lease belongs to a request that died with its process
    (killed worker, lost host) and never released it: take it over, once (the conditional UPDATE lets
    exactly one of several concurrent retries win), instead of refusing the key for 24 hours."""
    lease = timedelta(seconds=settings.LEADBASE_IDEMPOTENCY_LEASE_SECONDS)
    if existing.created_at > now - lease:
        return False
    return bool(
        IdempotencyKey.objects.filter(
            pk=existing.pk, state=IdempotencyKey.State.IN_PROGRESS, created_at=existing.created_at
        ).update(created_at=now)
    )


def _release(claimed: IdempotencyKey) -> None:
    """Delete the claim, so that a retry runs the request. The failure that brought us here may have
    broken the database connection (a server restart, a failover): outside a transaction a broken
    connection is dropped first, as Django does at the end of every request, and the delete runs on
    a fresh one. If the database is really gone the lease frees the key later (`_take_over`)."""
    if not connection.in_atomic_block:
        connection.close_if_unusable_or_obsolete()
    try:
        IdempotencyKey.objects.filter(pk=claimed.pk).delete()
    except DatabaseError as exc:
        logger.warning(
            "could not release Idempotency-Key %s (%s); its lease frees it later", claimed.pk, type(exc).__name__
        )


def _replay(stored: IdempotencyKey) -> Response:
    body = json.loads(bytes(stored.response_body)) if stored.response_body else None
    headers = {**stored.response_headers, "Idempotent-Replayed": "true"}
    content_type = headers.pop("Content-Type", None)
    return Response(body, status=stored.response_status, headers=headers, content_type=content_type)


def idempotent_execute(
    *,
    account,
    key: str,
    method: str,
    path: str,
    fingerprint: str,
    run: Callable[[], Response],
    field: str = "Idempotency-Key",
) -> Response:
    """Run `run` at most once per (account, key) within 24 h: the front-door-neutral core of `@idempotent`,
    also used by the MCP tools. A replay is the stored Response (with `Idempotent-Replayed: true`); a client
    error `run` raised is stored and re-raised, so a retry gets the same error back as a Response."""
    key = key.strip()
    if not key or len(key) > MAX_KEY_LENGTH:
        raise InvalidParameter(
            f"{field} must be 1-{MAX_KEY_LENGTH} characters.",
            errors=[{"field": field, "code": "invalid", "message": "1-255 characters."}],
        )
    claimed = _claim(account, key, method, path, fingerprint)
    if isinstance(claimed, Response):
        return claimed
    try:
        response = run()
    except Exception as exc:
        _settle_error(claimed, exc)
        raise
    _store(claimed, response)
    return response


def idempotent(handler):
    """Decorate a POST handler of an AccountScopedAPIView (runs after authentication)."""

    @functools.wraps(handler)
    def wrapper(self, request, *args, **kwargs):
        key = request.headers.get("Idempotency-Key")
        if key is None:
            return handler(self, request, *args, **kwargs)
        return idempotent_execute(
            account=request.auth.account,
            key=key,
            method=request.method,
            path=request.path,
            fingerprint=request_fingerprint(request),
            run=lambda: handler(self, request, *args, **kwargs),
        )

    return wrapper


def _settle_error(claimed: IdempotencyKey, exc: Exception) -> None:
    """A client error (4xx ApplicationError/validation) is a result to replay; anything else frees the key."""
    from .exceptions import problem_exception_handler

    response = problem_exception_handler(exc, {})
    if 400 <= response.status_code < 500:
        _store(claimed, response)
    else:
        _release(claimed)


def _store(claimed: IdempotencyKey, response: Response) -> None:
    if response.status_code >= 500:
        _release(claimed)
        return
    from .renderers import JSONRenderer

    headers = {name: response[name] for name in REPLAYED_HEADERS if response.has_header(name)}
    if getattr(response, "content_type", None):
        headers["Content-Type"] = response.content_type
    IdempotencyKey.objects.filter(pk=claimed.pk).update(
        state=IdempotencyKey.State.COMPLETED,
        response_status=response.status_code,
        response_body=JSONRenderer().render(response.data),
        response_headers=headers,
    )


def idempotency_keys_purge() -> int:
    """Delete expired keys (run by the periodic task); returns how many."""
    deleted, _ = IdempotencyKey.objects.filter(expires_at__lte=timezone.now()).delete()
    return deleted
