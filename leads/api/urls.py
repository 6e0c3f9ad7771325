from django.urls import re_path

from .activity import LeadActivityView
from .batch import LeadBatchView
from .exports import ExportCreateView, LeadExportView
from .notes import LeadNoteListView, SegmentDetailView, SegmentListView
from .privacy import LeadEraseView, SuppressionDetailView, SuppressionListView
from .views import LeadDetailView, LeadListCreateView

# Paths are served without a trailing slash; one is accepted too, never redirected (§4).
# Fixed paths under leads/ come before leads/<lead_id>, which would otherwise take them.
urlpatterns = [
    re_path(r"^leads/?$", LeadListCreateView.as_view(), name="lead-list"),
    re_path(r"^leads/batch/?$", LeadBatchView.as_view(), name="lead-batch"),
    re_path(r"^leads/export/?$", LeadExportView.as_view(), name="lead-export"),
    re_path(r"^exports/?$", ExportCreateView.as_view(), name="export-create"),
    # A lead id is a UUID: with [^/]+ the schema documented GET/PUT/DELETE /leads/batch and /leads/export as a lead.
    re_path(r"^leads/(?P<lead_id>[0-9a-fA-F-]{32,36})/?$", LeadDetailView.as_view(), name="lead-detail"),
    re_path(r"^leads/(?P<lead_id>[^/]+)/notes/?$", LeadNoteListView.as_view(), name="lead-notes"),
    re_path(r"^leads/(?P<lead_id>[^/]+)/activity/?$", LeadActivityView.as_view(), name="lead-activity"),
    re_path(r"^leads/(?P<lead_id>[^/]+)/erase/?$", LeadEraseView.as_view(), name="lead-erase"),
    re_path(r"^suppressions/?$", SuppressionListView.as_view(), name="suppression-list"),
    re_path(r"^suppressions/(?P<suppression_id>[^/]+)/?$", SuppressionDetailView.as_view(), name="suppression-detail"),
    re_path(r"^segments/?$", SegmentListView.as_view(), name="segment-list"),
    re_path(r"^segments/(?P<segment_id>[^/]+)/?$", SegmentDetailView.as_view(), name="segment-detail"),
]
