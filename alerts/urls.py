"""Paths of the `/alerts` surface (included at the root: no trailing slashes)."""

from django.urls import path

import notifications.converters  # noqa: F401  (registers <id:...>)
from alerts.api import views

urlpatterns = [
    path("alerts", views.AlertListCreateView.as_view(), name="alerts"),
    path("alerts/read-all", views.AlertReadAllView.as_view(), name="alerts-read-all"),
    path("alerts/<id:id>", views.AlertDetailView.as_view(), name="alert-detail"),
    path("alerts/<id:id>/read", views.AlertReadView.as_view(), name="alert-read"),
]
