"""Reading times PostgreSQL can hold and Python cannot.

`timestamptz` reaches year 294276; Python's datetime stops at 9999. An older
version stored a bulk job at 9999-12-31T23:59:59-14:00 (year 10000 in UTC), and
from then on every query that read the row failed: the platform's scheduled
list, the job's detail and its cancel all answered 500. Inputs are bounded now
(notifications.bounds), and reads clamp such a value to the nearest time
Python has, so a row like that is listed, shown and cancellable.
"""

from __future__ import annotations

from datetime import datetime

from django.db.backends.signals import connection_created


def _clamping_loader(base, tz):
    import psycopg

    class ClampingTzLoader(base):
        timezone = tz

        def load(self, data):
            try:
                return super().load(data)
            except psycopg.DataError:
                before_year_1 = bytes(data).rstrip().endswith(b"BC")
                value = datetime.min if before_year_1 else datetime.max
                return value.replace(tzinfo=self.timezone)

    return ClampingTzLoader


def _register(sender, connection, **kwargs):
    if connection.vendor != "postgresql":
        return
    from django.db.backends.postgresql import psycopg_any

    if not psycopg_any.is_psycopg3:
        return
    BaseTzLoader = psycopg_any.BaseTzLoader

    connection.connection.adapters.register_loader("timestamptz", _clamping_loader(BaseTzLoader, connection.timezone))


def ready() -> None:
    connection_created.connect(_register, dispatch_uid="notifications.db.clamping_timestamptz")
