"""Write the shipped notification types, channels and SPAs into the database.

Runs after every `migrate` on its own; run it by hand after changing
`templates_app/defaults.py` without a migration, or to see what changed.
"""

from django.core.management.base import BaseCommand
from tqdm import tqdm

from templates_app import defaults
from templates_app.services.templates import defaults_sync


class Command(BaseCommand):
    help = "Sync the shipped default notification templates (templates_app/defaults.py) into the database."

    def handle(self, *args, **options):
        with tqdm(total=len(defaults.TYPES), desc="default templates", disable=options["verbosity"] < 1) as bar:
            counts = defaults_sync(progress=lambda _type: bar.update(1))
        self.stdout.write(
            self.style.SUCCESS(
                f"{counts['created']} created, {counts['updated']} updated, {counts['unchanged']} unchanged"
            )
        )
