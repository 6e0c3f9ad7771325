"""Thin DRF views for privacy (§4.12): erase a lead, and the account's suppression list (admin scope)."""

from __future__ import annotations

from collections.abc import Mapping

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from accounts.scopes import ADMIN
from core.api import AccountScopedAPIView, list_params, page_response
from core.idempotency import IDEMPOTENCY_PARAMETER, idempotent
from core.schema import errors, list_envelope
from core.serializers import StrictInputSerializer

from .. import services
from ..models import Suppression, SuppressionReason
from ..suppression import suppression_get, suppression_page

MANUAL_REASONS = [SuppressionReason.REQUESTED, SuppressionReason.OTHER]


class LeadEraseInputSerializer(StrictInputSerializer):
    """An erase takes no options: the body is empty or `{}`."""


class LeadErasedSerializer(serializers.Serializer):
    id = serializers.UUIDField(help_text="The erased lead's id (it no longer exists).")
    erased_at = serializers.DateTimeField()
    suppressed = serializers.BooleanField(help_text="Whether the email is now suppressed (false: it had no email).")
    suppression_id = serializers.IntegerField(
        allow_null=True, help_text="The suppression list entry for its email (lift it with DELETE /suppressions/{id})."
    )
    email_hash = serializers.CharField(allow_null=True, help_text="The keyed hash the email is suppressed under.")
    events_erased = serializers.IntegerField(help_text="How many stored events had their personal data erased.")
    notes_deleted = serializers.IntegerField()


class SuppressionSerializer(serializers.ModelSerializer):
    created_by = serializers.IntegerField(source="created_by_id", allow_null=True, help_text="User id.")
    reason = serializers.ChoiceField(choices=SuppressionReason.choices)

    class Meta:
        model = Suppression
        fields = ["id", "email_hash", "reason", "created_by", "created_at"]
        read_only_fields = fields


class SuppressionCreateSerializer(StrictInputSerializer):
    read_only_names = frozenset({"id", "email_hash", "created_by", "created_at"})
    email = serializers.EmailField(max_length=254, help_text="Stored only as a keyed hash, never as given.")
    reason = serializers.ChoiceField(
        choices=MANUAL_REASONS, default=SuppressionReason.REQUESTED, help_text="`erased` is set by erasures only."
    )


class LeadEraseView(AccountScopedAPIView):
    required_scopes = {"*": ADMIN}

    @extend_schema(
        operation_id="leads_erase",
        request=LeadEraseInputSerializer,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={200: LeadErasedSerializer, **errors(400, 404, 422)},
    )
    @idempotent
    def post(self, request, lead_id):
        """Erase a lead: delete it, its notes and the personal data in its events, and suppress its email."""
        body = request.data
        # No body at all is the usual call; anything sent must be an object without fields.
        LeadEraseInputSerializer(data={} if isinstance(body, Mapping) and not body else body).is_valid(
            raise_exception=True
        )
        result = services.lead_erase(account=self.account, actor=self.actor, lead_id=lead_id)
        suppression = result.suppression
        body = {
            "id": result.lead_id,
            "erased_at": result.erased_at,
            "suppressed": suppression is not None,
            "suppression_id": suppression.pk if suppression else None,
            "email_hash": suppression.email_hash if suppression else None,
            "events_erased": result.events_erased,
            "notes_deleted": result.notes_deleted,
        }
        return Response(LeadErasedSerializer(body).data)


class SuppressionListView(AccountScopedAPIView):
    required_scopes = {"*": ADMIN}

    @extend_schema(
        operation_id="suppressions_list",
        parameters=[
            OpenApiParameter("limit", int, description="Page size, 1-500 (default 50)."),
            OpenApiParameter("cursor", str, description="`next_cursor` of the previous page."),
        ],
        responses={200: list_envelope(SuppressionSerializer, "SuppressionList"), **errors(400)},
    )
    def get(self, request):
        """List the account's suppressed emails (as hashes), newest first."""
        params = list_params(request)
        page = suppression_page(account=self.account, cursor=params.cursor, limit=params.limit)
        return page_response(request, page, render=SuppressionSerializer)

    @extend_schema(
        operation_id="suppressions_create",
        request=SuppressionCreateSerializer,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={201: SuppressionSerializer, 200: SuppressionSerializer, **errors(400, 422)},
    )
    @idempotent
    def post(self, request):
        """Suppress an email (201), or find it already suppressed (200): later creates of it are refused."""
        serializer = SuppressionCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        entry, created = services.suppression_create(
            account=self.account, actor=self.actor, **serializer.validated_data
        )
        headers = {"Location": request.build_absolute_uri(f"/api/v1/suppressions/{entry.pk}")}
        return Response(
            SuppressionSerializer(entry).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
            headers=headers,
        )


class SuppressionDetailView(AccountScopedAPIView):
    required_scopes = {"*": ADMIN}

    @extend_schema(operation_id="suppressions_retrieve", responses={200: SuppressionSerializer, **errors(404)})
    def get(self, request, suppression_id):
        """Get one suppression."""
        entry = suppression_get(account=self.account, suppression_id=suppression_id)
        return Response(SuppressionSerializer(entry).data)

    @extend_schema(
        operation_id="suppressions_destroy", responses={204: OpenApiResponse(description="Lifted"), **errors(404)}
    )
    def delete(self, request, suppression_id):
        """Lift a suppression: the email may be added again."""
        services.suppression_lift(account=self.account, actor=self.actor, suppression_id=suppression_id)
        return Response(status=status.HTTP_204_NO_CONTENT)
