"""Django admin for OAuth applications: DOT's, minus what our policy does not support.

Referenced by OAUTH2_PROVIDER["APPLICATION_ADMIN_CLASS"]; DOT registers it on our admin site.
"""

from django.contrib import admin
from oauth2_provider.admin import ApplicationAdmin


class LeadbaseApplicationAdmin(ApplicationAdmin):
    """Consent is never skipped (the user picks the account there), so `skip_authorization` is hidden;
    only the authorization code grant works whatever the grant type says (accounts/oauth_server.py)."""

    exclude = ("skip_authorization",)
    list_display = ("pk", "name", "client_id", "client_type", "authorization_grant_type", "registered_by", "created")
    list_filter = ("client_type", "authorization_grant_type")
    list_select_related = ("registration__account",)

    @admin.display(description="registered by account")
    def registered_by(self, obj) -> str:
        registration = getattr(obj, "registration", None)
        return registration.account.slug if registration is not None else "(operators)"
