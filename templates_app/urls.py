"""Routes of the templates app, included under `/api/notification/v1/`."""

from django.urls import path

from templates_app.api import event_views, frequency_cap_views, preference_views, template_views
from templates_app.automation import api as automation_api
from templates_app.digests import api as digests_api

T = "platforms/<slug:platform_key>/templates/"

urlpatterns = [
    path(T, template_views.TemplateListView.as_view(), name="templates-list"),
    path(
        "platforms/<slug:platform_key>/notification-channels/",
        template_views.ChannelListView.as_view(),
        name="templates-channels",
    ),
    path("platforms/<slug:platform_key>/spas/", template_views.SpaListView.as_view(), name="templates-spas"),
    path(T + "<str:notification_type>/", template_views.TemplateDetailView.as_view(), name="templates-detail"),
    path(T + "<str:notification_type>/toggle/", template_views.TemplateToggleView.as_view(), name="templates-toggle"),
    path(T + "<str:notification_type>/reset/", template_views.TemplateResetView.as_view(), name="templates-reset"),
    path(T + "<str:notification_type>/test/", template_views.TemplateTestView.as_view(), name="templates-test"),
    path(
        T + "<str:notification_type>/preview/", template_views.TemplatePreviewView.as_view(), name="templates-preview"
    ),
    path("orgs/<slug:org>/events/", event_views.EventView.as_view(), name="templates-events"),
    path(
        "orgs/<slug:org>/users/<str:user_id>/preferences/",
        preference_views.PreferencesView.as_view(),
        name="templates-preferences",
    ),
    path("orgs/<slug:org>/mentors/", automation_api.MentorListView.as_view(), name="templates-mentors"),
    path(
        "orgs/<slug:org>/mentors/<str:unique_id>/", automation_api.MentorDetailView.as_view(), name="templates-mentor"
    ),
    path("orgs/<slug:org>/learner-activity/", automation_api.LearnerActivityView.as_view(), name="templates-activity"),
    path("orgs/<slug:org>/digests/", digests_api.DigestBucketListView.as_view(), name="templates-digests"),
    path(
        "platforms/<slug:platform_key>/config/frequency-caps/",
        frequency_cap_views.FrequencyCapListView.as_view(),
        name="templates-frequency-caps",
    ),
    path(
        "platforms/<slug:platform_key>/config/frequency-caps/<str:channel>/",
        frequency_cap_views.FrequencyCapDetailView.as_view(),
        name="templates-frequency-cap",
    ),
    path("unsubscribe/<str:token>/", preference_views.UnsubscribeView.as_view(), name="templates-unsubscribe"),
]
