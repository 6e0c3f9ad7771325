from django.urls import re_path

from .views import JobDetailView, JobDownloadView

urlpatterns = [
    re_path(r"^jobs/(?P<job_id>[^/]+)/download/?$", JobDownloadView.as_view(), name="job-download"),
    re_path(r"^jobs/(?P<job_id>[^/]+)/?$", JobDetailView.as_view(), name="job-detail"),
]
