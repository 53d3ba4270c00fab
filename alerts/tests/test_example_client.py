"""docs/alerts_example_client.py, run against a live server as a calling system would."""

from __future__ import annotations

import importlib.util
from datetime import date, timedelta

import pytest
from django.conf import settings

from alerts.models import Alert

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def example():
    spec = importlib.util.spec_from_file_location(
        "alerts_example_client", settings.BASE_DIR / "docs" / "alerts_example_client.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def service_token(make_user):
    from django.contrib.auth.models import Permission

    from notifications.models import AuthToken

    service = make_user("inventory-service", is_service_account=True)
    service.memberships.get().permissions.add(
        Permission.objects.get(content_type__app_label="alerts", codename="create_for_user")
    )
    return AuthToken.issue(user=service, name="inventory")[1]


def test_example_client_posts_low_stock_and_loan_alerts(example, live_server, service_token, alice, capsys):
    base = ["--url", live_server.url, f"--token={service_token}"]
    assert (
        example.main([*base, "low-stock", "--user", str(alice.pk), "--item", "Laptop Dell XPS 15", "--remaining", "2"])
        == 0
    )
    assert "[warning] Low Stock Alert - Item 'Laptop Dell XPS 15' is running low on stock (2 remaining)" in (
        capsys.readouterr().out
    )
    overdue = (date.today() - timedelta(days=3)).isoformat()
    example.main([*base, "overdue-loan", "--user", str(alice.pk), "--item", "Projector #4", "--due", overdue])
    due_soon = date.today() + timedelta(days=5)
    example.main(
        [*base, "loan-due-soon", "--user", str(alice.pk), "--item", "Projector #4", "--due", due_soon.isoformat()]
    )

    low, late, soon = Alert.objects.filter(user=alice).order_by("id")
    assert (low.type, low.title) == ("warning", "Low Stock Alert")
    assert (late.type, late.title) == ("critical", "Overdue Loan")
    assert late.message.endswith("(3 days overdue)")
    assert (soon.is_event, soon.scheduled_at.date(), soon.notify_at.date()) == (
        True,
        due_soon,
        due_soon - timedelta(days=2),
    )


def test_example_client_reports_errors(example, live_server, service_token):
    client = example.AlertsClient(live_server.url, service_token)
    with pytest.raises(RuntimeError, match="404 not_found: User not found"):
        example.low_stock(client, user_id=987654, item="Laptop", remaining=1)
    with pytest.raises(RuntimeError, match="401 authentication_failed: Invalid, expired or revoked token"):
        example.low_stock(example.AlertsClient(live_server.url, "wrong"), user_id=1, item="Laptop", remaining=1)
