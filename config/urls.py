from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from notifications.api.auth import TokenView, healthz

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
    path("api/auth/token/", TokenView.as_view(), name="auth-token"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("", include("alerts.urls")),
    path("api/v1/", include("notifications.api.v1_urls")),
    path("api/notification/v1/", include("notifications.api.ibl_urls")),
    path("api/notification/v1/", include("templates_app.urls")),
    path("api/notification/v1/", include("builder.urls")),
]

handler400 = "notifications.api.errors.handler400"
handler404 = "notifications.api.errors.handler404"
handler500 = "notifications.api.errors.handler500"
