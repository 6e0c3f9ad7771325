"""The base API view (authentication, scope checks and the account every query is scoped to), and the
two halves every cursor-paginated list shares: `list_params` (strict query parameters, `limit`,
`cursor`) and `page_response` (the `{results, next_cursor, has_more}` envelope and its `Link` header)."""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.http import HttpResponse
from rest_framework.exceptions import APIException
from rest_framework.request import WrappedAttributeError
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer
from rest_framework.views import APIView

from accounts.actor import Actor
from accounts.authentication import client_ip

from . import ratelimit
from .errors import InvalidParameter, RateLimited
from .keyset import Page, parse_limit
from .permissions import HasAccount, ScopePermission
from .renderers import JSONRenderer

PAGE_PARAMS = frozenset({"limit", "cursor"})


def enforce_rate_limit(request, account=None) -> None:
    """Spend one unit of the account's budget (or of the client IP's when unauthenticated).
    The decision is kept on the request; RateLimitHeadersMiddleware writes its headers."""
    if not settings.LEADBASE_RATE_LIMIT_ENABLED:
        return
    django_request = getattr(request, "_request", request)
    decision = getattr(django_request, "rate_decision", None)
    if decision is None:  # API-key authentication spends it itself, in its own round trip
        decision = ratelimit.hit_account(account) if account is not None else ratelimit.hit_ip(client_ip(request))
        django_request.rate_decision = decision
    if not decision.allowed:
        scope = "account" if account is not None else "client address"
        raise RateLimited(
            f"The {scope}'s budget of {decision.limit} requests per {decision.window} s is spent; "
            f"retry in {decision.retry_after} s.",
            retry_after=decision.retry_after,
        )


def data_response(request, data: Any, *, headers: dict[str, str] | None = None) -> HttpResponse | Response:
    """`Response(data, headers=headers)`, rendered at once when the negotiated renderer is our JSON one (the
    only one the API has): a plain HttpResponse with the same body, Content-Type and headers, without DRF's
    template-response machinery (rendering callbacks, renderer context, a second render pass in the
    handler), which on the hottest read measured ~80 µs of a loaded worker's time per request."""
    renderer = getattr(request, "accepted_renderer", None)
    if type(renderer) is not JSONRenderer:
        return Response(data, headers=headers)
    response = HttpResponse(renderer.render(data), content_type=renderer.media_type)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


_ALLOWED_METHODS: dict[tuple, list[str]] = {}
_DEFAULT_HEADERS: dict[tuple, dict[str, str]] = {}
_COMPONENTS: dict[tuple, tuple] = {}
_DRF_INITIAL: dict[type, bool] = {}

# The steps of DRF's `initial` that AccountScopedAPIView.initial leaves out when a view does not use them.
_SKIPPED_STEPS = ("get_format_suffix", "determine_version", "get_throttles", "check_throttles")


def _components(classes) -> tuple | list:
    """The instances of an authenticator, permission, parser, renderer or negotiator list. DRF builds them anew
    for every request; a class that declares `keeps_no_state = True` itself (not inherited: a subclass may add
    state) is built once and its instance shared by every request, which a test holds it to (nothing on the
    instance after served and refused requests). A list with any other class is built per request, as DRF does."""
    key = tuple(classes)
    found = _COMPONENTS.get(key)
    if found is None:
        if not all(cls.__dict__.get("keeps_no_state") for cls in key):
            return [cls() for cls in key]
        found = _COMPONENTS[key] = tuple(cls() for cls in key)
    return found


def _takes_drf_initial(cls: type) -> bool:
    """Whether a view class overrides one of the steps the short `initial` leaves out (then it gets DRF's)."""
    found = _DRF_INITIAL.get(cls)
    if found is None:
        found = _DRF_INITIAL[cls] = any(getattr(cls, name) is not getattr(APIView, name) for name in _SKIPPED_STEPS)
    return found


class AccountScopedAPIView(APIView):
    """Every API view derives from this; `self.account` is the only account a view may touch.

    DRF's request cycle, with what the API never uses left out of the common case: its stateless components are
    built once (`_components`), `initial` skips format suffixes, versioning and throttles when the view uses
    none (the request budget is our own limiter), and authentication runs DRF's loop without its lazy-property
    detour. On the busiest endpoint, `GET /leads/{id}`, DRF's layers cost more CPU than the lead's read
    (docs/performance.md); a view with throttles or versioning, or overriding those steps, takes DRF's own path."""

    permission_classes = [HasAccount, ScopePermission]
    required_scopes: dict[str, str] = {}

    def get_authenticators(self):
        return _components(self.authentication_classes)

    def get_permissions(self):
        return _components(self.permission_classes)

    def get_parsers(self):
        return _components(self.parser_classes)

    def get_renderers(self):
        return _components(self.renderer_classes)

    def get_content_negotiator(self):
        return _components((self.content_negotiation_class,))[0]

    def initial(self, request, *args, **kwargs):
        if (
            self.throttle_classes
            or self.versioning_class is not None
            or self.settings.FORMAT_SUFFIX_KWARG in kwargs
            or _takes_drf_initial(type(self))
        ):
            return super().initial(request, *args, **kwargs)
        self.format_kwarg = None
        request.accepted_renderer, request.accepted_media_type = self.perform_content_negotiation(request)
        request.version, request.versioning_scheme = None, None
        self.perform_authentication(request)
        self.check_permissions(request)
        return None

    def perform_authentication(self, request) -> None:
        """Authenticate (DRF's `Request._authenticate`, called directly; not again if the request already is),
        then spend the budget: the account's, or the client IP's when the request carries no valid credential
        (failed authentication never spends an account's budget; the spend is made once per request)."""
        if not hasattr(request, "_user"):  # as DRF's lazy `request.user`
            try:
                for authenticator in request.authenticators:
                    user_auth = authenticator.authenticate(request)
                    if user_auth is not None:
                        request._authenticator = authenticator
                        request.user, request.auth = user_auth
                        break
                else:
                    request._not_authenticated()
            except APIException:
                request._not_authenticated()
                enforce_rate_limit(request)
                raise
            except AttributeError as exc:  # as DRF's `request.user`: not mistaken for a missing attribute
                raise WrappedAttributeError(str(exc)) from exc
        enforce_rate_limit(request, getattr(request.auth, "account", None))

    @property
    def default_response_headers(self) -> dict[str, str]:
        # DRF's `Allow` (and `Vary` with several renderers), worked out once per class and method list.
        key = (type(self), tuple(self.http_method_names), len(self.renderer_classes))
        headers = _DEFAULT_HEADERS.get(key)
        if headers is None:
            headers = _DEFAULT_HEADERS[key] = super().default_response_headers
        return dict(headers)  # finalize_response pops from it

    @property
    def allowed_methods(self) -> list[str]:
        # DRF answers `Allow` on every response and works it out each time with a getattr per HTTP
        # method; a view class's methods never change, so once per class (and method list) is enough.
        # Worked out from the class, not the instance: Django's `View.setup` gives a served instance a
        # `head` (when it has a `get`) that an instance built without it (the schema generator's) lacks.
        cls = type(self)
        key = (cls, tuple(self.http_method_names))
        methods = _ALLOWED_METHODS.get(key)
        if methods is None:
            methods = _ALLOWED_METHODS[key] = [
                method.upper()
                for method in self.http_method_names
                if hasattr(cls, method) or (method == "head" and hasattr(cls, "get"))
            ]
        return list(methods)

    @property
    def actor(self) -> Actor:
        return self.request.auth

    @property
    def account(self):
        return self.request.auth.account


@dataclass(frozen=True)
class ListParams:
    """A list request's page size and cursor (None for the first page)."""

    limit: int
    cursor: str | None


def list_params(
    request,
    *,
    allowed: Collection[str] = PAGE_PARAMS,
    default_limit: int | None = None,
    max_limit: int | None = None,
) -> ListParams:
    """Refuse query parameters outside `allowed` (400 invalid_parameter), then parse `limit` (default and
    maximum from settings unless given) and `cursor`. Lists with filters validate those themselves."""
    params = request.query_params
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise InvalidParameter(f"Unknown parameter(s): {', '.join(unknown)}.")
    limit = parse_limit(
        params.get("limit"),
        default=settings.LEADBASE_LIST_DEFAULT_LIMIT if default_limit is None else default_limit,
        maximum=settings.LEADBASE_LIST_MAX_LIMIT if max_limit is None else max_limit,
    )
    return ListParams(limit=limit, cursor=params.get("cursor") or None)


def next_link(request, cursor: str) -> str:
    """`<this URL with cursor=...>; rel="next"`: every parameter kept, repeated ones (`tag=a&tag=b`) too."""
    query = request.query_params.copy()
    query["cursor"] = cursor
    return f'<{request.build_absolute_uri(request.path)}?{query.urlencode()}>; rel="next"'


def page_response(
    request,
    page: Page,
    *,
    render: Callable[[Any], Any] | type[BaseSerializer],
    extra: dict[str, Any] | None = None,
) -> Response:
    """One page as every list answers: `{"results", "next_cursor", "has_more", **extra}`, and a
    `Link: <...>; rel="next"` header when there is a next page. `render` turns one item into its JSON
    (a function, or a serializer class applied with many=True)."""
    if isinstance(render, type) and issubclass(render, BaseSerializer):
        results = render(page.items, many=True).data
    else:
        results = [render(item) for item in page.items]
    body = {"results": results, "next_cursor": page.next_cursor, "has_more": page.has_more, **(extra or {})}
    headers = {"Link": next_link(request, page.next_cursor)} if page.has_more and page.next_cursor else {}
    return Response(body, headers=headers)
