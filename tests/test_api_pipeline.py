"""The API views' request cycle (core/api.py): DRF's, with its components built once and the steps the API
never uses skipped. These tests hold the shortcuts to DRF's behaviour: shared components keep no state, a
missing scope still names the scope, a view with throttles or versioning still gets them, and an
AttributeError in an authenticator is not mistaken for a missing attribute."""

from __future__ import annotations

import threading

import pytest
from django.db import connection
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.request import WrappedAttributeError
from rest_framework.response import Response
from rest_framework.test import APIClient, APIRequestFactory
from rest_framework.throttling import BaseThrottle
from rest_framework.versioning import QueryParameterVersioning

from core import api as core_api
from core.api import AccountScopedAPIView
from core.permissions import ScopePermission

pytestmark = pytest.mark.django_db


def api_view_classes() -> set[type]:
    """Every AccountScopedAPIView the project routes to."""
    found: set[type] = set()

    def walk(patterns):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns)
            elif isinstance(pattern, URLPattern):
                cls = getattr(pattern.callback, "view_class", None)
                if cls is not None and issubclass(cls, AccountScopedAPIView):
                    found.add(cls)

    walk(get_resolver().url_patterns)
    return found


def shared_components(view_class: type) -> list:
    """The instances the view's requests use (the same the view's get_* methods return)."""
    return [
        instance
        for classes in (
            view_class.authentication_classes,
            view_class.permission_classes,
            view_class.parser_classes,
            view_class.renderer_classes,
            (view_class.content_negotiation_class,),
        )
        for instance in core_api._components(classes)
    ]


def test_every_routed_api_view_is_found():
    names = {cls.__name__ for cls in api_view_classes()}
    assert {"LeadDetailView", "LeadListCreateView", "LeadBatchView", "LeadExportView"} <= names


def test_each_view_reuses_one_instance_of_each_component(account, make_client):
    api = make_client(account)
    seen = []
    original = core_api._components

    def spy(classes):
        found = original(classes)
        seen.append(found)
        return found

    core_api._components = spy
    try:
        for _ in range(2):
            assert api.get("/api/v1/leads").status_code == 200
    finally:
        core_api._components = original
    first, second = seen[: len(seen) // 2], seen[len(seen) // 2 :]
    assert first and len(first) == len(second)
    assert all(a is b for a, b in zip(first, second, strict=True))


def test_shared_components_keep_no_state_across_requests(account, make_client, make_key):
    """Served and refused requests of every kind leave every shared component as it was built: nothing one
    request sets can be read by the next (or by another thread's)."""
    writer = make_client(account)
    reader = make_client(account, scopes=["leads:read"])
    lead = writer.post("/api/v1/leads", {"email": "state@example.org"}, format="json").json()
    anonymous = APIClient()
    bad = APIClient()
    bad.credentials(HTTP_X_API_KEY="lb_" + "x" * 40)
    bearer = APIClient()
    bearer.credentials(HTTP_AUTHORIZATION="Bearer not-a-token")
    responses = [
        writer.get(f"/api/v1/leads/{lead['id']}"),
        writer.get("/api/v1/leads?status=nope"),
        writer.post("/api/v1/leads", "{not json", content_type="application/json"),
        writer.get("/api/v1/leads/00000000-0000-0000-0000-000000000000"),
        reader.post("/api/v1/leads", {"email": "x@example.org"}, format="json"),
        reader.get("/api/v1/api-keys"),
        anonymous.get("/api/v1/leads"),
        bad.get("/api/v1/leads"),
        bearer.get("/api/v1/leads"),
        writer.get("/api/v1/leads/export?format=csv"),
    ]
    assert [r.status_code for r in responses] == [200, 400, 400, 404, 403, 403, 401, 401, 401, 200]
    for view_class in api_view_classes():
        for instance in shared_components(view_class):
            assert vars(instance) == {}, (view_class.__name__, type(instance).__name__, vars(instance))


@pytest.mark.django_db(transaction=True)
def test_a_missing_scope_is_named_for_each_request_alike_from_many_threads(account, make_client):
    """ScopePermission is one instance for all requests: each refusal names its own operation's scope."""
    read_only = make_client(account, scopes=["leads:read"])
    write_only = make_client(account, scopes=["leads:write"])
    details: list[tuple[str, str]] = []
    errors: list[BaseException] = []

    def call(client, method, expected):
        try:
            for _ in range(5):
                response = getattr(client, method)("/api/v1/leads", {"email": "t@example.org"}, format="json")
                details.append((expected, response.json()["detail"]))
        except BaseException as exc:  # reported below, in the test thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [
        threading.Thread(target=call, args=(read_only, "post", "leads:write")),
        threading.Thread(target=call, args=(write_only, "get", "leads:read")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(details) == 10
    for expected, detail in details:
        assert detail == f"This operation needs the '{expected}' scope."


class Refuse(BaseThrottle):
    def allow_request(self, request, view):
        return False

    def wait(self):
        return 7


class ThrottledView(AccountScopedAPIView):
    throttle_classes = [Refuse]

    def get(self, request):
        return Response({"ok": True})


class VersionedView(AccountScopedAPIView):
    versioning_class = QueryParameterVersioning

    def get(self, request):
        return Response({"version": request.version})


def test_a_view_with_throttles_still_runs_them(account, make_key):
    request = APIRequestFactory().get("/x", HTTP_X_API_KEY=make_key(account))
    response = ThrottledView.as_view()(request)
    assert response.status_code == 429
    assert response.data["code"] == "rate_limited"
    assert response["Retry-After"] == "7"


def test_a_view_with_versioning_still_determines_the_version(account, make_key):
    request = APIRequestFactory().get("/x?version=2", HTTP_X_API_KEY=make_key(account))
    response = VersionedView.as_view()(request)
    assert response.status_code == 200
    assert response.data == {"version": "2"}


def test_the_common_path_sets_what_drf_would(account, make_key):
    seen = {}

    class Probe(AccountScopedAPIView):
        def get(self, request):
            seen.update(
                version=request.version,
                scheme=request.versioning_scheme,
                renderer=type(request.accepted_renderer).__name__,
                media_type=request.accepted_media_type,
                authenticator=type(request.successful_authenticator).__name__,
                format_kwarg=self.format_kwarg,
            )
            return Response({})

    response = Probe.as_view()(APIRequestFactory().get("/x", HTTP_X_API_KEY=make_key(account)))
    assert response.status_code == 200
    assert seen == {
        "version": None,
        "scheme": None,
        "renderer": "JSONRenderer",
        "media_type": "application/json",
        "authenticator": "ApiKeyAuthentication",
        "format_kwarg": None,
    }


def test_an_attribute_error_inside_an_authenticator_is_an_error_not_anonymity(caplog):
    class Broken:
        def authenticate(self, request):
            return request.no_such_attribute_anywhere

        def authenticate_header(self, request):
            return "Bearer"

    class View(AccountScopedAPIView):
        authentication_classes = [Broken]

        def get(self, request):  # pragma: no cover  (must not be reached)
            return Response({})

    response = View.as_view()(APIRequestFactory().get("/x"))
    assert response.status_code == 500
    assert response.data["code"] == "internal_error"
    logged = [r for r in caplog.records if r.exc_info and isinstance(r.exc_info[1], WrappedAttributeError)]
    assert logged and "no_such_attribute_anywhere" in str(logged[0].exc_info[1])


def test_no_credentials_is_401_and_no_scope_check_runs(monkeypatch):
    calls = []
    original = ScopePermission.has_permission

    def spy(self, request, view):
        calls.append(request.auth)
        return original(self, request, view)

    monkeypatch.setattr(ScopePermission, "has_permission", spy)
    response = APIClient().get("/api/v1/leads")
    assert response.status_code == 401
    assert response.json()["code"] == "authentication_required"
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    assert calls == []  # HasAccount refused first


def test_the_lead_routes_resolve_at_the_top_level_with_their_names_and_trailing_slashes():
    from django.urls import resolve, reverse

    from leads.api.views import LeadDetailView, LeadListCreateView

    top_level = {p.name for p in get_resolver().url_patterns if isinstance(p, URLPattern)}
    assert {"lead-list", "lead-detail", "lead-batch", "lead-export", "lead-notes"} <= top_level
    lead_id = "0b7c6f4e-1d2a-4c3b-9e8f-7a6b5c4d3e2f"
    assert reverse("lead-detail", kwargs={"lead_id": lead_id}) == f"/api/v1/leads/{lead_id}"
    for path in (f"/api/v1/leads/{lead_id}", f"/api/v1/leads/{lead_id}/"):
        match = resolve(path)
        assert match.func.view_class is LeadDetailView
        assert match.kwargs == {"lead_id": lead_id}
    assert resolve("/api/v1/leads").func.view_class is LeadListCreateView
    assert resolve("/api/v1/leads/batch").url_name == "lead-batch"  # not taken for a lead id


def test_a_component_class_that_does_not_declare_itself_stateless_is_built_per_request(account, make_key):
    """`keeps_no_state` counts only where a class declares it: a subclass may add state (here, as DRF's docs
    suggest for messages) and then gets an instance per request, as DRF gives every component."""
    instances = []

    class Remembering(ScopePermission):  # inherits keeps_no_state, does not declare it
        def has_permission(self, request, view):
            instances.append(self)
            self.message = f"seen {request.method}"
            return super().has_permission(request, view)

    class View(AccountScopedAPIView):
        permission_classes = [Remembering]

        def get(self, request):
            return Response({})

    key = make_key(account)
    for _ in range(2):
        assert View.as_view()(APIRequestFactory().get("/x", HTTP_X_API_KEY=key)).status_code == 200
    assert len(instances) == 2 and instances[0] is not instances[1]


def test_a_view_overriding_a_skipped_step_gets_drf_initial(account, make_key):
    calls = []

    class View(AccountScopedAPIView):
        def check_throttles(self, request):
            calls.append(request.method)
            super().check_throttles(request)

        def get(self, request):
            return Response({})

    assert View.as_view()(APIRequestFactory().get("/x", HTTP_X_API_KEY=make_key(account))).status_code == 200
    assert calls == ["GET"]


def test_a_request_authenticated_before_initial_is_neither_authenticated_nor_charged_again(account, make_key):
    from accounts.authentication import ApiKeyAuthentication
    from core.ratelimit import peek_account

    calls = []

    class Counting(ApiKeyAuthentication):
        keeps_no_state = True

        def authenticate(self, request):
            calls.append(1)
            return super().authenticate(request)

    class View(AccountScopedAPIView):
        authentication_classes = [Counting]

        def initial(self, request, *args, **kwargs):
            request.user  # noqa: B018  (a mixin reading the user first)
            super().initial(request, *args, **kwargs)

        def get(self, request):
            return Response({"account": request.auth.account.pk})

    key = make_key(account)
    before = peek_account(account).remaining
    response = View.as_view()(APIRequestFactory().get("/x", HTTP_X_API_KEY=key))
    assert response.status_code == 200 and response.data == {"account": account.pk}
    assert calls == [1]
    assert peek_account(account).remaining == before - 1


def test_under_mounts_a_route_under_its_prefix_and_refuses_what_it_cannot_keep_there():
    from django.core.exceptions import ImproperlyConfigured
    from django.urls import include, path, re_path

    from config.urls import under

    def view(request, **kwargs):  # pragma: no cover  (never called)
        return None

    (route,) = under("api/v1/", [re_path(r"^c/(?P<n>[0-9]+)/?$", view, {"x": 1}, name="c")])
    assert route.pattern.regex.match("api/v1/c/12/").groupdict() == {"n": "12"}
    assert not route.pattern.regex.match("api/v1/c/12/x") and not route.pattern.regex.match("c/12")
    assert route.default_args == {"x": 1} and route.name == "c"
    for bad in (
        path("x/", view),
        re_path(r"x$", view),
        re_path(r"^a|b$", view),  # `b` would not be under the prefix
        re_path(r"^(?i)x$", view),
        path("y/", include([])),
    ):
        with pytest.raises(ImproperlyConfigured):
            under("api/v1/", [bad])
