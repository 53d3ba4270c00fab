"""Included at `api/notification/v1/` by config/urls.py."""

from django.urls import include, path

urlpatterns = [path("", include("builder.api.urls"))]
