"""The one-click unsubscribe link feeds the platform's suppression list (for the link's one type)."""

from __future__ import annotations

import pytest

from notifications.models import Suppression
from templates_app.messages import unsubscribe_token
from templates_app.services.preferences import preferences_update, unsubscribe_apply

pytestmark = pytest.mark.django_db


def test_unsubscribe_link_lists_the_address_for_that_type_and_switching_back_lifts_it(platform, make_user):
    learner = make_user("learner", email="Learner@Example.org")
    token = unsubscribe_token(platform=platform, user_id=learner.pk, notification_type="USER_NOTIF_USER_INACTIVITY")

    unsubscribe_apply(token)
    unsubscribe_apply(token)  # a second click changes nothing

    listed = Suppression.objects.get(platform=platform)
    assert (listed.address, listed.reason, listed.source, listed.notification_type) == (
        "learner@example.org",
        "unsubscribed",
        "unsubscribe_link",
        "USER_NOTIF_USER_INACTIVITY",
    )
    preferences_update(
        platform=platform, user=learner, changes=[{"type": "USER_NOTIF_USER_INACTIVITY", "enabled": True}]
    )
    assert not Suppression.objects.exists()
