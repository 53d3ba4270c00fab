"""Demo data for a first run. Idempotent: run it after every `migrate`."""

import os

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from notifications.credentials import tokens_revoke
from notifications.models import AuthToken, Membership, Platform, Role

LEARNERS = [
    ("alice", "alice@example.com", "+251911000001", Role.STUDENT),
    ("bob", "bob@example.com", "+251911000002", Role.STUDENT),
    ("carol", "carol@example.com", "+251911000003", Role.OPEN_LEARNER),
    ("dave", "dave@example.com", "+251911000004", Role.INSTRUCTOR),
]


class Command(BaseCommand):
    help = "Create the demo platform, the admin and a few learners; print the admin's token and URLs."

    def add_arguments(self, parser):
        parser.add_argument(
            "--base-url",
            default=os.environ.get("PUBLIC_BASE_URL") or f"http://127.0.0.1:{os.environ.get('PORT', '8000')}",
            help="where the server is reached, for the printed URLs (run.py passes its host and port)",
        )

    @transaction.atomic
    def handle(self, *args, base_url, **options):
        base_url = base_url.rstrip("/")
        User = get_user_model()
        platform, _ = Platform.objects.get_or_create(
            key="demo",
            defaults={
                "name": "Demo Academy",
                "site_name": "Demo Academy",
                "site_url": "https://demo.example.com",
                "support_email": "support@demo.example.com",
                "base_domain": "demo.example.com",
                "from_email": "Demo Academy <no-reply@demo.example.com>",
            },
        )
        admin, created = User.objects.get_or_create(
            username="admin",
            defaults={"email": "admin@example.com", "is_staff": True, "is_superuser": True},
        )
        password = os.environ.get("BOOTSTRAP_ADMIN_PASSWORD", "admin")
        if created:
            admin.set_password(password)
            admin.save()
        Membership.objects.get_or_create(
            user=admin, platform=platform, defaults={"is_platform_admin": True, "role": Role.SUPER_ADMIN}
        )
        for username, email, phone, role in LEARNERS:
            user, made = User.objects.get_or_create(username=username, defaults={"email": email, "phone_number": phone})
            if made:
                user.set_password(username)
                user.save()
            Membership.objects.get_or_create(user=user, platform=platform, defaults={"role": role})
        # One bootstrap token at a time: the previous one is revoked.
        tokens_revoke(tokens=AuthToken.objects.filter(user=admin, name="bootstrap"))
        _, raw = AuthToken.issue(user=admin, name="bootstrap")
        self.stdout.write(self.style.SUCCESS("Demo platform 'demo' is ready."))
        if created:
            self.stdout.write(f"  admin login:    admin / {password}")
        self.stdout.write(f"  admin token:    {raw}")
        self.stdout.write(f"  health:         curl -H 'Authorization: Bearer {raw}' {base_url}/healthz")
        self.stdout.write(f"  Django admin:   {base_url}/admin/")
        self.stdout.write(f"  learner inbox:  {base_url}/inbox/ (alice / alice, bob / bob, ...)")
        self.stdout.write(f"  API docs:       {base_url}/api/docs/")
        self.stdout.write(f"  WebSocket:      {base_url.replace('http', 'ws', 1)}/api/v1/ws/connect?token={raw}")
