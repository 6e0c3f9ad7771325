from django.urls import re_path

from . import views

urlpatterns = [
    re_path(r"^me/?$", views.MeView.as_view(), name="me"),
    re_path(r"^account/?$", views.AccountView.as_view(), name="account"),
    re_path(r"^members/?$", views.MemberListView.as_view(), name="member-list"),
    re_path(r"^members/(?P<membership_id>[0-9]{1,18})/?$", views.MemberDetailView.as_view(), name="member-detail"),
    re_path(r"^api-keys/?$", views.ApiKeyListView.as_view(), name="api-key-list"),
    re_path(r"^api-keys/(?P<key_id>[0-9]{1,18})/?$", views.ApiKeyDetailView.as_view(), name="api-key-detail"),
    re_path(r"^oauth-apps/?$", views.OAuthAppListView.as_view(), name="oauth-app-list"),
    re_path(r"^oauth-apps/(?P<app_id>[0-9]{1,18})/?$", views.OAuthAppDetailView.as_view(), name="oauth-app-detail"),
    re_path(r"^me/authorized-apps/?$", views.AuthorizedAppListView.as_view(), name="authorized-app-list"),
    re_path(
        r"^me/authorized-apps/(?P<app_id>[0-9]{1,18})/?$",
        views.AuthorizedAppDetailView.as_view(),
        name="authorized-app-detail",
    ),
]
