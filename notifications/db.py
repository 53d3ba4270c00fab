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
from functools import cache

from django.db.backends.signals import connection_created


@cache
def _clamping_loader(tz):
    """A timestamptz loader: psycopg's C parser, the value in Django's zone, clamped to what Python can hold.

    Django's own loader subclasses psycopg's pure-Python one (it sets the
    zone after parsing); that parse was 4.3 us a value against 0.5 us in C,
    15% of a dispatcher's profile and a share of every inbox page. The C
    loader answers in the session's zone; `astimezone` gives Django's (the
    same instant whatever the session's setting), or a naive time without
    USE_TZ, as Django's does.
    """
    import psycopg
    from psycopg.pq import Format

    parser = psycopg.adapters.get_loader(psycopg.postgres.types["timestamptz"].oid, Format.TEXT)

    class ClampingTzLoader(psycopg.adapt.Loader):
        timezone = tz  # Django's cursors compare it with the connection's before registering their own

        def __init__(self, oid, context=None):
            super().__init__(oid, context)
            self._parse = parser(oid, context).load

        def load(self, data):
            try:
                value = self._parse(data)
            except psycopg.DataError:
                text = bytes(data).strip()
                before_year_1 = text.endswith(b"BC") or text == b"-infinity"
                value = datetime.min if before_year_1 else datetime.max
                return value.replace(tzinfo=tz)
            return value.astimezone(tz) if tz is not None else value.replace(tzinfo=None)

    return ClampingTzLoader


def _register(sender, connection, **kwargs):
    if connection.vendor != "postgresql":
        return
    from django.db.backends.postgresql import psycopg_any

    if not psycopg_any.is_psycopg3:
        return
    from psycopg.pq import Format

    # Once per PostgreSQL connection: a pooled one comes back through here at
    # every checkout, and the loader class is made once per zone.
    loader = _clamping_loader(connection.timezone)
    adapters = connection.connection.adapters
    if adapters.get_loader(_timestamptz_oid(), Format.TEXT) is not loader:
        adapters.register_loader("timestamptz", loader)


@cache
def _timestamptz_oid() -> int:
    import psycopg

    return psycopg.postgres.types["timestamptz"].oid


def ready() -> None:
    connection_created.connect(_register, dispatch_uid="notifications.db.clamping_timestamptz")
