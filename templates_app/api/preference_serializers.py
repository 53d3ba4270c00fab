"""Input validation and response shapes of the preferences endpoint."""

from __future__ import annotations

from drf_spectacular.utils import inline_serializer
from rest_framework import serializers

from notifications.models import Channel
from templates_app.api.common import StrictSerializer, _hhmm, _timezone


class PreferenceChangeIn(serializers.Serializer):
    type = serializers.CharField(max_length=100, help_text='A notification type, or "*" for every type.')
    channel = serializers.ChoiceField(choices=Channel.choices, required=False, allow_blank=True)
    enabled = serializers.BooleanField()


class QuietHoursIO(serializers.Serializer):
    start = serializers.CharField(help_text="HH:MM (24-hour), e.g. 22:00", validators=[_hhmm])
    end = serializers.CharField(
        help_text="HH:MM (24-hour), e.g. 07:00; before `start` crosses midnight; equal to `start`: no quiet hours",
        validators=[_hhmm],
    )


class CadenceChangeIn(serializers.Serializer):
    type = serializers.CharField(max_length=100, help_text="A digested notification type.")
    cadence = serializers.ChoiceField(
        choices=["immediate", "hourly", "daily", "weekly"],
        allow_null=True,
        help_text="One the platform's digest rule offers; null: follow the platform's rule again.",
    )


class PreferencesIn(StrictSerializer):
    preferences = PreferenceChangeIn(many=True, allow_empty=False, required=False)
    cadences = CadenceChangeIn(many=True, allow_empty=False, required=False)
    time_zone = serializers.CharField(
        required=False, max_length=64, validators=[_timezone], help_text="The user's IANA time zone"
    )
    quiet_hours = QuietHoursIO(
        required=False,
        allow_null=True,
        help_text="SMS, push and email wait until the end of this window in the user's time zone; in-app arrives "
        "silently; critical types and alerts go through. null: the platform's default applies.",
    )

    def validate(self, attrs):
        attrs = super().validate(attrs)
        if not {"preferences", "cadences", "time_zone", "quiet_hours"} & set(attrs):
            raise serializers.ValidationError(
                {"preferences": ["Give at least one of preferences, cadences, time_zone, quiet_hours."]}
            )
        return attrs


class PreferenceOut(serializers.Serializer):
    type = serializers.CharField()
    name = serializers.CharField()
    is_critical = serializers.BooleanField()
    is_enabled_on_platform = serializers.BooleanField()
    channels = serializers.DictField(child=serializers.BooleanField())
    digest = inline_serializer(
        "PreferenceDigestOut",
        {
            "cadence": serializers.CharField(allow_null=True, help_text="The user's own cadence; null: the rule's."),
            "cadences": serializers.ListField(
                child=serializers.CharField(), help_text="The cadences the platform lets its users choose."
            ),
        },
        allow_null=True,
        help_text="Set when the platform digests this type.",
    )


class PreferencesOut(serializers.Serializer):
    username = serializers.CharField()
    platform = serializers.CharField()
    time_zone = serializers.CharField(help_text="The user's IANA time zone")
    quiet_hours = QuietHoursIO(allow_null=True, help_text="The user's own quiet hours; null: the platform's default")
    platform_quiet_hours = QuietHoursIO(allow_null=True, help_text="The platform's default quiet hours, if any")
    channels = serializers.ListField(child=serializers.CharField())
    all_types = serializers.DictField(child=serializers.BooleanField(), help_text='Choices made for "*".')
    preferences = PreferenceOut(many=True)
