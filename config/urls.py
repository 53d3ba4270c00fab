import re

from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from config.files import media_serve
from notifications.api.auth import TokenView, healthz
from notifications.api.email_receipts import EmailTrackingWebhookView
from notifications.metrics import metrics_view

# The admin's "View site" leads learners (and everyone else) to their inbox.
admin.site.site_url = "/inbox/"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("inbox/", include("notifications.inbox_urls")),
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics_view, name="metrics"),
    path("api/auth/token/", TokenView.as_view(), name="auth-token"),
    # Email providers post delivery receipts here (README: "Delivery receipts").
    path("webhooks/email/<str:provider>/tracking/", EmailTrackingWebhookView.as_view(), name="email-receipts"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("", include("alerts.urls")),
    path("api/v1/", include("notifications.api.v1_urls")),
    path("api/notification/v1/", include("notifications.api.ibl_urls")),
    path("api/notification/v1/", include("templates_app.urls")),
    path("api/notification/v1/", include("builder.urls")),
    path("api/notification/v1/", include("webhooks.urls")),
]

if settings.SERVE_MEDIA and settings.MEDIA_URL.startswith("/"):
    # Uploads on the local disk (the embedded setup); a bucket serves its own URLs.
    prefix = re.escape(settings.MEDIA_URL.strip("/"))
    urlpatterns.append(re_path(rf"^{prefix}/(?P<path>.+)$", media_serve, name="media"))

handler400 = "notifications.api.errors.handler400"
handler404 = "notifications.api.errors.handler404"
handler500 = "notifications.api.errors.handler500"
