"""A URLconf with one probe view per surface, to test the shared error machinery."""

from django.urls import include, path
from rest_framework import serializers
from rest_framework.exceptions import Throttled
from rest_framework.response import Response
from rest_framework.views import APIView

from config.urls import urlpatterns as project_urls
from notifications.api.permissions import requires


class ProbeSerializer(serializers.Serializer):
    title = serializers.CharField()


class Probe(APIView):
    def get(self, request):
        if request.query_params.get("throttle"):
            raise Throttled(wait=7)
        if request.query_params.get("crash"):
            raise RuntimeError("boom")
        return Response({"ok": True})

    def post(self, request):
        ProbeSerializer(data=request.data).is_valid(raise_exception=True)
        return Response({"ok": True})


class GuardedProbe(APIView):
    permission_classes = [requires("notifications.bulk_sms")]

    def get(self, request):
        return Response({"ok": True})


probe = [path("probe", Probe.as_view()), path("guarded", GuardedProbe.as_view())]
urlpatterns = [
    path("alerts/", include(probe)),
    path("api/v1/", include(probe)),
    path("api/notification/v1/", include(probe)),
    *project_urls,
]
handler404 = "notifications.api.errors.handler404"
handler500 = "notifications.api.errors.handler500"
