from django.contrib import admin

from .models import Job


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ["id", "account", "kind", "status", "progress_done", "progress_total", "created_at", "finished_at"]
    list_filter = ["kind", "status"]
    search_fields = ["id", "account__slug"]
    readonly_fields = [f.name for f in Job._meta.fields]
