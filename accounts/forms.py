"""Forms of the people-facing pages: login and the OAuth consent screen."""

from __future__ import annotations

from django import forms
from django.contrib.auth.forms import AuthenticationForm, UsernameField
from oauth2_provider.forms import AllowForm
from oauth2_provider.models import get_application_model

from .models import Membership, User
from .scopes import ROLE_SCOPES, account_scope, split_scopes


class LoginForm(AuthenticationForm):
    """Django's login form; the username is the email address."""

    username = UsernameField(label="Email", widget=forms.EmailInput(attrs={"autofocus": True, "autocomplete": "email"}))


class ConsentForm(AllowForm):
    """DOT's allow/deny form plus the account the token will act in.

    On Allow, the chosen account's role must cover every requested scope (a `member` cannot grant
    `admin`); the account is then recorded as the `account:<id>` scope of the grant.
    """

    account = forms.TypedChoiceField(coerce=int, required=False, label="Act in account")

    def __init__(self, *args, user: User, **kwargs):
        super().__init__(*args, **kwargs)
        memberships = Membership.objects.filter(user=user).select_related("account").order_by("account__name", "id")
        self.memberships = {m.account_id: m for m in memberships}
        field = self.fields["account"]
        field.choices = [(m.account_id, f"{m.account.name} ({m.get_role_display()})") for m in memberships]
        if len(self.memberships) == 1:
            field.widget = forms.HiddenInput()
            field.initial = next(iter(self.memberships))

    def requested_scopes(self) -> list[str]:
        """The scopes the client asked for (never an account scope: the client cannot choose one)."""
        raw = self.data.get("scope", "") if self.is_bound else self.initial.get("scope", "")
        return split_scopes(raw or "")[0]

    def clean(self):
        data = super().clean()
        if not data.get("allow"):
            return data  # Deny needs no account
        if not get_application_model().objects.filter(client_id=data.get("client_id", "")).exists():
            raise forms.ValidationError("This application no longer exists.")
        membership = self.memberships.get(data.get("account"))
        if membership is None:
            self.add_error("account", "Choose the account the application will act in.")
            return data
        requested = split_scopes(data.get("scope", ""))[0]
        beyond = sorted(set(requested) - ROLE_SCOPES[membership.role])
        if beyond:
            self.add_error(
                "account",
                f"Your role in {membership.account.name} is {membership.get_role_display().lower()}; "
                f"it cannot grant {', '.join(beyond)}. Choose another account, or deny.",
            )
            return data
        data["scope"] = " ".join([*requested, account_scope(membership.account_id)])
        return data


class RevokeAuthorizationForm(forms.Form):
    """The authorized-apps page's Revoke button: one app in one account."""

    app_id = forms.IntegerField(min_value=1)
    account_id = forms.IntegerField(min_value=1)
