"""Thin DRF view of a lead's timeline: its events and notes, newest first, cursor-paginated."""

from __future__ import annotations

from datetime import UTC, datetime

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers

from accounts.scopes import LEADS_READ
from core.api import AccountScopedAPIView, list_params, page_response
from core.schema import errors, list_envelope

from .. import selectors
from ..representation import note_to_dict
from .notes import NoteOutputSerializer
from .serializers import ScoreRuleHitSerializer

ACTIVITY_TYPES = [*selectors.ACTIVITY_EVENT_TYPES, selectors.ACTIVITY_NOTE]


class FieldChangeSerializer(serializers.Serializer):
    before = serializers.JSONField(allow_null=True, help_text="The value before the change.")
    after = serializers.JSONField(allow_null=True, help_text="The value after the change.")


class ScoreChangeSerializer(serializers.Serializer):
    previous = serializers.IntegerField(allow_null=True, help_text="The score before.")
    current = serializers.IntegerField(help_text="The score after.")
    breakdown = ScoreRuleHitSerializer(many=True, help_text="The rules that matched, with their points.")


class ActivityItemSerializer(serializers.Serializer):
    """One timeline entry. Every key is always present; the ones that do not apply to `type` are null."""

    type = serializers.ChoiceField(choices=ACTIVITY_TYPES, help_text="An event type, or note.added for a note.")
    created_at = serializers.DateTimeField()
    event_id = serializers.CharField(
        allow_null=True, help_text="The event's id in GET /api/v1/events (null for a note)."
    )
    changes = serializers.DictField(
        child=FieldChangeSerializer(),
        allow_null=True,
        help_text="lead.updated: {field: {before, after}} for each changed field; otherwise null.",
    )
    score = ScoreChangeSerializer(allow_null=True, help_text="lead.scored: the score before and after; otherwise null.")
    note = NoteOutputSerializer(allow_null=True, help_text="note.added: the note; otherwise null.")


def _rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def activity_to_dict(item: selectors.ActivityItem) -> dict:
    """An ActivityItem as the API renders it (plain dicts, like the other hot read paths)."""
    return {
        "type": item.type,
        "created_at": _rfc3339(item.created_at),
        "event_id": str(item.event.pk) if item.event is not None else None,
        "changes": item.changes,
        "score": item.score,
        "note": note_to_dict(item.note) if item.note is not None else None,
    }


class LeadActivityView(AccountScopedAPIView):
    required_scopes = {"GET": LEADS_READ}

    @extend_schema(
        operation_id="leads_activity_list",
        parameters=[
            OpenApiParameter("limit", int, description="Page size, 1-500 (default 50)."),
            OpenApiParameter("cursor", str, description="`next_cursor` of the previous page."),
        ],
        responses={200: list_envelope(ActivityItemSerializer, "ActivityList"), **errors(400, 404)},
    )
    def get(self, request, lead_id):
        """The lead's timeline, newest first: created, updated (before/after), scored, and its notes."""
        params = list_params(request)
        page = selectors.lead_activity(account=self.account, lead_id=lead_id, cursor=params.cursor, limit=params.limit)
        return page_response(request, page, render=activity_to_dict)
