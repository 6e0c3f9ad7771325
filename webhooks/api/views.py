"""Thin DRF views: webhook subscriptions (admin), their deliveries, and the events feed."""

from __future__ import annotations

from django.core import signing as django_signing
from django.utils.dateparse import parse_datetime
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.response import Response

from accounts.scopes import ADMIN, LEADS_READ
from core.api import AccountScopedAPIView, list_params, page_response
from core.errors import InvalidCursor, InvalidParameter
from core.keyset import Page, parse_limit
from core.schema import errors, list_envelope

from .. import services
from ..models import EventType
from .serializers import (
    DeliverySerializer,
    EventSerializer,
    RotateSecretInputSerializer,
    WebhookInputSerializer,
    WebhookPatchSerializer,
    WebhookSerializer,
    WebhookWithSecretSerializer,
)

CURSOR_SALT = "leadbase.events.v1"
EVENT_PARAMS = frozenset({"cursor", "type", "since", "limit"})


class WebhookListView(AccountScopedAPIView):
    required_scopes = {"*": ADMIN}

    @extend_schema(operation_id="webhooks_list", responses={200: list_envelope(WebhookSerializer, "WebhookList")})
    def get(self, request):
        """List webhook subscriptions (admin)."""
        subs = services.WebhookSubscription.objects.for_account(self.account)
        return Response({"results": WebhookSerializer(subs, many=True).data, "next_cursor": None, "has_more": False})

    @extend_schema(
        operation_id="webhooks_create",
        request=WebhookInputSerializer,
        responses={201: WebhookWithSecretSerializer, **errors(400)},
    )
    def post(self, request):
        """Subscribe a URL to events (admin); the response holds the signing secret, shown once."""
        serializer = WebhookInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        sub = services.subscription_create(account=self.account, actor=self.actor, data=serializer.validated_data)
        return Response(WebhookWithSecretSerializer(sub).data, status=status.HTTP_201_CREATED)


class WebhookDetailView(AccountScopedAPIView):
    required_scopes = {"*": ADMIN}

    @extend_schema(operation_id="webhooks_retrieve", responses={200: WebhookSerializer, **errors(404)})
    def get(self, request, webhook_id):
        """One subscription."""
        return Response(
            WebhookSerializer(services.subscription_get(account=self.account, subscription_id=webhook_id)).data
        )

    @extend_schema(
        operation_id="webhooks_update",
        request=WebhookPatchSerializer,
        responses={200: WebhookSerializer, **errors(400, 404)},
    )
    def patch(self, request, webhook_id):
        """Change URL, event types, description or active flag (re-activating clears the failure flag)."""
        serializer = WebhookPatchSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        sub = services.subscription_update(
            account=self.account, actor=self.actor, subscription_id=webhook_id, data=serializer.validated_data
        )
        return Response(WebhookSerializer(sub).data)

    @extend_schema(
        operation_id="webhooks_destroy", responses={204: OpenApiResponse(description="Deleted"), **errors(404)}
    )
    def delete(self, request, webhook_id):
        """Delete a subscription and its delivery log."""
        services.subscription_delete(account=self.account, actor=self.actor, subscription_id=webhook_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class WebhookRotateSecretView(AccountScopedAPIView):
    required_scopes = {"*": ADMIN}

    @extend_schema(
        operation_id="webhooks_rotate_secret",
        request=RotateSecretInputSerializer,
        responses={200: WebhookWithSecretSerializer, **errors(400, 404)},
    )
    def post(self, request, webhook_id):
        """New signing secret (shown once); the previous one signs too during the overlap."""
        serializer = RotateSecretInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        sub = services.subscription_rotate_secret(
            account=self.account, actor=self.actor, subscription_id=webhook_id, **serializer.validated_data
        )
        return Response(WebhookWithSecretSerializer(sub).data)


class WebhookTestView(AccountScopedAPIView):
    required_scopes = {"*": ADMIN}

    @extend_schema(operation_id="webhooks_test", request=None, responses={200: DeliverySerializer, **errors(404)})
    def post(self, request, webhook_id):
        """Send a webhook.test event to this subscription now; returns the delivery with its attempt."""
        delivery = services.subscription_test(account=self.account, actor=self.actor, subscription_id=webhook_id)
        return Response(DeliverySerializer(delivery).data)


class DeliveryListView(AccountScopedAPIView):
    required_scopes = {"*": ADMIN}

    @extend_schema(
        operation_id="webhooks_deliveries_list",
        parameters=[OpenApiParameter("limit", int), OpenApiParameter("status", str)],
        responses={200: list_envelope(DeliverySerializer, "DeliveryList"), **errors(404)},
    )
    def get(self, request, webhook_id):
        """The subscription's most recent deliveries with every attempt (status, duration, snippet)."""
        sub = services.subscription_get(account=self.account, subscription_id=webhook_id)
        limit = parse_limit(request.query_params.get("limit"), default=50, maximum=200)
        qs = sub.deliveries.select_related("event").prefetch_related("attempt_log").order_by("-created_at")
        if request.query_params.get("status"):
            qs = qs.filter(status=request.query_params["status"])
        rows = list(qs[:limit])
        return Response({"results": DeliverySerializer(rows, many=True).data, "next_cursor": None, "has_more": False})


class RedeliverView(AccountScopedAPIView):
    required_scopes = {"*": ADMIN}

    @extend_schema(operation_id="webhooks_redeliver", request=None, responses={200: DeliverySerializer, **errors(404)})
    def post(self, request, webhook_id, delivery_id):
        """Send this delivery again now; the new attempt joins its log."""
        delivery = services.delivery_redeliver(
            account=self.account, actor=self.actor, subscription_id=webhook_id, delivery_id=delivery_id
        )
        return Response(DeliverySerializer(delivery).data)


class EventListView(AccountScopedAPIView):
    required_scopes = {"GET": LEADS_READ}

    @extend_schema(
        operation_id="events_list",
        parameters=[
            OpenApiParameter("cursor", str, description="next_cursor of the previous page (or of your last sync)."),
            OpenApiParameter("type", str, description="Comma-separated event types.", enum=None),
            OpenApiParameter("since", str, description="RFC 3339 time: events created at or after it."),
            OpenApiParameter("limit", int, description="1-500, default 100."),
        ],
        responses={
            200: inline_serializer(
                "EventPage",
                {
                    "results": EventSerializer(many=True),
                    "next_cursor": serializers.CharField(allow_null=True),
                    "has_more": serializers.BooleanField(),
                },
            ),
            **errors(400),
        },
    )
    def get(self, request):
        """The change feed: every event in order, replayable from a cursor (kept 30+ days)."""
        page_params = list_params(request, allowed=EVENT_PARAMS, default_limit=100, max_limit=500)
        params = request.query_params
        after = _decode(page_params.cursor, self.account.pk)
        types = [t for t in (params.get("type") or "").split(",") if t]
        if set(types) - set(EventType.values):
            raise InvalidParameter(f"Unknown event type; use {', '.join(EventType.values)}.")
        since = parse_datetime(params["since"]) if params.get("since") else None
        if params.get("since") and since is None:
            raise InvalidParameter("since must be an RFC 3339 date-time.")
        limit = page_params.limit
        rows = services.event_list(account=self.account, after_id=after, types=types, since=since, limit=limit)
        has_more = len(rows) > limit
        rows = rows[:limit]
        # The cursor always points after the last event returned, so a client can poll with it.
        last = rows[-1].pk if rows else after
        cursor = (
            django_signing.Signer(salt=CURSOR_SALT).sign_object({"a": self.account.pk, "e": last}) if last else None
        )
        return page_response(request, Page(rows, cursor, has_more), render=lambda event: event.payload())


def _decode(cursor: str | None, account_id: int) -> int | None:
    if not cursor:
        return None
    try:
        payload = django_signing.Signer(salt=CURSOR_SALT).unsign_object(cursor)
    except (django_signing.BadSignature, ValueError, TypeError) as exc:
        raise InvalidCursor("The cursor is invalid or was tampered with.") from exc
    if not isinstance(payload, dict) or payload.get("a") != account_id or not isinstance(payload.get("e"), int):
        raise InvalidCursor("The cursor belongs to another account.")
    return payload["e"]
