"""Who is acting in the web UI: the logged-in user, the account chosen in the session, their role.

UI views build the same `Actor` an API key or OAuth token yields (via="ui", scopes from the role),
so they call services exactly like the API does, and check scopes with the API's own rule.
"""

from __future__ import annotations

from django.contrib.auth.mixins import LoginRequiredMixin
from django.http import Http404
from django.shortcuts import render

from accounts.actor import Actor
from accounts.authentication import client_ip
from accounts.models import Membership
from accounts.scopes import ROLE_SCOPES
from core import errors
from core.permissions import required_scope

SESSION_ACCOUNT_KEY = "ui_account_id"


def user_memberships(user) -> list[Membership]:
    return list(Membership.objects.filter(user=user).select_related("account").order_by("created_at", "id"))


def resolve_actor(request) -> tuple[Actor | None, list[Membership]]:
    """The actor for this request, from the account id kept in the session. The membership is looked
    up again on every request: a user removed from an account loses it at once (fails closed)."""
    memberships = user_memberships(request.user)
    if not memberships:
        return None, memberships
    chosen = request.session.get(SESSION_ACCOUNT_KEY)
    membership = next((m for m in memberships if m.account_id == chosen), memberships[0])
    if chosen != membership.account_id:
        request.session[SESSION_ACCOUNT_KEY] = membership.account_id
    actor = Actor(
        user=request.user,
        account=membership.account,
        role=membership.role,
        scopes=ROLE_SCOPES.get(membership.role, frozenset()),
        ip=client_ip(request),
        via="ui",
    )
    return actor, memberships


def forbidden(request, message: str):
    return render(request, "ui/forbidden.html", {"message": message}, status=403)


class UiMixin(LoginRequiredMixin):
    """Login required; resolves `self.actor` / `self.account`; checks the operation's scope as the API
    does (`required_scopes` by method, read for GET and write otherwise); another account's object
    (a service's NotFound) is a 404 page."""

    required_scopes: dict[str, str] = {}

    def dispatch(self, request, *args, **kwargs):
        if not request.user.is_authenticated:
            return self.handle_no_permission()
        actor, memberships = resolve_actor(request)
        if actor is None:
            return forbidden(request, "You are not a member of any account.")
        self.actor, self.account = actor, actor.account
        request.ui_actor, request.ui_memberships = actor, memberships
        scope = required_scope(self, request.method)
        if not actor.has_scope(scope):
            return forbidden(request, f"Your role ({actor.role}) does not allow this page.")
        try:
            return super().dispatch(request, *args, **kwargs)
        except errors.NotFound as exc:
            raise Http404(exc.detail) from exc
