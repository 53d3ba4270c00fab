"""The caller's credentials and platform rights, looked up once and cached.

An HTTP request with a token needs its token, its user, the platforms the user
belongs to and the keys held on each (`notifications.permissions`). Read from
PostgreSQL that is four to six small queries per request; here it is one Redis
GET of a `Credentials` entry keyed by the token's hash, built from two queries
on a miss.

The entry must never outlive what it was built from, so every write that can
change it drops it (`credentials_forget`):

- a token revoked, deleted or its expiry changed (`credentials.tokens_revoke`,
  `AuthToken.revoke`, `AuthTokenQuerySet.update/delete`);
- a membership created, saved, deleted, updated through its queryset, or its
  grants changed; a user saved or deleted; a platform saved or deleted
  (`notifications.signals`, `MembershipQuerySet.update`).

Dropping writes a short-lived tombstone rather than deleting: a request that
read the old rows just before the change cannot put them back (entries are
added with SET NX), and it is written again when the transaction commits, so a
reader that saw the uncommitted state cannot either. What bypasses the ORM
(a raw SQL UPDATE) is seen within `AUTH_CACHE_SECONDS`, which is also the
resolution of `AuthToken.last_used_at` (written on a miss). `AUTH_CACHE_SECONDS = 0`
turns the cache off.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from notifications import redis_cache

logger = logging.getLogger(__name__)

_PREFIX = "auth:token:"
_TOMBSTONE = b"forgotten"
# Longer than any request takes between reading the rows and adding the entry.
TOMBSTONE_SECONDS = 10


@dataclass
class Credentials:
    """A token with its user (password deferred) and the user's active platforms and keys on each."""

    token: object  # AuthToken, with .user and .platform loaded
    platforms: dict[int, object] = field(default_factory=dict)  # pk -> Platform (active memberships only)
    keys: dict[int, frozenset[str]] = field(default_factory=dict)  # pk -> permission keys held there

    def platform_by_key(self, key: str):
        return next((p for p in self.platforms.values() if p.key == key), None)

    def usable(self) -> bool:
        token = self.token
        return token.revoked_at is None and (token.expires_at is None or token.expires_at > timezone.now())


def _key(key_hash: str) -> str:
    return redis_cache.key(_PREFIX + key_hash)


def _seconds() -> int:
    return int(getattr(settings, "AUTH_CACHE_SECONDS", 60))


def credentials_load(token) -> Credentials:
    """The user's active memberships and the keys of each, in two queries."""
    from notifications.models import Membership
    from notifications.permissions import membership_keys

    user = token.user
    creds = Credentials(token=token)
    memberships = list(
        Membership.objects.filter(user=user, is_active=True, platform__is_active=True)
        .select_related("platform")
        .only("id", "role", "is_platform_admin", "platform")
    )
    grants: dict[int, list[tuple[str, str]]] = {}
    if memberships and not user.is_superuser:
        through = Membership.permissions.through.objects.filter(membership__in=[m.pk for m in memberships])
        for membership_id, app_label, codename in through.values_list(
            "membership_id", "permission__content_type__app_label", "permission__codename"
        ):
            grants.setdefault(membership_id, []).append((app_label, codename))
    for m in memberships:
        creds.platforms[m.platform_id] = m.platform
        creds.keys[m.platform_id] = membership_keys(
            user=user, role=m.role, is_platform_admin=m.is_platform_admin, grants=grants.get(m.pk, ())
        )
    return creds


def credentials_for(raw_hash: str, *, lookup) -> Credentials | None:
    """The cached credentials of a token hash; on a miss `lookup()` gives the token (or None) and the entry is added."""
    seconds = _seconds()
    if seconds > 0:
        cached = redis_cache.client().get(_key(raw_hash))
        if cached is not None and cached != _TOMBSTONE:
            creds = pickle.loads(cached)
            return creds if creds.usable() else None
    token = lookup()
    if token is None:
        return None
    creds = credentials_load(token)
    if seconds > 0:
        ttl = seconds
        if token.expires_at is not None:
            ttl = min(ttl, max(1, int((token.expires_at - timezone.now()).total_seconds())))
        # NX: a tombstone written by a concurrent change wins.
        redis_cache.client().set(_key(raw_hash), pickle.dumps(creds, pickle.HIGHEST_PROTOCOL), ex=ttl, nx=True)
    return creds


def credentials_cached(key_hashes: list[str]) -> dict[str, Credentials]:
    """The usable cached credentials among these token hashes, in one MGET; misses are left out.

    For callers that look many tokens up together (the WebSocket handshakes
    of a process): they ask the database once for the misses.
    """
    if _seconds() <= 0 or not key_hashes:
        return {}
    try:
        values = redis_cache.client().mget([_key(h) for h in key_hashes])
    except Exception:  # the database answers for all of them
        logger.warning("could not read %s cached credential(s)", len(key_hashes), exc_info=True)
        return {}
    found = {}
    for key_hash, value in zip(key_hashes, values, strict=True):
        if value is None or value == _TOMBSTONE:
            continue
        creds = pickle.loads(value)
        if creds.usable():
            found[key_hash] = creds
    return found


def _tombstone(key_hashes: list[str]) -> None:
    if not key_hashes:
        return
    try:
        with redis_cache.client().pipeline(transaction=False) as pipe:
            for h in key_hashes:
                pipe.set(_key(h), _TOMBSTONE, ex=TOMBSTONE_SECONDS)
            pipe.execute()
    except Exception:
        # The entries still end within AUTH_CACHE_SECONDS; the change itself must not fail.
        logger.exception("could not drop %s cached credential(s)", len(key_hashes))


def credentials_forget(*, key_hashes: Iterable[str] = (), user_ids: Iterable[int] = ()) -> None:
    """Drop the cached credentials of these tokens and of every token of these users, now and at commit."""
    if _seconds() <= 0:
        return
    hashes = set(key_hashes)
    users = set(user_ids)
    if users:
        from notifications.models import AuthToken

        hashes.update(
            AuthToken.objects.filter(user_id__in=users, revoked_at__isnull=True).values_list("key_hash", flat=True)
        )
    if not hashes:
        return
    ordered = sorted(hashes)
    _tombstone(ordered)
    transaction.on_commit(lambda: _tombstone(ordered))


def credentials_forget_platform(*, platform_id: int) -> None:
    """A platform changed: drop the credentials of its members and of the tokens scoped to it."""
    from notifications.models import AuthToken, Membership

    if _seconds() <= 0:
        return
    members = Membership.objects.filter(platform_id=platform_id).values("user_id")
    hashes = AuthToken.objects.filter(revoked_at__isnull=True, user_id__in=members).values_list("key_hash", flat=True)
    scoped = AuthToken.objects.filter(revoked_at__isnull=True, platform_id=platform_id).values_list(
        "key_hash", flat=True
    )
    credentials_forget(key_hashes=[*hashes, *scoped])
