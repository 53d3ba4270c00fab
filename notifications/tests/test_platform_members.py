"""`platform_members`: the one answer to "who on this platform may a send reach"."""

from __future__ import annotations

import pytest

from notifications.models import Membership
from notifications.selectors import platform_member, platform_member_by, platform_members
from notifications.tests.factories import PlatformFactory, make_member

pytestmark = pytest.mark.django_db


@pytest.fixture
def people(platform):
    other = PlatformFactory(key="other")
    make_member(platform=platform, username="ann", role="STUDENT")
    make_member(platform=platform, username="ben", role="INSTRUCTOR")
    make_member(platform=platform, username="cat", role="ADMIN", admin=True)
    make_member(platform=platform, username="dan", is_active=False)  # a deactivated account
    make_member(platform=platform, username="eve")
    Membership.objects.filter(user__username="eve").update(is_active=False)  # left the platform
    make_member(platform=other, username="fay")  # another tenant's member
    make_member(platform=other, username="ann", role="ADMIN")  # ann is also on another platform
    return other


def names(users) -> list[str]:
    return sorted(u.username for u in users)


def test_active_users_with_an_active_membership_only(platform, people):
    assert names(platform_members(platform=platform)) == ["ann", "ben", "cat"]
    assert names(platform_members(platform=people)) == ["ann", "fay"]


def test_by_role_and_by_admin_flag_on_this_platform(platform, people):
    assert names(platform_members(platform=platform, role="INSTRUCTOR")) == ["ben"]
    # ann is an ADMIN elsewhere; here she is a student.
    assert names(platform_members(platform=platform, role="ADMIN")) == ["cat"]
    assert names(platform_members(platform=platform, admin=True)) == ["cat"]
    assert names(platform_members(platform=platform, admin=False)) == ["ann", "ben"]
    assert names(platform_members(platform=platform, role="STUDENT", admin=False)) == ["ann"]


def test_one_member_by_name_or_id(platform, people):
    dan = platform_members(platform=people).model.objects.get(username="dan")
    assert platform_member(platform=platform, username="ann").username == "ann"
    assert platform_member(platform=platform, username="dan") is None
    assert platform_member(platform=platform, username="fay") is None
    assert platform_member_by(platform=platform, user_id=dan.pk) is None
    assert platform_member_by(platform=platform, username="ben").username == "ben"
