"""API keys page: list, create (the key is shown once), revoke."""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import redirect, render
from django.views import View

from accounts import selectors as account_selectors
from accounts import services as account_services
from accounts.api.serializers import ApiKeyCreateSerializer
from accounts.scopes import ADMIN
from core.errors import ApplicationError

from ..context import UiMixin
from ..forms import ApiKeyForm
from .common import secret_page, validated


class ApiKeyListView(UiMixin, View):
    """List and create; the full key is shown once, on the page that answers the create."""

    required_scopes = {"*": ADMIN}

    def _page(self, request, form):
        keys = account_selectors.api_key_list(account=self.account)
        return render(request, "ui/api_keys/list.html", {"keys": keys, "form": form})

    def get(self, request):
        return self._page(request, ApiKeyForm(initial={"scopes": ["leads:read"]}))

    def post(self, request):
        form = ApiKeyForm(request.POST)
        if form.is_valid():
            try:
                data = validated(ApiKeyCreateSerializer, {k: v for k, v in form.cleaned_data.items()})
                key, raw = account_services.api_key_create(
                    account=self.account, created_by=self.actor.user, actor=self.actor, **data
                )
            except ApplicationError as exc:
                form.add_service_errors(exc.detail, exc.errors)
            else:
                messages.success(request, f"API key “{key.name}” created. Copy it now: it is not shown again.")
                return secret_page(request, "ui/api_keys/created.html", {"key": key, "raw_key": raw})
        return self._page(request, form)


class ApiKeyRevokeView(UiMixin, View):
    required_scopes = {"*": ADMIN}

    def post(self, request, key_id):
        key = account_services.api_key_revoke(account=self.account, key_id=key_id, actor=self.actor)
        messages.success(request, f"API key “{key.name}” ({key.prefix}…) revoked.")
        return redirect("ui:api-key-list")
