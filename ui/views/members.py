"""Members page: everyone sees who is in the account and their roles; admins and owners add a member
by email, change roles and remove members with the services behind /api/v1/members, so the API's
rules hold here too (only an owner makes or changes an owner, the last owner stays)."""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import redirect, render
from django.views import View

from accounts import selectors as account_selectors
from accounts import services as account_services
from accounts.api.serializers import MembershipCreateSerializer, MembershipUpdateSerializer
from accounts.models import Role
from accounts.scopes import ADMIN, LEADS_READ
from core.errors import ApplicationError

from ..context import UiMixin
from ..forms import MemberAddForm
from .common import validated


class MemberListView(UiMixin, View):
    """GET for every member (like GET /api/v1/members); POST adds a member (admin)."""

    required_scopes = {"GET": LEADS_READ, "POST": ADMIN}

    def _page(self, request, form):
        context = {
            "members": account_selectors.member_list(account=self.account),
            "form": form,
            "roles": Role.choices,
            "can_manage": self.actor.has_scope(ADMIN),
        }
        return render(request, "ui/members/list.html", context)

    def get(self, request):
        return self._page(request, MemberAddForm())

    def post(self, request):
        form = MemberAddForm(request.POST)
        if form.is_valid():
            try:
                data = validated(MembershipCreateSerializer, form.cleaned_data)
                membership = account_services.member_add(account=self.account, actor=self.actor, **data)
            except ApplicationError as exc:  # already a member, or an admin making an owner
                form.add_service_errors(exc.detail, exc.errors)
            else:
                messages.success(request, f"{membership.user.email} added as {membership.get_role_display().lower()}.")
                return redirect("ui:member-list")
        return self._page(request, form)


class MemberRoleView(UiMixin, View):
    """Change one member's role (PATCH /api/v1/members/{id})."""

    required_scopes = {"*": ADMIN}

    def post(self, request, membership_id):
        membership = account_selectors.member_get(account=self.account, membership_id=membership_id)
        try:
            data = validated(MembershipUpdateSerializer, {"role": request.POST.get("role", "")})
            membership = account_services.member_update(
                account=self.account, membership_id=membership.pk, role=data["role"], actor=self.actor
            )
        except ApplicationError as exc:  # the last owner, or an admin touching an owner
            messages.error(request, f"{membership.user.email}: {exc.detail}")
        else:
            messages.success(request, f"{membership.user.email} is now {membership.get_role_display().lower()}.")
        return redirect("ui:member-list")


class MemberRemoveView(UiMixin, View):
    """Remove a member (DELETE /api/v1/members/{id}); GET asks for confirmation."""

    required_scopes = {"*": ADMIN}

    def get(self, request, membership_id):
        membership = account_selectors.member_get(account=self.account, membership_id=membership_id)
        return render(request, "ui/members/remove_confirm.html", {"membership": membership})

    def post(self, request, membership_id):
        membership = account_selectors.member_get(account=self.account, membership_id=membership_id)
        try:
            account_services.member_remove(account=self.account, membership_id=membership.pk, actor=self.actor)
        except ApplicationError as exc:
            messages.error(request, f"{membership.user.email}: {exc.detail}")
        else:
            messages.success(request, f"{membership.user.email} removed from {self.account.name}.")
        return redirect("ui:member-list")
