"""Domain errors come out of every surface exactly as the ApiError a view would raise."""

from __future__ import annotations

import pytest
from django.test import RequestFactory

from builder.errors import BuildConflict, BuildError, BuildForbidden
from notifications.api.errors import ApiError, exception_handler
from notifications.errors import Conflict, DomainError, InvalidInput, NotFound, PermissionDenied

PATHS = ("/alerts", "/api/v1/notifications/unread", "/api/notification/v1/orgs/acme/users/7/notifications/")
KINDS = [
    (DomainError, 400),
    (InvalidInput, 400),
    (PermissionDenied, 403),
    (NotFound, 404),
    (Conflict, 409),
    (BuildError, 400),
    (BuildForbidden, 403),
    (BuildConflict, 409),
]


def _answer(exc, path):
    response = exception_handler(exc, {"request": RequestFactory().get(path)})
    return response.status_code, response.data


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(("kind", "status"), KINDS)
def test_a_domain_error_answers_like_the_api_error_with_its_status(kind, status, path):
    raised = kind("Platform not found", detail="No platform 'x' for this user", fields={"x": ["bad"]})
    expected = ApiError(
        "Platform not found", status=status, error="No platform 'x' for this user", fields={"x": ["bad"]}
    )
    assert _answer(raised, path) == _answer(expected, path)
    assert _answer(raised, path)[0] == status


def test_a_domain_error_may_name_its_own_code():
    status, body = _answer(Conflict("Already sent", code="already_sent"), "/alerts")
    assert (status, body) == (409, {"error": {"code": "already_sent", "message": "Already sent"}})


def test_the_builder_catches_all_its_refusals_at_once():
    assert issubclass(BuildConflict, BuildError) and issubclass(BuildForbidden, BuildError)
