from django.urls import re_path

from . import views

urlpatterns = [
    re_path(r"^scoring-rules/?$", views.ScoringRuleListView.as_view(), name="scoring-rule-list"),
    re_path(r"^scoring-rules/preview/?$", views.ScoringRulePreviewView.as_view(), name="scoring-rule-preview"),
    # Rule ids are integers: a looser pattern let the schema document /scoring-rules/preview as a rule (GET -> 405).
    re_path(
        r"^scoring-rules/(?P<rule_id>[0-9]{1,18})/?$", views.ScoringRuleDetailView.as_view(), name="scoring-rule-detail"
    ),
    re_path(r"^scoring/recalculate/?$", views.RecalculateView.as_view(), name="scoring-recalculate"),
    re_path(r"^leads/(?P<lead_id>[^/]+)/score/?$", views.LeadScoreView.as_view(), name="lead-score"),
]
