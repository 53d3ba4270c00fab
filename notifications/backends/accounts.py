"""Whose provider account a delivery goes out on: its platform's own, or the project's.

A platform may store its own credentials for an SMS provider
(`PlatformProviderCredentials`, secret encrypted like the SMTP password); every
other platform's messages use the provider's settings. SMS backends group a
batch by account and make their calls per account.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from notifications.models import PlatformProviderCredentials


@dataclass(frozen=True)
class Account:
    """The credentials one provider call is made with."""

    secret: str
    username: str = ""
    sender_id: str = ""
    sender_name: str = ""
    # Whose it is, for error messages: "the project" or "platform <key>".
    owner: str = "the project"
    # Set when the platform's stored secret cannot be read (SECRET_KEY changed):
    # its deliveries fail with this instead of going out on another account.
    broken: str = ""


def platform_accounts(*, provider: str, platform_ids: Iterable[int]) -> dict[int, Account]:
    """The active own accounts of these platforms at `provider`, by platform id."""
    accounts = {}
    rows = PlatformProviderCredentials.objects.filter(
        provider=provider, platform_id__in=set(platform_ids), is_active=True
    ).select_related("platform")
    for row in rows:
        secret = row.secret
        owner = f"platform {row.platform.key}"
        broken = ""
        if secret is None:
            broken = (
                f"The {provider} credentials of {owner} cannot be decrypted (SECRET_KEY changed since they were "
                "saved); enter the secret again"
            )
        accounts[row.platform_id] = Account(
            secret=secret or "",
            username=row.username,
            sender_id=row.sender_id,
            sender_name=row.sender_name,
            owner=owner,
            broken=broken,
        )
    return accounts
