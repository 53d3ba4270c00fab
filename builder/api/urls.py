from django.urls import path

from builder.api import views

PREFIX = "orgs/<str:platform_key>/notification-builder/"

urlpatterns = [
    path(PREFIX, views.BuildListView.as_view(), name="builder-list"),
    path(PREFIX + "context/", views.ContextView.as_view(), name="builder-context"),
    path(PREFIX + "validate_source/", views.ValidateSourceView.as_view(), name="builder-validate-source"),
    path(PREFIX + "preview/", views.PreviewView.as_view(), name="builder-preview"),
    path(PREFIX + "send/", views.SendView.as_view(), name="builder-send"),
    path(PREFIX + "<uuid:build_id>/", views.BuildDetailView.as_view(), name="builder-detail"),
    path(PREFIX + "<uuid:build_id>/recipients/", views.RecipientsView.as_view(), name="builder-recipients"),
    path(PREFIX + "<uuid:build_id>/cancel/", views.CancelView.as_view(), name="builder-cancel"),
]
