"""The Celery app. Tasks run eagerly in the embedded mode (no CELERY_BROKER_URL)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("leadbase")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
