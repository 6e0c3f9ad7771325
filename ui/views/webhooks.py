"""Webhooks pages (admins and owners): subscriptions, their secret (shown once, at creation and
rotation), test ping, and the delivery log with redeliver; the API's webhooks/services.py functions."""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import redirect, render
from django.views import View

from accounts.scopes import ADMIN
from core.errors import ApplicationError
from webhooks import services
from webhooks.api.serializers import RotateSecretInputSerializer, WebhookInputSerializer, WebhookPatchSerializer
from webhooks.models import WebhookSubscription

from ..context import UiMixin
from ..forms import RotateSecretForm, WebhookForm
from .common import secret_page, validated

# The API's delivery log shows the newest 50 by default (GET /webhooks/{id}/deliveries).
DELIVERY_LOG_SIZE = 50


class WebhookListView(UiMixin, View):
    """List and create (POST /api/v1/webhooks): the signing secret is shown on the answer, once."""

    required_scopes = {"*": ADMIN}

    def _page(self, request, form):
        # The same rows as GET /api/v1/webhooks lists.
        webhooks = WebhookSubscription.objects.for_account(self.account)
        return render(request, "ui/webhooks/list.html", {"webhooks": webhooks, "form": form})

    def get(self, request):
        return self._page(request, WebhookForm())

    def post(self, request):
        form = WebhookForm(request.POST)
        if form.is_valid():
            try:
                data = validated(WebhookInputSerializer, form.to_data(only_changed=False))
                sub = services.subscription_create(account=self.account, actor=self.actor, data=data)
            except ApplicationError as exc:  # an unsafe (SSRF) URL lands on the URL field
                form.add_service_errors(exc.detail, exc.errors)
            else:
                messages.success(request, f"Webhook to {sub.url} created. Copy its secret now: it is not shown again.")
                return secret_page(request, "ui/webhooks/secret.html", {"webhook": sub, "rotated": False})
        return self._page(request, form)


def _initial(sub: WebhookSubscription) -> dict:
    return {"url": sub.url, "description": sub.description, "event_types": sub.event_types, "active": sub.active}


def _detail_page(request, sub: WebhookSubscription, form, rotate_form=None):
    # The same query as GET /api/v1/webhooks/{id}/deliveries: one for deliveries, one for their attempts.
    deliveries = sub.deliveries.select_related("event").prefetch_related("attempt_log").order_by("-created_at")
    context = {
        "webhook": sub,
        "form": form,
        "rotate_form": rotate_form or RotateSecretForm(),
        "deliveries": list(deliveries[:DELIVERY_LOG_SIZE]),
    }
    return render(request, "ui/webhooks/detail.html", context)


class WebhookDetailView(UiMixin, View):
    """Edit URL, event types, description and active flag; the delivery log with every attempt."""

    required_scopes = {"*": ADMIN}

    def get(self, request, webhook_id):
        sub = services.subscription_get(account=self.account, subscription_id=webhook_id)
        return _detail_page(request, sub, WebhookForm(initial=_initial(sub)))

    def post(self, request, webhook_id):
        sub = services.subscription_get(account=self.account, subscription_id=webhook_id)
        form = WebhookForm(request.POST, initial=_initial(sub))
        if form.is_valid():
            data = form.to_data(only_changed=True)
            if not data:
                messages.success(request, "Nothing changed.")
                return redirect("ui:webhook-detail", webhook_id=sub.pk)
            try:
                data = validated(WebhookPatchSerializer, data)
                services.subscription_update(account=self.account, actor=self.actor, subscription_id=sub.pk, data=data)
            except ApplicationError as exc:
                form.add_service_errors(exc.detail, exc.errors)
            else:
                messages.success(request, "Webhook saved.")
                return redirect("ui:webhook-detail", webhook_id=sub.pk)
        return _detail_page(request, sub, form)


class WebhookDeleteView(UiMixin, View):
    """GET asks for confirmation; POST deletes the subscription and its delivery log."""

    required_scopes = {"*": ADMIN}

    def get(self, request, webhook_id):
        sub = services.subscription_get(account=self.account, subscription_id=webhook_id)
        return render(request, "ui/webhooks/delete_confirm.html", {"webhook": sub})

    def post(self, request, webhook_id):
        sub = services.subscription_get(account=self.account, subscription_id=webhook_id)
        services.subscription_delete(account=self.account, actor=self.actor, subscription_id=sub.pk)
        messages.success(request, f"Webhook to {sub.url} deleted.")
        return redirect("ui:webhook-list")


class WebhookRotateSecretView(UiMixin, View):
    """A new secret, shown once; the previous one keeps signing for the overlap."""

    required_scopes = {"*": ADMIN}

    def post(self, request, webhook_id):
        sub = services.subscription_get(account=self.account, subscription_id=webhook_id)
        form = RotateSecretForm(request.POST)
        form.is_valid()
        raw = (form.cleaned_data.get("overlap_hours") or "").strip()
        try:
            data = validated(RotateSecretInputSerializer, {"overlap_hours": raw} if raw else {})
            sub = services.subscription_rotate_secret(
                account=self.account, actor=self.actor, subscription_id=sub.pk, **data
            )
        except ApplicationError as exc:
            form.add_service_errors(exc.detail, exc.errors)
            return _detail_page(request, sub, WebhookForm(initial=_initial(sub)), rotate_form=form)
        messages.success(request, "New secret made. Copy it now: it is not shown again.")
        return secret_page(request, "ui/webhooks/secret.html", {"webhook": sub, "rotated": True})


class WebhookTestView(UiMixin, View):
    """Send a webhook.test event now and say how the receiver answered."""

    required_scopes = {"*": ADMIN}

    def post(self, request, webhook_id):
        delivery = services.subscription_test(account=self.account, actor=self.actor, subscription_id=webhook_id)
        _report_attempt(request, delivery, "Test ping")
        return redirect("ui:webhook-detail", webhook_id=delivery.subscription_id)


class WebhookRedeliverView(UiMixin, View):
    """Send one delivery again now; the attempt joins its log."""

    required_scopes = {"*": ADMIN}

    def post(self, request, webhook_id, delivery_id):
        delivery = services.delivery_redeliver(
            account=self.account, actor=self.actor, subscription_id=webhook_id, delivery_id=delivery_id
        )
        _report_attempt(request, delivery, f"Redelivery of event {delivery.event_id}")
        return redirect("ui:webhook-detail", webhook_id=delivery.subscription_id)


def _report_attempt(request, delivery, what: str) -> None:
    code = delivery.last_status_code
    if delivery.status == "succeeded":
        messages.success(request, f"{what}: delivered (HTTP {code}).")
        return
    attempt = delivery.attempt_log.order_by("-attempted_at", "-id").first()
    reason = f"HTTP {code}" if code else (attempt.error if attempt and attempt.error else "no answer")
    later = "it is retried with backoff" if delivery.status == "pending" else "its retry window is over"
    messages.error(request, f"{what}: not delivered ({reason}); {later}.")
