"""The chaos benchmark, small: a 3-channel send survives killed processes and dropped connections.

`bench/chaos.py` at CI size: 150 recipients x (in-app, email, SMS) through real
Celery workers, a beat running the sweep, an aiosmtpd sink and the AfroMessage
fake, with processes SIGKILLed, then every PostgreSQL backend terminated, then
Redis restarted mid-send. Nothing may be lost and no in-app row may be written
twice; external duplicates are allowed up to what was in flight at the faults.
"""

from __future__ import annotations

import pytest
from django.conf import settings

from bench import chaos
from notifications.models import Notification

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        "postgresql" not in settings.DATABASES["default"]["ENGINE"],
        reason="other processes need the test database; SQLite's is in this process's memory",
    ),
    pytest.mark.skipif(chaos.redis_server_binary() is None, reason="needs a redis-server binary to restart"),
    pytest.mark.timeout(240),
]

RECIPIENTS = 150


@pytest.fixture
def platform_of_members(db):
    return chaos.seed(RECIPIENTS)


@pytest.mark.parametrize(("scenario", "faults"), [("kill", 4), ("pg", 3), ("redis", 2)])
def test_nothing_is_lost_and_nothing_in_app_twice_under_faults(platform_of_members, scenario, faults):
    result = chaos.run_scenario(
        scenario,
        platform=platform_of_members,
        database_url=chaos.database_url(),
        faults=faults,
        gap=(0.2, 0.8),
        timeout=75,
        seed_value=21,
    )
    assert result["finished"] and result["faults_done"] >= 1, result
    assert result["lost"] == 0, result
    assert result["in_app_duplicates"] == 0, result
    assert result["external_duplicates_within_bound"], result
    assert Notification.objects.filter(source=result["source"], delivery_status="sent").count() == RECIPIENTS * 3
