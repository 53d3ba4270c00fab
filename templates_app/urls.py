"""Routes of the templates app, included under `/api/notification/v1/`."""

from django.urls import path

from templates_app.api import views
from templates_app.automation import api as automation_api
from templates_app.digests import api as digests_api

T = "platforms/<slug:platform_key>/templates/"

urlpatterns = [
    path(T, views.TemplateListView.as_view(), name="templates-list"),
    path(
        "platforms/<slug:platform_key>/notification-channels/",
        views.ChannelListView.as_view(),
        name="templates-channels",
    ),
    path("platforms/<slug:platform_key>/spas/", views.SpaListView.as_view(), name="templates-spas"),
    path(T + "<str:notification_type>/", views.TemplateDetailView.as_view(), name="templates-detail"),
    path(T + "<str:notification_type>/toggle/", views.TemplateToggleView.as_view(), name="templates-toggle"),
    path(T + "<str:notification_type>/reset/", views.TemplateResetView.as_view(), name="templates-reset"),
    path(T + "<str:notification_type>/test/", views.TemplateTestView.as_view(), name="templates-test"),
    path(T + "<str:notification_type>/preview/", views.TemplatePreviewView.as_view(), name="templates-preview"),
    path("orgs/<slug:org>/events/", views.EventView.as_view(), name="templates-events"),
    path(
        "orgs/<slug:org>/users/<str:user_id>/preferences/",
        views.PreferencesView.as_view(),
        name="templates-preferences",
    ),
    path("orgs/<slug:org>/mentors/", automation_api.MentorListView.as_view(), name="templates-mentors"),
    path(
        "orgs/<slug:org>/mentors/<str:unique_id>/", automation_api.MentorDetailView.as_view(), name="templates-mentor"
    ),
    path("orgs/<slug:org>/learner-activity/", automation_api.LearnerActivityView.as_view(), name="templates-activity"),
    path("orgs/<slug:org>/digests/", digests_api.DigestBucketListView.as_view(), name="templates-digests"),
    path("unsubscribe/<str:token>/", views.UnsubscribeView.as_view(), name="templates-unsubscribe"),
]
