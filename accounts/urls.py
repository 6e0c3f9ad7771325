"""People-facing pages and the OAuth 2.0 endpoints (docs/oauth.md).

The OAuth endpoints keep django-oauth-toolkit's URL names in its `oauth2_provider` namespace, so its
metadata document and the RFC 9207 `iss` value find them. Only the authorization code flow is
routed: no implicit, password, client-credentials or device endpoints, no DOT application pages.
"""

from django.urls import include, path
from oauth2_provider import views as dot_views

from . import views


def _endpoint(route: str, view, name: str) -> list:
    """The endpoint at `route/` (its canonical URL, as DOT has it) and, unnamed, without the slash."""
    return [path(f"{route}/", view, name=name), path(route, view)]


oauth_urlpatterns = [
    *_endpoint("oauth/authorize", views.AuthorizeView.as_view(), "authorize"),
    *_endpoint("oauth/token", views.TokenView.as_view(), "token"),
    *_endpoint("oauth/revoke_token", dot_views.RevokeTokenView.as_view(), "revoke-token"),
    *_endpoint("oauth/introspect", views.IntrospectView.as_view(), "introspect"),
    # RFC 8414: the metadata document lives at the origin's root.
    path(
        ".well-known/oauth-authorization-server",
        dot_views.OAuthServerMetadataView.as_view(),
        name="oauth-server-metadata",
    ),
]

urlpatterns = [
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", views.LogoutView.as_view(), name="logout"),
    path("oauth/authorized-apps/", views.AuthorizedAppsView.as_view(), name="oauth-authorized-apps"),
    path("", include((oauth_urlpatterns, "oauth2_provider"))),
]
