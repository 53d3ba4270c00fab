from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from notifications.models import AuthToken


class Command(BaseCommand):
    help = "Issue a new API token for USERNAME and print it (it is shown only once)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="cli", help="Device or client the token is for.")
        parser.add_argument("--days", type=int, default=None, help="Lifetime in days (default: TOKEN_TTL_DAYS).")

    def handle(self, *args, username, name, days, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user named {username!r}")
        _, raw = AuthToken.issue(user=user, name=name, ttl=timedelta(days=days) if days else None)
        self.stdout.write(raw)
