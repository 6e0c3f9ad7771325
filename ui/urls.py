"""The web UI's routes (namespace `ui`); every name is mapped to its API twin in ui/registry.py."""

from django.urls import path

from .views import api_keys, leads

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
    # -- webhooks, OAuth apps, members, plan & usage (ui/views/webhooks.py, oauth_apps.py, members.py, account.py) --
]
