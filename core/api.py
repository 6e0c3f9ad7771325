"""The base API view: authentication, scope checks and the account every query is scoped to."""

from __future__ import annotations

from django.conf import settings
from rest_framework.exceptions import APIException
from rest_framework.views import APIView

from accounts.actor import Actor
from accounts.authentication import client_ip

from . import ratelimit
from .errors import RateLimited
from .permissions import HasAccount, ScopePermission


def enforce_rate_limit(request, account=None) -> None:
    """Spend one unit of the account's budget (or of the client IP's when unauthenticated).
    The decision is kept on the request; RateLimitHeadersMiddleware writes its headers."""
    if not settings.LEADBASE_RATE_LIMIT_ENABLED:
        return
    django_request = getattr(request, "_request", request)
    if getattr(django_request, "rate_decision", None) is not None:
        return
    decision = ratelimit.hit_account(account) if account is not None else ratelimit.hit_ip(client_ip(request))
    django_request.rate_decision = decision
    if not decision.allowed:
        scope = "account" if account is not None else "client address"
        raise RateLimited(
            f"The {scope}'s budget of {decision.limit} requests per {decision.window} s is spent; "
            f"retry in {decision.retry_after} s.",
            retry_after=decision.retry_after,
        )


class AccountScopedAPIView(APIView):
    """Every API view derives from this; `self.account` is the only account a view may touch."""

    permission_classes = [HasAccount, ScopePermission]
    required_scopes: dict[str, str] = {}

    def perform_authentication(self, request) -> None:
        """Authenticate, then spend the budget: the account's, or the client IP's when the request
        carries no valid credential (failed authentication never spends an account's budget)."""
        try:
            request.user  # noqa: B018  (DRF authenticates lazily on first access)
        except APIException:
            enforce_rate_limit(request)
            raise
        enforce_rate_limit(request, getattr(request.auth, "account", None))

    @property
    def actor(self) -> Actor:
        return self.request.auth

    @property
    def account(self):
        return self.request.auth.account
