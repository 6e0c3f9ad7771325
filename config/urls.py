from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from core.views import handler400, handler403, handler404, handler500  # noqa: F401  (Django looks them up here)
from leads.api.urls import urlpatterns as leads_urlpatterns

# The schema and its docs are public pages: GET and HEAD only (OPTIONS on the Swagger view was a 500,
# DRF rendering its metadata through a template-less HTML renderer).
DOCS_METHODS = ["get", "head"]

api_v1 = [
    # Leads first and not nested in an include of their own: their routes are the busiest, and Django
    # tries the patterns in order, one resolver per level.
    *leads_urlpatterns,
    re_path(r"^schema/?$", SpectacularAPIView.as_view(http_method_names=DOCS_METHODS), name="schema"),
    re_path(
        r"^docs/?$", SpectacularSwaggerView.as_view(url_name="schema", http_method_names=DOCS_METHODS), name="docs"
    ),
    re_path(
        r"^redoc/?$", SpectacularRedocView.as_view(url_name="schema", http_method_names=DOCS_METHODS), name="redoc"
    ),
    path("", include("accounts.api.urls")),
    path("", include("scoring.api.urls")),
    path("", include("jobs.api.urls")),
    path("", include("webhooks.api.urls")),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    # /login/, /logout/, /oauth/… and /.well-known/oauth-authorization-server
    path("", include("accounts.urls")),
    # The web UI (§4.11): /, /leads/…, /settings/…
    path("", include("ui.urls")),
]
