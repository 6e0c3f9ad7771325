"""The web UI's routes (namespace `ui`); every name is mapped to its API twin in ui/registry.py."""

from django.urls import path

from . import views

app_name = "ui"

urlpatterns = [
    path("", views.HomeView.as_view(), name="home"),
    path("account/switch/", views.AccountSwitchView.as_view(), name="account-switch"),
    path("leads/", views.LeadListView.as_view(), name="lead-list"),
    path("leads/new/", views.LeadCreateView.as_view(), name="lead-create"),
    path("leads/bulk/", views.LeadBulkView.as_view(), name="lead-bulk"),
    path("leads/<uuid:lead_id>/", views.LeadDetailView.as_view(), name="lead-detail"),
    path("leads/<uuid:lead_id>/edit/", views.LeadEditView.as_view(), name="lead-edit"),
    path("leads/<uuid:lead_id>/delete/", views.LeadDeleteView.as_view(), name="lead-delete"),
    path("settings/api-keys/", views.ApiKeyListView.as_view(), name="api-key-list"),
    path("settings/api-keys/<int:key_id>/revoke/", views.ApiKeyRevokeView.as_view(), name="api-key-revoke"),
]
