"""Plan and usage page: the account's plan, lead cap and lead count, and its API request budget with
what remains of it, as GET /api/v1/account and its rate-limit headers report them (read without
spending: the page is not an API request)."""

from __future__ import annotations

from django.conf import settings
from django.shortcuts import render
from django.views import View

from accounts.api.serializers import AccountSerializer
from accounts.scopes import LEADS_READ
from core import ratelimit
from leads.selectors import lead_queryset

from ..context import UiMixin


class AccountUsageView(UiMixin, View):
    """Everyone in the account may read it, as GET /api/v1/account (leads:read)."""

    required_scopes = {"GET": LEADS_READ}

    def get(self, request):
        # The API twin's own body: the same serializer and the same lead count.
        body = AccountSerializer(self.account, context={"lead_count": lead_queryset(account=self.account).count()}).data
        # A peek, not a hit: people refreshing this page must not push the account's integrations
        # towards 429. GET /api/v1/account is an API request and spends one like any other.
        decision = ratelimit.peek_account(self.account) if settings.LEADBASE_RATE_LIMIT_ENABLED else None
        lead_limit = body["lead_limit"]
        context = {
            "usage": body,
            "decision": decision,
            "window_minutes": body["rate_limit_window_seconds"] // 60,
            "lead_share": round(100 * body["lead_count"] / lead_limit) if lead_limit else None,
            "plans": settings.LEADBASE_PLANS,
        }
        return render(request, "ui/account/usage.html", context)
