"""The web UI's routes (namespace `ui`); every name is mapped to its API twin in ui/registry.py."""

from django.urls import path

from .views import account, api_keys, exports, imports, leads, members, oauth_apps, privacy, scoring, webhooks

app_name = "ui"

urlpatterns = [
    path("", leads.HomeView.as_view(), name="home"),
    path("account/switch/", leads.AccountSwitchView.as_view(), name="account-switch"),
    path("leads/", leads.LeadListView.as_view(), name="lead-list"),
    path("leads/new/", leads.LeadCreateView.as_view(), name="lead-create"),
    path("leads/bulk/", leads.LeadBulkView.as_view(), name="lead-bulk"),
    path("leads/<uuid:lead_id>/", leads.LeadDetailView.as_view(), name="lead-detail"),
    path("leads/<uuid:lead_id>/edit/", leads.LeadEditView.as_view(), name="lead-edit"),
    path("leads/<uuid:lead_id>/delete/", leads.LeadDeleteView.as_view(), name="lead-delete"),
    path("settings/api-keys/", api_keys.ApiKeyListView.as_view(), name="api-key-list"),
    path("settings/api-keys/<int:key_id>/revoke/", api_keys.ApiKeyRevokeView.as_view(), name="api-key-revoke"),
    # -- imports, exports, scoring rules (ui/views/imports.py, exports.py, scoring.py) --
    path("leads/import/", imports.ImportUploadView.as_view(), name="import-upload"),
    path("leads/import/<uuid:import_id>/", imports.ImportMapView.as_view(), name="import-map"),
    path("leads/import/<uuid:import_id>/report/", imports.ImportReportView.as_view(), name="import-report"),
    path("exports/new/", exports.ExportView.as_view(), name="export-create"),
    path("jobs/<uuid:job_id>/", exports.JobDetailView.as_view(), name="job-detail"),
    path("jobs/<uuid:job_id>/progress/", exports.JobProgressView.as_view(), name="job-progress"),
    path("jobs/<uuid:job_id>/download/", exports.JobDownloadView.as_view(), name="job-download"),
    path("settings/scoring-rules/", scoring.ScoringRuleListView.as_view(), name="scoring-rule-list"),
    path("settings/scoring-rules/preview/", scoring.ScoringRulePreviewView.as_view(), name="scoring-rule-preview"),
    path("settings/scoring-rules/<int:rule_id>/edit/", scoring.ScoringRuleEditView.as_view(), name="scoring-rule-edit"),
    path(
        "settings/scoring-rules/<int:rule_id>/toggle/",
        scoring.ScoringRuleToggleView.as_view(),
        name="scoring-rule-toggle",
    ),
    path(
        "settings/scoring-rules/<int:rule_id>/delete/",
        scoring.ScoringRuleDeleteView.as_view(),
        name="scoring-rule-delete",
    ),
    # -- webhooks, OAuth apps, members, plan & usage (ui/views/webhooks.py, oauth_apps.py, members.py, account.py) --
    path("leads/<uuid:lead_id>/activity/", leads.LeadActivityView.as_view(), name="lead-activity"),
    path("leads/<uuid:lead_id>/notes/", leads.LeadNoteCreateView.as_view(), name="lead-note-create"),
    path("settings/webhooks/", webhooks.WebhookListView.as_view(), name="webhook-list"),
    path("settings/webhooks/<int:webhook_id>/", webhooks.WebhookDetailView.as_view(), name="webhook-detail"),
    path("settings/webhooks/<int:webhook_id>/delete/", webhooks.WebhookDeleteView.as_view(), name="webhook-delete"),
    path(
        "settings/webhooks/<int:webhook_id>/rotate-secret/",
        webhooks.WebhookRotateSecretView.as_view(),
        name="webhook-rotate-secret",
    ),
    path("settings/webhooks/<int:webhook_id>/test/", webhooks.WebhookTestView.as_view(), name="webhook-test"),
    path(
        "settings/webhooks/<int:webhook_id>/deliveries/<uuid:delivery_id>/redeliver/",
        webhooks.WebhookRedeliverView.as_view(),
        name="webhook-redeliver",
    ),
    path("settings/oauth-apps/", oauth_apps.OAuthAppListView.as_view(), name="oauth-app-list"),
    path("settings/oauth-apps/<int:app_id>/delete/", oauth_apps.OAuthAppDeleteView.as_view(), name="oauth-app-delete"),
    path("settings/members/", members.MemberListView.as_view(), name="member-list"),
    path("settings/members/<int:membership_id>/role/", members.MemberRoleView.as_view(), name="member-role"),
    path("settings/members/<int:membership_id>/remove/", members.MemberRemoveView.as_view(), name="member-remove"),
    path("settings/plan/", account.AccountUsageView.as_view(), name="account-usage"),
    # -- privacy: erase a lead, the suppression list (ui/views/privacy.py) --
    path("leads/<uuid:lead_id>/erase/", privacy.LeadEraseView.as_view(), name="lead-erase"),
    path("settings/suppressions/", privacy.SuppressionListView.as_view(), name="suppression-list"),
    path(
        "settings/suppressions/<int:suppression_id>/lift/",
        privacy.SuppressionLiftView.as_view(),
        name="suppression-lift",
    ),
]
