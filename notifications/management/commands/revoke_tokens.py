from django.core.management.base import BaseCommand, CommandError

from notifications.credentials import tokens_revoke
from notifications.models import AuthToken


class Command(BaseCommand):
    help = "Revoke USERNAME's tokens: all of them, or the one whose prefix is given."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--prefix", help="Revoke only the token starting with this prefix.")

    def handle(self, *args, username, prefix, **options):
        tokens = AuthToken.objects.filter(user__username=username, revoked_at__isnull=True)
        if prefix:
            tokens = tokens.filter(prefix=prefix[:8])
            if not tokens.exists():
                raise CommandError(f"No active token of {username!r} starts with {prefix!r}")
        n = tokens_revoke(tokens=tokens)  # their open WebSockets close too
        self.stdout.write(f"Revoked {n} token(s).")
