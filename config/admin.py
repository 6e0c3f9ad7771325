"""Django admin with a rate-limited login (django-ratelimit: per client IP and per username)."""

from django.conf import settings
from django.contrib import admin
from django.contrib.admin.apps import AdminConfig
from django.utils.decorators import method_decorator
from django_ratelimit.decorators import ratelimit


class LeadbaseAdminSite(admin.AdminSite):
    site_header = "Leadbase administration"
    site_title = "Leadbase admin"

    @method_decorator(ratelimit(key="ip", rate=settings.LEADBASE_LOGIN_RATE_PER_IP, method="POST", block=True))
    @method_decorator(
        ratelimit(key="post:username", rate=settings.LEADBASE_LOGIN_RATE_PER_USERNAME, method="POST", block=True)
    )
    def login(self, request, extra_context=None):
        return super().login(request, extra_context)


class LeadbaseAdminConfig(AdminConfig):
    default_site = "config.admin.LeadbaseAdminSite"
