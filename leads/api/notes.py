"""Thin DRF views for a lead's notes and for segments (saved filters)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from core.api import AccountScopedAPIView, list_params, page_response
from core.idempotency import IDEMPOTENCY_PARAMETER, idempotent
from core.keyset import paginate, parse_sort
from core.schema import errors, list_envelope
from core.serializers import StrictInputSerializer

from .. import selectors, services
from ..models import NOTE_MAX_LENGTH, Note, Segment
from ..representation import note_to_dict, segment_to_dict

NOTE_SORT = parse_sort(None, allowed={"created_at": False}, default="created_at")


class NoteInputSerializer(StrictInputSerializer):
    read_only_names = frozenset({"id", "lead", "author", "created_at"})
    body = serializers.CharField(max_length=NOTE_MAX_LENGTH, help_text="The note's text (at most 10,000 characters).")


class NoteOutputSerializer(serializers.ModelSerializer):
    lead = serializers.UUIDField(source="lead_id")
    author = serializers.IntegerField(source="author_id", allow_null=True, help_text="User id of the author.")

    class Meta:
        model = Note
        fields = ["id", "lead", "author", "body", "created_at"]
        read_only_fields = fields


class SegmentInputSerializer(StrictInputSerializer):
    read_only_names = frozenset({"id", "created_at", "updated_at"})
    name = serializers.CharField(max_length=200)
    filters = serializers.DictField(
        help_text='The list\'s filters as JSON, e.g. {"status__in": ["new", "contacted"], "tag": ["hot"], '
        '"score__gte": 50}: strings, numbers, booleans or lists (comma-joined; `tag` repeated).',
    )


class SegmentUpdateSerializer(SegmentInputSerializer):
    name = serializers.CharField(max_length=200, required=False)
    filters = serializers.DictField(required=False, help_text=SegmentInputSerializer().fields["filters"].help_text)


class SegmentOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = Segment
        fields = ["id", "name", "filters", "created_at", "updated_at"]
        read_only_fields = fields


class LeadNoteListView(AccountScopedAPIView):
    @extend_schema(
        operation_id="leads_notes_list",
        parameters=[
            OpenApiParameter("limit", int, description="Page size, 1-500 (default 50)."),
            OpenApiParameter("cursor", str, description="`next_cursor` of the previous page."),
        ],
        responses={200: list_envelope(NoteOutputSerializer, "NoteList"), **errors(400, 404)},
    )
    def get(self, request, lead_id):
        """List a lead's notes, oldest first."""
        params = list_params(request)
        qs = selectors.note_list(account=self.account, lead_id=lead_id)
        page = paginate(
            qs, keys=NOTE_SORT, limit=params.limit, cursor=params.cursor, scope=f"notes:{self.account.pk}:{lead_id}"
        )
        return page_response(request, page, render=note_to_dict)

    @extend_schema(
        operation_id="leads_notes_create",
        request=NoteInputSerializer,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={201: NoteOutputSerializer, **errors(400, 404, 422)},
    )
    @idempotent
    def post(self, request, lead_id):
        """Add a note to a lead."""
        serializer = NoteInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        note = services.note_add(
            account=self.account, actor=self.actor, lead_id=lead_id, body=serializer.validated_data["body"]
        )
        return Response(note_to_dict(note), status=status.HTTP_201_CREATED)


class SegmentListView(AccountScopedAPIView):
    @extend_schema(
        operation_id="segments_list", responses={200: list_envelope(SegmentOutputSerializer, "SegmentList"), **errors()}
    )
    def get(self, request):
        """List the account's segments (saved filters), by name."""
        items = [segment_to_dict(s) for s in selectors.segment_list(account=self.account)]
        return Response({"results": items, "next_cursor": None, "has_more": False})

    @extend_schema(
        operation_id="segments_create",
        request=SegmentInputSerializer,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={201: SegmentOutputSerializer, **errors(400, 409, 422)},
    )
    @idempotent
    def post(self, request):
        """Save a segment; its filters are validated like the list's (400 unknown_filter / invalid_filter)."""
        serializer = SegmentInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        segment = services.segment_create(account=self.account, actor=self.actor, **serializer.validated_data)
        return Response(
            segment_to_dict(segment),
            status=status.HTTP_201_CREATED,
            headers={"Location": request.build_absolute_uri(f"/api/v1/segments/{segment.pk}")},
        )


class SegmentDetailView(AccountScopedAPIView):
    @extend_schema(operation_id="segments_retrieve", responses={200: SegmentOutputSerializer, **errors(404)})
    def get(self, request, segment_id):
        """Get one segment."""
        return Response(segment_to_dict(selectors.segment_get(account=self.account, segment_id=segment_id)))

    @extend_schema(
        operation_id="segments_update",
        request=SegmentUpdateSerializer,
        responses={200: SegmentOutputSerializer, **errors(400, 404, 409)},
    )
    def patch(self, request, segment_id):
        """Rename a segment or replace its filters."""
        serializer = SegmentUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        segment = services.segment_update(
            account=self.account, actor=self.actor, segment_id=segment_id, data=serializer.validated_data
        )
        return Response(segment_to_dict(segment))

    @extend_schema(
        operation_id="segments_destroy", responses={204: OpenApiResponse(description="Deleted"), **errors(404)}
    )
    def delete(self, request, segment_id):
        """Delete a segment (its leads are untouched)."""
        services.segment_delete(account=self.account, actor=self.actor, segment_id=segment_id)
        return Response(status=status.HTTP_204_NO_CONTENT)
