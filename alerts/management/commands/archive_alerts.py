from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand
from django.utils import timezone
from tqdm import tqdm

from alerts import selectors, services


class Command(BaseCommand):
    help = "Archive read alerts older than ALERTS_ARCHIVE_AFTER_DAYS now (beat does this every hour)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--days", type=int, default=None, help="Archive read alerts older than this (default: the setting)."
        )
        parser.add_argument("--batch-size", type=int, default=1000)

    def handle(self, *args, days, batch_size, **options):
        days = settings.ALERTS_ARCHIVE_AFTER_DAYS if days is None else days
        now = timezone.now()
        expected = selectors.alerts_archivable(cutoff=now - timedelta(days=days)).count()
        with tqdm(total=expected, unit="alert", disable=None, file=self.stderr) as bar:
            total = services.alerts_archive(now=now, older_than_days=days, batch_size=batch_size, progress=bar.update)
        self.stdout.write(f"Archived {total} alert(s) read and older than {days} day(s).")
