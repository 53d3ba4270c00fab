"""The mentors and learner-activity endpoints under `/api/notification/v1/orgs/<org>/`.

Proactive learner notifications read these records: mentors sign the
recommendations, learner activity is what the default provider summarises.
Both are written by the platform's own systems, so they share the events
surface's permission (`EventSender`).
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from notifications.api.errors import ApiError
from notifications.api.schema import paginated
from notifications.models import Platform
from templates_app.api.common import DRF_ERROR, FIELD_ERRORS, TAG_EVENTS, StrictSerializer, bounded_context
from templates_app.api.event_views import EventSender
from templates_app.models import ActivityKind, LearnerActivity, Mentor

# --- input and response shapes ---------------------------------------------------------


class MentorIn(StrictSerializer):
    unique_id = serializers.CharField(max_length=200)
    name = serializers.CharField(max_length=200)
    owner = serializers.CharField(
        max_length=150, required=False, allow_null=True, allow_blank=True, help_text="Owner's username."
    )


class MentorPatchIn(StrictSerializer):
    name = serializers.CharField(max_length=200, required=False)
    owner = serializers.CharField(max_length=150, required=False, allow_null=True, allow_blank=True)


class MentorOut(serializers.Serializer):
    unique_id = serializers.CharField()
    name = serializers.CharField()
    owner = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


def mentor_out(mentor) -> dict:
    return {
        "unique_id": mentor.unique_id,
        "name": mentor.name,
        "owner": mentor.owner.username if mentor.owner_id else None,
        "created_at": mentor.created_at.isoformat().replace("+00:00", "Z"),
        "updated_at": mentor.updated_at.isoformat().replace("+00:00", "Z"),
    }


class ActivityIn(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    kind = serializers.ChoiceField(choices=ActivityKind.choices)
    course_name = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")
    value = serializers.FloatField(
        required=False, default=1, min_value=0, help_text="Minutes, percent (course_progress) or a count."
    )
    occurred_at = serializers.DateTimeField()
    data = serializers.DictField(required=False, default=dict, validators=[bounded_context])


class ActivitiesIn(StrictSerializer):
    activities = ActivityIn(many=True, allow_empty=False, max_length=1000)


class ActivityOut(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()
    kind = serializers.CharField()
    course_name = serializers.CharField()
    value = serializers.FloatField()
    occurred_at = serializers.DateTimeField()
    data = serializers.JSONField()


# --- views ----------------------------------------------------------------------------------


def _member_by_username(platform: Platform, username: str | None):
    if not username:
        return None
    user = (
        get_user_model()
        .objects.filter(username=username, memberships__platform=platform, memberships__is_active=True)
        .first()
    )
    if user is None:
        raise serializers.ValidationError({"owner": [f"No user {username!r} on this platform."]})
    return user


class MentorListView(APIView):
    permission_classes = [EventSender]

    @extend_schema(tags=TAG_EVENTS, summary="List mentors", responses={200: MentorOut(many=True)})
    def get(self, request, org):
        platform = request.platform
        mentors = Mentor.objects.filter(platform=platform).select_related("owner")
        return Response([mentor_out(m) for m in mentors])

    @extend_schema(
        tags=TAG_EVENTS,
        summary="Create or update a mentor",
        description="Upsert by `unique_id`. The owner receives HUMAN_SUPPORT_NOTIFICATION in the "
        "`platform_admins_and_mentor_owner` and `mentor_owner_only` modes.",
        request=MentorIn,
        responses={200: MentorOut, 201: MentorOut, 400: FIELD_ERRORS},
    )
    def post(self, request, org):
        platform = request.platform
        ser = MentorIn(data=request.data)
        ser.is_valid(raise_exception=True)
        data = ser.validated_data
        owner = _member_by_username(platform, data.get("owner"))
        mentor, created = Mentor.objects.update_or_create(
            platform=platform, unique_id=data["unique_id"], defaults={"name": data["name"], "owner": owner}
        )
        return Response(mentor_out(mentor), status=201 if created else 200)


class MentorDetailView(APIView):
    permission_classes = [EventSender]

    def _mentor(self, platform, unique_id) -> Mentor:
        mentor = Mentor.objects.filter(platform=platform, unique_id=unique_id).select_related("owner").first()
        if mentor is None:
            raise ApiError("Not found.", status=404)
        return mentor

    @extend_schema(tags=TAG_EVENTS, summary="Get a mentor", responses={200: MentorOut, 404: DRF_ERROR})
    def get(self, request, org, unique_id):
        platform = request.platform
        return Response(mentor_out(self._mentor(platform, unique_id)))

    @extend_schema(tags=TAG_EVENTS, summary="Update a mentor", request=MentorPatchIn, responses={200: MentorOut})
    def patch(self, request, org, unique_id):
        platform = request.platform
        mentor = self._mentor(platform, unique_id)
        ser = MentorPatchIn(data=request.data)
        ser.is_valid(raise_exception=True)
        if "name" in ser.validated_data:
            mentor.name = ser.validated_data["name"]
        if "owner" in ser.validated_data:
            mentor.owner = _member_by_username(platform, ser.validated_data["owner"])
        mentor.save()
        return Response(mentor_out(mentor))

    @extend_schema(
        tags=TAG_EVENTS,
        summary="Delete a mentor",
        responses={200: inline_serializer("MentorDeleted", {"message": serializers.CharField()})},
    )
    def delete(self, request, org, unique_id):
        platform = request.platform
        self._mentor(platform, unique_id).delete()
        return Response({"message": "Mentor deleted successfully"})


class ActivityPagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


class LearnerActivityView(APIView):
    permission_classes = [EventSender]

    @extend_schema(
        tags=TAG_EVENTS,
        summary="List reported learner activity",
        description="Filter with `username` and `since` (ISO 8601).",
        operation_id="api_notification_v1_orgs_learner_activity_list",
        responses={200: paginated("PaginatedActivityList", ActivityOut(many=True))},
    )
    def get(self, request, org):
        platform = request.platform
        qs = LearnerActivity.objects.filter(platform=platform).select_related("user").order_by("-occurred_at", "-pk")
        if request.query_params.get("username"):
            qs = qs.filter(user__username=request.query_params["username"])
        if request.query_params.get("since"):
            since = serializers.DateTimeField().to_internal_value(request.query_params["since"])
            qs = qs.filter(occurred_at__gte=since)
        paginator = ActivityPagination()
        page = paginator.paginate_queryset(qs, request, view=self)
        return paginator.get_paginated_response(
            [
                {
                    "id": a.pk,
                    "username": a.user.username,
                    "kind": a.kind,
                    "course_name": a.course_name,
                    "value": a.value,
                    "occurred_at": a.occurred_at.isoformat().replace("+00:00", "Z"),
                    "data": a.data,
                }
                for a in page
            ]
        )

    @extend_schema(
        tags=TAG_EVENTS,
        summary="Report learner activity",
        description="What learners did (time spent, videos, course progress, credentials). The default "
        "`ai_recommendation` provider of PROACTIVE_LEARNER_NOTIFICATION summarises these records.",
        request=ActivitiesIn,
        responses={
            201: inline_serializer("ActivitiesCreated", {"created": serializers.IntegerField()}),
            400: FIELD_ERRORS,
        },
    )
    def post(self, request, org):
        platform = request.platform
        ser = ActivitiesIn(data=request.data)
        ser.is_valid(raise_exception=True)
        items = ser.validated_data["activities"]
        names = {a["username"] for a in items}
        users = {
            u.username: u
            for u in get_user_model().objects.filter(
                username__in=names, memberships__platform=platform, memberships__is_active=True
            )
        }
        missing = sorted(names - set(users))
        if missing:
            raise serializers.ValidationError({"activities": [f"Not users of this platform: {', '.join(missing)}"]})
        rows = [
            LearnerActivity(
                platform=platform,
                user=users[a["username"]],
                kind=a["kind"],
                course_name=a["course_name"],
                value=a["value"],
                occurred_at=a["occurred_at"],
                data=a["data"],
            )
            for a in items
        ]
        LearnerActivity.objects.bulk_create(rows)
        return Response({"created": len(rows)}, status=201)
