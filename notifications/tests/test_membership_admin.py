"""Roles and grants are edited per membership in the Django admin."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission

from notifications.models import Membership
from notifications.permissions import platform_permissions
from notifications.tests.factories import PlatformFactory, make_member

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(client, platform):
    root = make_member(platform=platform, username="root", is_superuser=True, is_staff=True)
    client.force_login(root)
    return root


def test_membership_form_offers_keys_and_grants_them_on_that_platform_only(client, operator, platform):
    other = PlatformFactory(key="other-school")
    jane = make_member(platform=platform, username="jane")
    Membership.objects.create(user=jane, platform=other)
    membership = Membership.objects.get(user=jane, platform=platform)
    url = f"/admin/notifications/membership/{membership.pk}/change/"
    form = client.get(url).context["adminform"].form
    offered = {p.name for p in form.fields["permissions"].queryset}
    assert "notifications.bulk_sms" in offered and "Can view alert" not in offered
    event_send = Permission.objects.get(codename="ibl_event_send")
    r = client.post(
        url,
        {
            "user": jane.pk,
            "platform": platform.pk,
            "role": "INSTRUCTOR",
            "is_active": "on",
            "permissions": [event_send.pk],
        },
    )
    assert r.status_code == 302, r.context["adminform"].form.errors if r.context else r
    assert "Ibl.Notifications/Event/send" in platform_permissions(jane, platform)
    assert "Ibl.Notifications/Event/send" not in platform_permissions(jane, other)
    membership.refresh_from_db()
    assert membership.role == "INSTRUCTOR"


def test_user_form_shows_memberships_and_no_api_keys(client, operator, platform):
    jane = make_member(platform=platform, username="jane")
    response = client.get(f"/admin/notifications/user/{jane.pk}/change/")
    assert response.status_code == 200
    offered = {p.codename for p in response.context["adminform"].form.fields["user_permissions"].queryset}
    assert "view_alert" in offered and "bulk_sms" not in offered
    assert "role" not in response.context["adminform"].form.fields
    assert any(formset.opts.model is Membership for formset in response.context["inline_admin_formsets"])
