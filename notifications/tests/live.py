"""Helpers for tests that run a server in a thread of the test process."""

from __future__ import annotations

import contextlib


@contextlib.contextmanager
def server_connections_closed():
    """Close the database connections a server in a thread of this process opened meanwhile.

    A request the browser abandons (a navigation away, a closed page) never
    reaches Django's request_finished, and ORM calls made while Playwright's
    event loop runs get a connection of their own. Left open, PostgreSQL refuses
    to drop the test database, and a connection collected later warns.
    Holding them here also keeps them from being collected when the server's
    threads end.
    """
    from django.db import connections
    from django.db.backends.signals import connection_created

    opened = []

    def track(sender, connection, **kwargs):
        opened.append(connection)

    connection_created.connect(track)
    try:
        yield
    finally:
        connection_created.disconnect(track)
        for wrapper in opened:
            if wrapper is not connections[wrapper.alias] and wrapper.connection is not None:
                wrapper.inc_thread_sharing()  # the server's threads are gone; close theirs from here
                try:
                    wrapper.close()
                finally:
                    wrapper.dec_thread_sharing()
