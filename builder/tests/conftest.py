"""Fixtures of the builder tests: an admin client and a small audience."""

from __future__ import annotations

import pytest

from builder.models import (
    Department,
    DepartmentMember,
    Pathway,
    PathwayMember,
    Program,
    ProgramMember,
    UserGroup,
    UserGroupMember,
)

BASE = "/api/notification/v1/orgs/acme-learning/notification-builder/"


@pytest.fixture
def admin(make_user):
    return make_user("admin", role="ADMIN", admin=True)


@pytest.fixture
def client(api, admin):
    return api(admin, keyword="Token")


@pytest.fixture
def people(make_user):
    """jane, john, mary, paul: four active members of acme-learning."""
    return {name: make_user(name, email=f"{name}@example.com") for name in ("jane", "john", "mary", "paul")}


@pytest.fixture
def group(platform, people):
    """User group: jane and john active, mary inactive."""
    g = UserGroup.objects.create(platform=platform, name="Cohort 12")
    for name, active in (("jane", True), ("john", True), ("mary", False)):
        UserGroupMember.objects.create(group=g, user=people[name], is_active=active)
    return g


@pytest.fixture
def department(platform, people):
    """Department: john and mary active, paul inactive."""
    d = Department.objects.create(platform=platform, name="Engineering")
    for name, active in (("john", True), ("mary", True), ("paul", False)):
        DepartmentMember.objects.create(department=d, user=people[name], is_active=active)
    return d


@pytest.fixture
def program(platform, people):
    p = Program.objects.create(platform=platform, key="prog-data-101", name="Data 101")
    ProgramMember.objects.create(program=p, user=people["jane"], is_suggested=True)
    ProgramMember.objects.create(program=p, user=people["paul"], is_suggested=False)
    return p


@pytest.fixture
def pathway(platform, people):
    p = Pathway.objects.create(platform=platform, key="path-ml", name="ML path")
    PathwayMember.objects.create(pathway=p, user=people["mary"], is_suggested=True)
    PathwayMember.objects.create(pathway=p, user=people["paul"], is_suggested=True)
    return p


def custom(channels=(1, 3), sources=(), **extra):
    body = {
        "template_data": {
            "message_title": "Platform Maintenance Notice",
            "message_body": "Hi {{ username }}, scheduled maintenance is planned for April 20.",
        },
        "channels": list(channels),
        "sources": list(sources),
        "context": {},
    }
    body.update(extra)
    return body
