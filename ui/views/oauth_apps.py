"""OAuth apps page (admins and owners): the account's registered apps, register (a confidential
client's secret is shown once), delete; the services behind /api/v1/oauth-apps."""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import redirect, render
from django.views import View

from accounts import selectors as account_selectors
from accounts import services as account_services
from accounts.api.serializers import OAuthAppCreateSerializer
from accounts.scopes import ADMIN
from core.errors import ApplicationError

from ..context import UiMixin
from ..forms import OAuthAppForm
from .common import secret_page, validated


class OAuthAppListView(UiMixin, View):
    """List and register; the client secret (confidential clients) is on the answer only."""

    required_scopes = {"*": ADMIN}

    def _page(self, request, form):
        apps = account_selectors.oauth_app_list(account=self.account)
        return render(request, "ui/oauth_apps/list.html", {"apps": apps, "form": form})

    def get(self, request):
        return self._page(request, OAuthAppForm())

    def post(self, request):
        form = OAuthAppForm(request.POST)
        if form.is_valid():
            try:
                data = validated(OAuthAppCreateSerializer, form.to_data())
                app, secret = account_services.oauth_app_create(account=self.account, actor=self.actor, **data)
            except ApplicationError as exc:
                form.add_service_errors(exc.detail, exc.errors)
            else:
                note = " Copy its client secret now: it is not shown again." if secret else ""
                messages.success(request, f"OAuth app “{app.name}” registered.{note}")
                return secret_page(request, "ui/oauth_apps/created.html", {"app": app, "client_secret": secret})
        return self._page(request, form)


class OAuthAppDeleteView(UiMixin, View):
    """GET asks for confirmation; POST deletes the app, and with it every token issued to it."""

    required_scopes = {"*": ADMIN}

    def get(self, request, app_id):
        app = account_selectors.oauth_app_get(account=self.account, app_id=app_id)
        return render(request, "ui/oauth_apps/delete_confirm.html", {"app": app})

    def post(self, request, app_id):
        app = account_selectors.oauth_app_get(account=self.account, app_id=app_id)
        account_services.oauth_app_delete(account=self.account, app_id=app.pk, actor=self.actor)
        messages.success(request, f"OAuth app “{app.name}” deleted; its tokens no longer work.")
        return redirect("ui:oauth-app-list")
