"""Posting automatic alerts from another system (inventory, lending) to `/alerts`.

The rules that decide *when* to alert live in the calling system; this script
shows the calls it makes once a rule fires. It runs as a service account: a
user with `is_service_account` set and the `alerts.create_for_user` permission
(grant it in the Django admin under the user's permissions), which may name
the user an alert is for with `userId`.

    python manage.py issue_token inventory-service --name inventory   # prints a token
    export NOTIFY_URL=http://127.0.0.1:8000 NOTIFY_TOKEN=<token>
    python docs/alerts_example_client.py low-stock --user 7 --item "Laptop Dell XPS 15" --remaining 2
    python docs/alerts_example_client.py overdue-loan --user 7 --item "Projector #4" --due 2026-03-01
    python docs/alerts_example_client.py loan-due-soon --user 7 --item "Projector #4" --due 2026-03-10

Alerts answer `{"data": {...}}`; errors answer `{"error": {"code", "message", "fields"?}}`.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, date, datetime, time, timedelta

import requests


class AlertsClient:
    def __init__(self, base_url: str, token: str, *, platform: str = "", timeout: float = 10):
        self.base_url = base_url.rstrip("/")
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"
        if platform:
            # Only needed when the service account belongs to several platforms.
            self.session.headers["X-Platform"] = platform
        self.timeout = timeout

    def create(self, **alert) -> dict:
        response = self.session.post(f"{self.base_url}/alerts", json=alert, timeout=self.timeout)
        if not response.ok:
            error = response.json().get("error", {})
            raise RuntimeError(f"{response.status_code} {error.get('code')}: {error.get('message')}")
        return response.json()["data"]


def low_stock(client: AlertsClient, *, user_id: int, item: str, remaining: int) -> dict:
    """Stock fell below the minimum: a warning now, critical when it ran out."""
    if remaining <= 0:
        return client.create(
            userId=user_id,
            title="Out of Stock",
            message=f"Item '{item}' is out of stock",
            type="critical",
        )
    return client.create(
        userId=user_id,
        title="Low Stock Alert",
        message=f"Item '{item}' is running low on stock ({remaining} remaining)",
        type="warning",
    )


def overdue_loan(client: AlertsClient, *, user_id: int, item: str, due: date) -> dict:
    """The daily check found a loan past its expectedReturnDate."""
    days = (datetime.now(UTC).date() - due).days
    return client.create(
        userId=user_id,
        title="Overdue Loan",
        message=f"'{item}' was due back on {due.isoformat()} ({days} day{'s' if days != 1 else ''} overdue)",
        type="critical",
    )


def loan_due_soon(client: AlertsClient, *, user_id: int, item: str, due: date, notice_days: int = 2) -> dict:
    """A calendar event on the return date, with a reminder `notice_days` before."""
    due_at = datetime.combine(due, time(9, 0), tzinfo=UTC)
    notify_at = max(due_at - timedelta(days=notice_days), datetime.now(UTC))
    return client.create(
        userId=user_id,
        title="Loan Due",
        message=f"'{item}' is due back on {due.isoformat()}",
        type="warning",
        isEvent=True,
        # Timestamps always carry their timezone; naive ones are refused.
        scheduledAt=due_at.isoformat(),
        notifyAt=notify_at.isoformat(),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("NOTIFY_URL", "http://127.0.0.1:8000"))
    parser.add_argument("--token", default=os.environ.get("NOTIFY_TOKEN", ""))
    parser.add_argument("--platform", default=os.environ.get("NOTIFY_PLATFORM", ""))
    commands = parser.add_subparsers(dest="command", required=True)
    stock = commands.add_parser("low-stock")
    stock.add_argument("--remaining", type=int, required=True)
    for name in ("overdue-loan", "loan-due-soon"):
        loan = commands.add_parser(name)
        loan.add_argument("--due", type=date.fromisoformat, required=True)
    for sub in commands.choices.values():
        sub.add_argument("--user", type=int, required=True, help="id of the user the alert is for")
        sub.add_argument("--item", required=True)
    args = parser.parse_args(argv)
    if not args.token:
        parser.error("give --token or set NOTIFY_TOKEN")

    client = AlertsClient(args.url, args.token, platform=args.platform)
    if args.command == "low-stock":
        alert = low_stock(client, user_id=args.user, item=args.item, remaining=args.remaining)
    elif args.command == "overdue-loan":
        alert = overdue_loan(client, user_id=args.user, item=args.item, due=args.due)
    else:
        alert = loan_due_soon(client, user_id=args.user, item=args.item, due=args.due)
    print(f"alert {alert['id']}: [{alert['type']}] {alert['title']} - {alert['message']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
