"""The base API view: authentication, scope checks and the account every query is scoped to."""

from __future__ import annotations

from rest_framework.views import APIView

from accounts.actor import Actor

from .permissions import HasAccount, ScopePermission


class AccountScopedAPIView(APIView):
    """Every API view derives from this; `self.account` is the only account a view may touch."""

    permission_classes = [HasAccount, ScopePermission]
    required_scopes: dict[str, str] = {}

    @property
    def actor(self) -> Actor:
        return self.request.auth

    @property
    def account(self):
        return self.request.auth.account
