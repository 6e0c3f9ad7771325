"""People-facing pages (login, logout, OAuth consent, authorised apps) and the OAuth endpoints.

The OAuth endpoints are django-oauth-toolkit's views with our policy: the consent screen picks the
account a token acts in, the token endpoint knows no device grant, and introspection answers a
confidential client about its own tokens only.
"""

from __future__ import annotations

import calendar
from itertools import groupby

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.mixins import LoginRequiredMixin
from django.http import JsonResponse
from django.shortcuts import redirect
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.generic import TemplateView
from django_ratelimit.decorators import ratelimit
from oauth2_provider import views as dot_views
from oauth2_provider.models import get_access_token_model, get_application_model
from oauth2_provider.views.mixins import OAuthLibMixin
from oauthlib.common import Request as OAuthlibRequest

from core.errors import NotFound

from . import selectors, services
from .forms import ConsentForm, LoginForm, RevokeAuthorizationForm
from .models import Membership
from .oauth import oauth_token_authenticate
from .scopes import ALL_SCOPES, ROLE_SCOPES, account_scope


def _oauth_error(error: str, description: str, status: int = 400, **headers: str) -> JsonResponse:
    response = JsonResponse({"error": error, "error_description": description}, status=status)
    response["Cache-Control"] = "no-store"
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


# --- Login ------------------------------------------------------------------------------------


@method_decorator(ratelimit(key="ip", rate=settings.LEADBASE_LOGIN_RATE_PER_IP, method="POST", block=True), "dispatch")
@method_decorator(
    ratelimit(key="post:username", rate=settings.LEADBASE_LOGIN_RATE_PER_USERNAME, method="POST", block=True),
    "dispatch",
)
class LoginView(auth_views.LoginView):
    """Email and password; limited per client IP and per username like the admin login (§4.7)."""

    template_name = "accounts/login.html"
    authentication_form = LoginForm
    redirect_authenticated_user = True


class LogoutView(auth_views.LogoutView):
    """POST only (Django's LogoutView refuses GET)."""

    template_name = "accounts/logged_out.html"


# --- OAuth consent ----------------------------------------------------------------------------


class AuthorizeView(dot_views.AuthorizationView):
    """The consent screen: app name, the scopes in plain words, the account to act in; Allow or Deny.

    Always shown (never skipped, `approval_prompt=auto` ignored), since the account is chosen here.
    A fatal error (unknown client, unregistered redirect URI) is shown on this page and never
    redirected; any other error redirects to the client's registered redirect URI.
    """

    template_name = "oauth/authorize.html"
    form_class = ConsentForm

    def get(self, request, *args, **kwargs):
        if "approval_prompt" in request.GET:
            request.GET = request.GET.copy()
            request.GET.pop("approval_prompt")
        return super().get(request, *args, **kwargs)

    def get_form_kwargs(self):
        return {**super().get_form_kwargs(), "user": self.request.user}

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        form = context.get("form")
        application = context.get("application")
        if application is None and form is not None and form.is_bound:
            # A re-rendered POST (the form has an error): GET put the app in the context, rebuild it.
            application = get_application_model().objects.filter(client_id=form.data.get("client_id", "")).first()
            context["application"] = application
        requested = form.requested_scopes() if form is not None else []
        context["scope_items"] = [{"name": s, "description": ALL_SCOPES.get(s, s)} for s in requested]
        registration = getattr(application, "registration", None) if application is not None else None
        context["registered_by"] = registration.account if registration is not None else None
        memberships = list(form.memberships.values()) if form is not None else []
        context["memberships"] = memberships
        # Told up front: where the user's role cannot grant everything asked for (a member and `admin`).
        context["role_limits"] = [
            {"account": m.account, "role": m.get_role_display().lower(), "beyond": beyond}
            for m in memberships
            if (beyond := sorted(set(requested) - ROLE_SCOPES[m.role]))
        ]
        return context


# --- OAuth endpoints --------------------------------------------------------------------------


class TokenView(dot_views.TokenView):
    """The token endpoint: authorization_code and refresh_token grants only."""

    def post(self, request, *args, **kwargs):
        grant_type = request.POST.get("grant_type")
        if not grant_type:  # oauthlib would default to authorization_code
            return _oauth_error("invalid_request", "grant_type is required.")
        if grant_type not in ("authorization_code", "refresh_token"):
            return _oauth_error("unsupported_grant_type", "Use authorization_code or refresh_token.")
        return self.authorization_flow_token_response(request)


@method_decorator(csrf_exempt, name="dispatch")
@method_decorator(never_cache, name="dispatch")
class IntrospectView(OAuthLibMixin, View):
    """RFC 7662 token introspection, for a confidential client about the tokens issued to it.

    DOT's own view would tell any authenticated client about any token (user, scopes); here another
    client's token, like an unknown, expired or revoked one, or one whose user has left its account,
    is `{"active": false}`. POST only, so tokens never sit in URLs and access logs.
    """

    http_method_names = ["post"]

    def post(self, request, *args, **kwargs):
        core = self.get_oauthlib_core()
        uri, http_method, body, headers = core._extract_params(request)
        oauth_request = OAuthlibRequest(uri, http_method, body, headers)
        validator = core.server.request_validator
        client = oauth_request.client if validator.authenticate_client(oauth_request) else None
        if client is None or client.client_type != client.CLIENT_CONFIDENTIAL:
            return _oauth_error(
                "invalid_client", "Authenticate as a confidential client.", 401, WWW_Authenticate='Basic realm="oauth"'
            )
        raw = request.POST.get("token", "")
        if not raw:
            return _oauth_error("invalid_request", "The token parameter is missing.")
        actor = oauth_token_authenticate(raw_token=raw, ip=None)
        token_id = actor.extra["oauth_token_id"] if actor is not None else None
        token = get_access_token_model().objects.filter(pk=token_id, application=client).first() if token_id else None
        if token is None:
            return JsonResponse({"active": False}, headers={"Cache-Control": "no-store"})
        return JsonResponse(
            {
                "active": True,
                "scope": " ".join([*sorted(actor.scopes), account_scope(actor.account.pk)]),
                "client_id": client.client_id,
                "username": actor.user.email,
                "sub": str(actor.user.pk),
                "token_type": "Bearer",
                "exp": calendar.timegm(token.expires.utctimetuple()),
                "iat": calendar.timegm(token.created.utctimetuple()),
                "account": actor.account.slug,
            },
            headers={"Cache-Control": "no-store"},
        )


# --- Authorised apps --------------------------------------------------------------------------


class AuthorizedAppsView(LoginRequiredMixin, TemplateView):
    """The apps the user has authorised, grouped by app, with scopes and account; Revoke per account."""

    template_name = "oauth/authorized_apps.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        authorizations = selectors.oauth_authorization_list(user=self.request.user)
        context["apps"] = [
            {"application": app, "authorizations": list(group)}
            for app, group in groupby(authorizations, key=lambda a: a.application)
        ]
        context["scope_descriptions"] = ALL_SCOPES
        return context

    def post(self, request, *args, **kwargs):
        form = RevokeAuthorizationForm(request.POST)
        membership = (
            Membership.objects.select_related("account")
            .filter(user=request.user, account_id=form.cleaned_data["account_id"])
            .first()
            if form.is_valid()
            else None
        )
        try:
            if membership is None:
                raise NotFound("No such authorized app.")
            services.oauth_authorization_revoke(
                user=request.user, app_id=form.cleaned_data["app_id"], account=membership.account
            )
        except NotFound:
            messages.error(request, "Nothing to revoke: that app holds no access in that account.")
        else:
            messages.success(request, f"Access revoked in {membership.account.name}.")
        return redirect("oauth-authorized-apps")
