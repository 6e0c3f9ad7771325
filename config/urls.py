import re

from django.contrib import admin
from django.core.exceptions import ImproperlyConfigured
from django.urls import URLPattern, include, path, re_path
from django.urls.resolvers import RegexPattern
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from core.views import handler400, handler403, handler404, handler500  # noqa: F401  (Django looks them up here)
from leads.api.urls import urlpatterns as leads_urlpatterns

# The schema and its docs are public pages: GET and HEAD only (OPTIONS on the Swagger view was a 500,
# DRF rendering its metadata through a template-less HTML renderer).
DOCS_METHODS = ["get", "head"]


def under(prefix: str, patterns: list[URLPattern]) -> list[URLPattern]:
    """`patterns` (regex routes anchored with ^) served under `prefix` at this level, without an include: each
    include level costs every request that resolves through it a nested match (~6 us of a
    `GET /api/v1/leads/{id}`'s ~330 us of CPU on the benchmark machine). Names and default arguments are kept,
    so reverse() is unchanged. The prefix goes after the ^, so a route with an alternation (`^a|b$` would put
    only `a` under it) or inline flags is refused, as is anything but a re_path route; wrapping the route in a
    group instead would be exact, but drf-spectacular cannot read paths with one (the schema lost every lead
    operation)."""
    routes = []
    for p in patterns:
        regex = str(p.pattern)
        if not isinstance(p, URLPattern) or not isinstance(p.pattern, RegexPattern) or not regex.startswith("^"):
            raise ImproperlyConfigured(f"under() takes re_path routes anchored with ^, not {p!r}")
        if "|" in regex or regex.startswith("^(?"):
            raise ImproperlyConfigured(f"under() cannot keep {regex!r} under a prefix (alternation or inline flags)")
        routes.append(re_path(f"^{re.escape(prefix)}{regex[1:]}", p.callback, p.default_args, p.name))
    return routes


api_v1 = [
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
    # The lead routes, the API's busiest, first and at the top level (under()): Django tries the patterns in
    # order, one resolver per level.
    *under("api/v1/", leads_urlpatterns),
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    # /login/, /logout/, /oauth/… and /.well-known/oauth-authorization-server
    path("", include("accounts.urls")),
    # The web UI (§4.11): /, /leads/…, /settings/…
    path("", include("ui.urls")),
]
