from django.urls import re_path

from . import views

urlpatterns = [
    re_path(r"^webhooks/?$", views.WebhookListView.as_view(), name="webhook-list"),
    re_path(r"^webhooks/(?P<webhook_id>[0-9]+)/?$", views.WebhookDetailView.as_view(), name="webhook-detail"),
    re_path(r"^webhooks/(?P<webhook_id>[0-9]+)/rotate-secret/?$", views.WebhookRotateSecretView.as_view()),
    re_path(r"^webhooks/(?P<webhook_id>[0-9]+)/test/?$", views.WebhookTestView.as_view(), name="webhook-test"),
    re_path(r"^webhooks/(?P<webhook_id>[0-9]+)/deliveries/?$", views.DeliveryListView.as_view()),
    re_path(
        r"^webhooks/(?P<webhook_id>[0-9]+)/deliveries/(?P<delivery_id>[^/]+)/redeliver/?$",
        views.RedeliverView.as_view(),
    ),
    re_path(r"^events/?$", views.EventListView.as_view(), name="event-list"),
]
