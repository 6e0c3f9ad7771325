"""The tenancy and scope matrix, generated from the URL configuration (issue 11, §2, §3).

Every route under /api/v1/ is found by walking `django.urls.get_resolver()`, and every HTTP method its
view allows is called by each of these callers, against real objects of the owner's account:

- no credentials: 401 `authentication_required`;
- another account's key with every scope (owner role): 404 `not_found` on a route with an object id;
  everywhere, none of the owner's data in the response and none of the owner's rows changed;
- a read-only key (`leads:read`): 403 `insufficient_scope` on writes and admin operations; reads succeed;
- a member's key (granted `admin` while the user was an admin, then demoted) and a member's OAuth token
  (granted every scope): 403 `insufficient_scope` on admin operations; reads and writes succeed;
- an admin's key (admin role, every scope): success (2xx), never 401, 403, or 404 for its own object.

"Success" is a 2xx: each matrix entry carries a valid body for its method, so that the only thing a
caller can trip over is tenancy or scope (a body error would hide a missing 404 behind a 400).

The matrix fails by construction: a route that is not listed in `MATRIX` (or `PUBLIC`), a method of a
view that its entry does not list, a URL kwarg without an object fixture in `World.ids`, or a view
that does not derive from `AccountScopedAPIView` each fail `test_route_matrix` with a message saying
what to add. `test_matrix_flags_an_unscoped_route` proves it with a fake route injected into the
URLconf that forgets to scope its query, and one that forgets its admin scope.

Public by design, listed explicitly in `PUBLIC`: the OpenAPI schema and its two documentation UIs.
The MCP endpoint (/mcp/) is not in the URLconf at all (config/asgi.py mounts it beside Django), so it
is not walked here; tests/test_mcp_http.py covers its authentication and tenancy.

`OPTIONS` (DRF's metadata: the view's name and description, never an object) answers like a read
for every caller with a credential; without one it is a 401 like every other method.
"""

from __future__ import annotations

import json
import re
import sys
import types
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from django.apps import apps
from django.core.files.base import ContentFile
from django.db import transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, re_path
from django.utils import timezone
from oauth2_provider.models import get_access_token_model
from rest_framework.response import Response

from accounts.actor import Actor
from accounts.models import Account, Membership, Role
from accounts.scopes import ALL_SCOPES, LEADS_READ, account_scope
from accounts.services import api_key_create, oauth_app_create
from core.api import AccountScopedAPIView
from jobs.models import Job, JobKind, JobStatus
from leads import services as lead_services
from leads.models import Lead
from leads.services import lead_create, note_add, segment_create
from scoring.services import scoring_rule_create
from webhooks import http as webhook_http
from webhooks.models import WebhookSubscription
from webhooks.services import subscription_create, subscription_test

from .factories import AccountFactory, MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

API_PREFIX = "api/v1/"
READ, WRITE, ADMIN_LEVEL = "read", "write", "admin"
# OPTIONS describes the endpoint (DRF metadata), never an object: it needs a credential, and then
# answers 200 or, when the view's scope map asks more of the credential, 403 insufficient_scope.
OPTIONS = "options"
# Every string the owner's account holds carries this mark, so a leak shows up in any response body.
MARK = "zq7owner"
PUBLIC_WEBHOOK_URL = f"https://93.184.216.34/hooks/{MARK}"  # a literal public address: no DNS, no SSRF refusal
REDIRECT_URI = "https://client.example.test/callback"

# Routes anyone may call without credentials, by design: the schema and the docs rendered from it.
PUBLIC: frozenset[str] = frozenset({"schema", "docs", "redoc"})


def body(level: str, payload: Any) -> tuple[str, Any]:
    """A matrix cell: the access level a method needs and the valid body it is called with
    (a dict, or a callable of the World for bodies that name the owner's objects)."""
    return (level, payload)


# route template -> {method: level or (level, body)}. HEAD follows GET; OPTIONS is checked for every route.
MATRIX: dict[str, dict[str, Any]] = {
    "me": {"GET": READ},
    "account": {"GET": READ, "PATCH": body(ADMIN_LEVEL, {"name": "Renamed"})},
    "members": {"GET": READ, "POST": body(ADMIN_LEVEL, {"email": "new-member@example.test", "role": "member"})},
    "members/{membership_id}": {"GET": READ, "PATCH": body(ADMIN_LEVEL, {"role": "admin"}), "DELETE": ADMIN_LEVEL},
    "api-keys": {"GET": ADMIN_LEVEL, "POST": body(ADMIN_LEVEL, {"name": "new key", "scopes": [LEADS_READ]})},
    "api-keys/{key_id}": {"GET": ADMIN_LEVEL, "DELETE": ADMIN_LEVEL},
    "oauth-apps": {
        "GET": ADMIN_LEVEL,
        "POST": body(ADMIN_LEVEL, {"name": "New app", "redirect_uris": [REDIRECT_URI], "client_type": "public"}),
    },
    "oauth-apps/{app_id}": {"GET": ADMIN_LEVEL, "DELETE": ADMIN_LEVEL},
    "me/authorized-apps": {"GET": READ},
    "me/authorized-apps/{app_id}": {"GET": READ, "DELETE": WRITE},
    "scoring-rules": {
        "GET": READ,
        "POST": body(
            ADMIN_LEVEL, {"name": "New rule", "field": "country", "operator": "equals", "value": "FR", "points": 5}
        ),
    },
    # A preview only reads; naming the owner's rule in the body must be a 404 for another account.
    "scoring-rules/preview": {
        "POST": body(
            READ,
            lambda w: {
                "name": "p",
                "field": "country",
                "operator": "equals",
                "value": "FR",
                "points": 5,
                "rule_id": w.ids["rule_id"],
            },
        ),
    },
    "scoring-rules/{rule_id}": {
        "GET": READ,
        "PUT": body(
            ADMIN_LEVEL, {"name": "Put rule", "field": "country", "operator": "equals", "value": "US", "points": 7}
        ),
        "PATCH": body(ADMIN_LEVEL, {"points": 9}),
        "DELETE": ADMIN_LEVEL,
    },
    "scoring/recalculate": {"POST": body(ADMIN_LEVEL, {})},
    "leads": {"GET": READ, "POST": body(WRITE, {"email": "fresh-lead@example.test", "first_name": "Fresh"})},
    "leads/batch": {
        "POST": body(WRITE, {"leads": [{"email": "batch-lead@example.test"}]}),
        "PUT": body(WRITE, lambda w: {"leads": [{"id": w.ids["lead_id"], "add_tags": ["batched"]}]}),
        "DELETE": body(WRITE, lambda w: {"ids": [w.ids["lead_id"]]}),
    },
    "leads/export": {"GET": READ},
    "exports": {"POST": body(READ, {"format": "csv"})},
    "leads/{lead_id}": {
        "GET": READ,
        "PUT": body(WRITE, {"first_name": "Changed"}),
        "PATCH": body(WRITE, {"job_title": "Changed"}),
        "DELETE": WRITE,
    },
    "leads/{lead_id}/notes": {"GET": READ, "POST": body(WRITE, {"body": "A new note"})},
    "leads/{lead_id}/activity": {"GET": READ},
    "leads/{lead_id}/erase": {"POST": body(ADMIN_LEVEL, {})},
    "suppressions": {"GET": ADMIN_LEVEL, "POST": body(ADMIN_LEVEL, {"email": "suppress-me@example.test"})},
    "suppressions/{suppression_id}": {"GET": ADMIN_LEVEL, "DELETE": ADMIN_LEVEL},
    "leads/{lead_id}/score": {"POST": WRITE},
    "segments": {"GET": READ, "POST": body(WRITE, {"name": "New segment", "filters": {"status": "new"}})},
    "segments/{segment_id}": {"GET": READ, "PATCH": body(WRITE, {"name": "Renamed segment"}), "DELETE": WRITE},
    "jobs/{job_id}": {"GET": READ},
    "jobs/{job_id}/download": {"GET": READ},
    "webhooks": {"GET": ADMIN_LEVEL, "POST": body(ADMIN_LEVEL, {"url": "https://93.184.216.34/hooks/new"})},
    "webhooks/{webhook_id}": {
        "GET": ADMIN_LEVEL,
        "PATCH": body(ADMIN_LEVEL, {"description": "changed"}),
        "DELETE": ADMIN_LEVEL,
    },
    "webhooks/{webhook_id}/rotate-secret": {"POST": body(ADMIN_LEVEL, {})},
    "webhooks/{webhook_id}/test": {"POST": ADMIN_LEVEL},
    "webhooks/{webhook_id}/deliveries": {"GET": ADMIN_LEVEL},
    "webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver": {"POST": ADMIN_LEVEL},
    "events": {"GET": READ},
}


# --- discovering the routes ---------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    template: str  # "leads/{lead_id}": the path under /api/v1/ with its kwargs in braces
    view_class: type | None
    methods: tuple[str, ...]
    kwargs: tuple[str, ...]

    def __str__(self) -> str:
        return f"/{API_PREFIX}{self.template}"


_GROUP = re.compile(r"\(\?P<(\w+)>[^)]*\)")
_CONVERTER = re.compile(r"<(?:\w+:)?(\w+)>")


def _template(raw: str) -> str:
    text = _GROUP.sub(r"{\1}", raw)
    text = _CONVERTER.sub(r"{\1}", text)
    return text.replace("^", "").replace("$", "").replace("/?", "/").replace("//", "/").strip("/")


def _view_class(pattern: URLPattern) -> type | None:
    callback = pattern.callback
    return getattr(callback, "view_class", None) or getattr(callback, "cls", None)


def _methods(pattern: URLPattern, view_class: type | None) -> tuple[str, ...]:
    if view_class is None:
        return ()
    # as_view(http_method_names=...) narrows the class's list for this route only.
    allowed = getattr(pattern.callback, "view_initkwargs", {}).get("http_method_names", view_class.http_method_names)
    methods = [m.upper() for m in allowed if m not in ("options", "head") and hasattr(view_class, m)]
    if "GET" in methods and "head" in allowed:
        methods.append("HEAD")  # Django answers HEAD with the GET handler
    if "options" in allowed:
        methods.append("OPTIONS")
    return tuple(methods)


def _walk(resolver: URLResolver, prefix: str = ""):
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            yield from _walk(entry, prefix + str(entry.pattern))
        else:
            yield prefix + str(entry.pattern), entry


def discover_routes(urlconf: str | None = None) -> list[Route]:
    """Every route of the URLconf under /api/v1/, with its view's methods and its URL kwargs."""
    routes = []
    for raw, pattern in _walk(get_resolver(urlconf)):
        raw = raw.lstrip("^")
        if not raw.startswith(API_PREFIX):
            continue
        view_class = _view_class(pattern)
        kwargs = tuple(_GROUP.findall(raw)) + tuple(_CONVERTER.findall(_GROUP.sub("", raw)))
        routes.append(Route(_template(raw[len(API_PREFIX) :]), view_class, _methods(pattern, view_class), kwargs))
    return routes


# --- the owner's world --------------------------------------------------------------------------


@dataclass
class World:
    owner_account: Account
    other_account: Account
    ids: dict[str, Any]  # one real object of the owner's account per URL kwarg name
    callers: dict[str, dict[str, str]]  # caller -> request headers
    secrets: set[str] = field(default_factory=set)  # owner's identifiers that must never reach other callers

    def url(self, route: Route) -> str:
        missing = [k for k in route.kwargs if k not in self.ids]
        if missing:
            raise LookupError(missing)
        return "/" + API_PREFIX + route.template.format(**{k: self.ids[k] for k in route.kwargs})


def _fake_post(url, ip, body, headers, timeout):
    return webhook_http.PostResult(200, 1, "ok")


@pytest.fixture(autouse=True)
def quiet_world(settings, tmp_path, monkeypatch):
    """Files under a temporary media root; webhook POSTs answered in-process (nothing leaves the machine)."""
    settings.MEDIA_ROOT = str(tmp_path)
    monkeypatch.setattr(webhook_http, "post", _fake_post)


def _token(user, app, account, scopes: str) -> str:
    raw = f"tok-{MARK}-{user.pk}-{app.pk}-{account.pk}"
    get_access_token_model().objects.create(
        user=user,
        application=app,
        token=raw,
        expires=timezone.now() + timedelta(hours=1),
        scope=f"{scopes} {account_scope(account.pk)}",
    )
    return raw


@pytest.fixture
def world(db) -> World:
    """The owner's account with one object per URL kwarg, its callers, and another account's key."""
    acme = AccountFactory(slug=f"acct-{MARK}", name=f"Owner {MARK}")
    globex = AccountFactory(slug="other-account", name="Other Account")
    owner = MembershipFactory(account=acme, user=UserFactory(email=f"owner-{MARK}@example.test"), role=Role.OWNER).user
    admin = MembershipFactory(account=acme, user=UserFactory(email=f"admin-{MARK}@example.test"), role=Role.ADMIN).user
    member = MembershipFactory(account=acme, user=UserFactory(email=f"member-{MARK}@example.test"), role=Role.ADMIN)
    target = MembershipFactory(account=acme, user=UserFactory(email=f"target-{MARK}@example.test"), role=Role.MEMBER)
    stranger = MembershipFactory(account=globex, user=UserFactory(email="stranger@example.test"), role=Role.OWNER).user

    def key(account, user, scopes, name="matrix key"):
        return api_key_create(account=account, created_by=user, name=name, scopes=list(scopes))

    admin_key = key(acme, admin, ALL_SCOPES)[1]
    read_key = key(acme, owner, [LEADS_READ])[1]
    # Granted every scope while an admin, then demoted: the key must shrink to the member role.
    member_key = key(acme, member.user, ALL_SCOPES)[1]
    Membership.objects.filter(pk=member.pk).update(role=Role.MEMBER)
    other_key = key(globex, stranger, ALL_SCOPES)[1]
    extra_key, _ = key(acme, owner, [LEADS_READ], name=f"Key {MARK}")

    owner_actor = Actor(user=owner, account=acme, role=Role.OWNER, scopes=frozenset(ALL_SCOPES))
    app, _ = oauth_app_create(account=acme, actor=owner_actor, name=f"App {MARK}", redirect_uris=[REDIRECT_URI])
    member_token = _token(member.user, app, acme, " ".join(ALL_SCOPES))  # capped to the member role at use
    # The read-only key's and the admin key's users have authorised the app too (/me/authorized-apps/{app_id}).
    _token(owner, app, acme, LEADS_READ)
    _token(admin, app, acme, LEADS_READ)

    lead = lead_create(
        account=acme, actor=None, data={"email": f"lead-{MARK}@example.test", "first_name": MARK, "country": "DE"}
    ).lead
    note_add(account=acme, actor=None, lead_id=lead.pk, body=f"Note {MARK}")
    rule, _ = scoring_rule_create(
        account=acme,
        actor=None,
        data={"name": f"Rule {MARK}", "field": "country", "operator": "equals", "value": "DE", "points": 30},
    )
    segment = segment_create(account=acme, actor=None, name=f"Segment {MARK}", filters={"country": "DE"})
    webhook = subscription_create(account=acme, actor=None, data={"url": PUBLIC_WEBHOOK_URL, "description": MARK})
    delivery = subscription_test(account=acme, actor=None, subscription_id=webhook.pk)
    job = Job.objects.create(
        account=acme, kind=JobKind.EXPORT, status=JobStatus.SUCCEEDED, result={"filename": f"{MARK}.csv", "rows": 1}
    )
    suppression, _ = lead_services.suppression_create(account=acme, actor=None, email=f"gone-{MARK}@example.test")
    job.file.save(f"{MARK}.csv", ContentFile(f"email\r\nlead-{MARK}@example.test\r\n".encode()))

    ids = {
        "lead_id": str(lead.pk),
        "rule_id": rule.pk,
        "segment_id": segment.pk,
        "webhook_id": webhook.pk,
        "delivery_id": delivery.pk,
        "job_id": str(job.pk),
        "key_id": extra_key.pk,
        "membership_id": target.pk,
        "app_id": app.pk,
        "suppression_id": suppression.pk,
    }
    callers = {
        "anonymous": {},
        "other_account": {"HTTP_X_API_KEY": other_key},
        "read_only": {"HTTP_X_API_KEY": read_key},
        "member_key": {"HTTP_X_API_KEY": member_key},
        "member_oauth": {"HTTP_AUTHORIZATION": f"Bearer {member_token}"},
        "admin": {"HTTP_X_API_KEY": admin_key},
    }
    secrets = {MARK, str(lead.pk), str(job.pk), app.client_id, extra_key.prefix}
    return World(acme, globex, ids, callers, secrets)


def owner_fingerprint(world: World) -> list:
    """Every row of every account-owned model in the owner's account, and the owner's OAuth tokens:
    another account's request must leave all of it exactly as it was."""
    rows: list = []
    for model in apps.get_models():
        names = {f.name for f in model._meta.concrete_fields}
        if "account" in names:
            rows.append(
                (
                    model._meta.label,
                    list(model._base_manager.filter(account=world.owner_account).order_by("pk").values()),
                )
            )
    rows.append(("account", list(Account.objects.filter(pk=world.owner_account.pk).values())))
    rows.append(("memberships", list(Membership.objects.filter(account=world.owner_account).order_by("pk").values())))
    scope = account_scope(world.owner_account.pk)
    tokens = get_access_token_model().objects.filter(scope__contains=scope).order_by("pk").values()
    rows.append(("tokens", list(tokens)))
    return rows


# --- the checks ---------------------------------------------------------------------------------


@dataclass
class Call:
    status: int
    body: str
    content_type: str
    code: str | None


def call(world: World, caller: str, method: str, url: str, payload: Any, inspect=None) -> tuple[Call, Any]:
    """One request, rolled back afterwards, so every caller meets the same owner's world.
    `inspect()` runs after the request and before the rollback; its result is returned beside the call."""
    client = Client()
    with transaction.atomic():
        if payload is None or method in ("GET", "HEAD", "OPTIONS"):
            response = client.generic(method, url, **world.callers[caller])
        else:
            data = json.dumps(payload)
            response = client.generic(method, url, data, content_type="application/json", **world.callers[caller])
        content = b"".join(response.streaming_content) if response.streaming else response.content
        seen = inspect() if inspect else None
        transaction.set_rollback(True)
    text = content.decode("utf-8", "replace")
    content_type = response.get("Content-Type", "")
    code = None
    if content_type.startswith("application/problem+json") and text:  # a HEAD answer has no body
        code = json.loads(text).get("code")
    return Call(response.status_code, text, content_type, code), seen


def _cell(route: Route, method: str) -> tuple[str, Any]:
    if method == "OPTIONS":
        return OPTIONS, None
    cell = MATRIX[route.template]["GET" if method == "HEAD" else method]
    return cell if isinstance(cell, tuple) else (cell, None)


def _describe(c: Call) -> str:
    return f"{c.status} {c.code or ''} {c.body[:200]!r}"


def entry_problems(route: Route) -> list[str]:
    """What is missing for the route to be checked at all: a matrix entry, a method, a fixture, the base view."""
    if route.template in PUBLIC:
        return []
    problems = []
    if route.view_class is None or not issubclass(route.view_class, AccountScopedAPIView):
        problems.append(f"{route}: the view {route.view_class!r} does not derive from core.api.AccountScopedAPIView")
    if route.template not in MATRIX:
        problems.append(
            f"{route} is not in the tenancy matrix: add MATRIX[{route.template!r}] = "
            f"{{method: level or body(level, payload)}} for {', '.join(route.methods)} in tests/test_tenancy_matrix.py"
        )
        return problems
    listed = MATRIX[route.template]
    for method in route.methods:
        if method not in ("HEAD", "OPTIONS") and method not in listed:
            problems.append(f"{route}: {method} is allowed by the view but has no cell in MATRIX[{route.template!r}]")
    for method in listed:
        if method not in route.methods:
            problems.append(f"{route}: MATRIX lists {method}, which the view does not allow (a stale cell)")
    return problems


def route_problems(world: World, route: Route, method: str) -> list[str]:
    """Call `method` on `route` as every caller; return every deviation from the matrix's expectation."""
    if route.template in PUBLIC:
        c, _ = call(world, "anonymous", method, "/" + API_PREFIX + route.template, None)
        return [] if c.status == 200 else [f"{method} {route} (public) anonymous: {_describe(c)}"]
    try:
        url = world.url(route)
    except LookupError as exc:
        return [
            f"{route}: no object fixture for URL kwarg(s) {', '.join(exc.args[0])}: create one in the owner's "
            "account in the `world` fixture of tests/test_tenancy_matrix.py and add it to `ids`"
        ]
    level, payload = _cell(route, method)
    if callable(payload):
        payload = payload(world)
    sent = url + json.dumps(payload)
    leaks = [s for s in world.secrets if s not in sent]
    has_object = bool(route.kwargs)
    problems = []

    def fail(caller: str, c: Call, expected: str) -> None:
        problems.append(f"{method} {route} as {caller}: expected {expected}, got {_describe(c)}")

    def problem_is(c: Call, status: int, code: str) -> bool:
        return c.status == status and (method == "HEAD" or c.code == code)

    c, _ = call(world, "anonymous", method, url, payload)
    if not problem_is(c, 401, "authentication_required"):
        fail("anonymous", c, "401 authentication_required")
    if any(s in c.body for s in leaks):
        fail("anonymous", c, "no owner's data")

    before = owner_fingerprint(world)
    c, after = call(world, "other_account", method, url, payload, inspect=lambda: owner_fingerprint(world))
    if has_object and level != OPTIONS:
        if not problem_is(c, 404, "not_found"):
            fail("other_account", c, "404 not_found (another account's object)")
    elif c.status in (401, 403) or c.status >= 500:
        fail("other_account", c, "its own account's answer (not 401/403/5xx)")
    leaked = [s for s in leaks if s in c.body]
    if leaked:
        fail("other_account", c, f"none of the owner's data (found {leaked})")
    if before != after:
        fail("other_account", c, "the owner's rows unchanged")

    def expect(caller: str, allowed: bool) -> None:
        c, _ = call(world, caller, method, url, payload)
        if level == OPTIONS:
            narrower = caller != "admin" and problem_is(c, 403, "insufficient_scope")
            if c.status != 200 and not narrower:
                fail(caller, c, "200 (or 403 insufficient_scope for a narrower credential)")
            return
        if allowed and not 200 <= c.status < 300:
            fail(caller, c, "2xx")
        if not allowed and not problem_is(c, 403, "insufficient_scope"):
            fail(caller, c, "403 insufficient_scope")

    expect("read_only", level == READ)
    expect("member_key", level in (READ, WRITE))
    expect("member_oauth", level in (READ, WRITE))
    expect("admin", True)
    return problems


# --- the tests ----------------------------------------------------------------------------------

ROUTES = discover_routes()
CASES = [pytest.param(r, m, id=f"{m} /{r.template}") for r in ROUTES for m in r.methods]


def test_every_api_route_is_discovered_and_the_public_ones_are_exactly_the_docs():
    templates = {r.template for r in ROUTES}
    assert len(ROUTES) >= len(MATRIX), "the walk found fewer routes than the matrix lists"
    assert templates >= PUBLIC
    stale = sorted(set(MATRIX) - templates)
    assert not stale, f"MATRIX lists routes that no longer exist: {stale}"
    for route in ROUTES:
        if route.template in PUBLIC:
            assert not issubclass(route.view_class, AccountScopedAPIView)


@pytest.mark.parametrize("route", [pytest.param(r, id=f"/{r.template}") for r in ROUTES])
def test_route_has_a_matrix_entry_fixtures_and_the_scoped_base_view(route, world):
    problems = entry_problems(route)
    if route.template not in PUBLIC:
        missing = [k for k in route.kwargs if k not in world.ids]
        if missing:
            problems.append(f"{route}: no object fixture for URL kwarg(s) {', '.join(missing)}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(("route", "method"), CASES)
def test_route_matrix(route, method, world):
    problems = entry_problems(route) or route_problems(world, route, method)
    assert not problems, "\n".join(problems)


# --- proof that the matrix catches what it is for ------------------------------------------------


class UnscopedLeadView(AccountScopedAPIView):
    """Forgets tenancy: looks the lead up by id alone, in whatever account it is."""

    def get(self, request, lead_id):
        lead = Lead.objects.get(pk=lead_id)
        return Response({"id": str(lead.pk), "email": lead.email})


class ForgotAdminScopeView(AccountScopedAPIView):
    """Forgets its `required_scopes`: the default lets any `leads:read` credential list the webhooks."""

    def get(self, request):
        urls = WebhookSubscription.objects.for_account(self.account).values_list("url", flat=True)
        return Response({"results": list(urls)})


class PlainView(AccountScopedAPIView):
    def get(self, request, widget_id):
        return Response({})


@pytest.fixture
def fake_urlconf(settings):
    """The project's URLconf plus three fake routes, as a module installed for this test only."""
    import config.urls

    module = types.ModuleType("tests._fake_unscoped_urls")
    module.urlpatterns = [
        re_path(r"^api/v1/unscoped-leads/(?P<lead_id>[^/]+)/?$", UnscopedLeadView.as_view()),
        re_path(r"^api/v1/webhook-urls/?$", ForgotAdminScopeView.as_view()),
        re_path(r"^api/v1/widgets/(?P<widget_id>[0-9]+)/?$", PlainView.as_view()),
        *config.urls.urlpatterns,
    ]
    sys.modules[module.__name__] = module
    settings.ROOT_URLCONF = module.__name__
    yield module.__name__
    del sys.modules[module.__name__]


def test_matrix_flags_an_unscoped_route(world, fake_urlconf, monkeypatch):
    routes = {r.template: r for r in discover_routes(fake_urlconf)}
    unscoped, forgot_admin, widget = (
        routes["unscoped-leads/{lead_id}"],
        routes["webhook-urls"],
        routes["widgets/{widget_id}"],
    )

    # Unlisted, they fail before a request is made.
    for route in (unscoped, forgot_admin, widget):
        assert any("is not in the tenancy matrix" in p for p in entry_problems(route))

    # Listed, the requests show what each one forgot.
    monkeypatch.setitem(MATRIX, unscoped.template, {"GET": READ})
    monkeypatch.setitem(MATRIX, forgot_admin.template, {"GET": ADMIN_LEVEL})
    monkeypatch.setitem(MATRIX, widget.template, {"GET": READ})
    assert entry_problems(unscoped) == entry_problems(forgot_admin) == []

    problems = route_problems(world, unscoped, "GET")
    assert any("as other_account: expected 404 not_found" in p and "200" in p for p in problems), problems
    assert any("as other_account: expected none of the owner's data" in p for p in problems), problems

    problems = route_problems(world, forgot_admin, "GET")
    assert any("as read_only: expected 403 insufficient_scope" in p for p in problems), problems
    assert any("as member_key: expected 403 insufficient_scope" in p for p in problems), problems

    problems = route_problems(world, widget, "GET")
    assert problems == [
        f"{widget}: no object fixture for URL kwarg(s) widget_id: create one in the owner's account in the "
        "`world` fixture of tests/test_tenancy_matrix.py and add it to `ids`"
    ]


def test_matrix_flags_a_view_outside_the_scoped_base(fake_urlconf, monkeypatch):
    from rest_framework.views import APIView

    class Loose(APIView):
        def get(self, request):
            return Response({})

    route = Route("loose", Loose, ("GET", "HEAD", "OPTIONS"), ())
    monkeypatch.setitem(MATRIX, "loose", {"GET": READ})
    assert entry_problems(route) == [f"{route}: the view {Loose!r} does not derive from core.api.AccountScopedAPIView"]
