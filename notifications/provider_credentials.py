"""A platform's own SMS provider accounts: services and selectors (the admin and the API both use them)."""

from __future__ import annotations

from django.db import transaction

from notifications.errors import InvalidInput
from notifications.models import Platform, PlatformProviderCredentials, SMSProvider


def provider_credentials_for(*, platform: Platform, provider: str) -> PlatformProviderCredentials | None:
    return PlatformProviderCredentials.objects.filter(platform=platform, provider=provider).first()


def provider_credentials_save(
    *,
    platform: Platform,
    provider: str,
    username: str = "",
    secret: str | None = None,
    sender_id: str = "",
    sender_name: str = "",
    is_active: bool = True,
) -> PlatformProviderCredentials:
    """Create or replace a platform's account at `provider`; `secret=None` keeps the stored one."""
    if provider not in SMSProvider.values:
        raise InvalidInput(f"Unknown SMS provider {provider!r}")
    with transaction.atomic():
        current = (
            PlatformProviderCredentials.objects.select_for_update().filter(platform=platform, provider=provider).first()
        )
        obj = current or PlatformProviderCredentials(platform=platform, provider=provider)
        obj.username = username
        obj.sender_id = sender_id
        obj.sender_name = sender_name
        obj.is_active = is_active
        if secret is not None:
            obj.secret = secret
        if is_active and not obj.secret_encrypted:
            raise InvalidInput("Active credentials need a secret")
        if is_active and provider == SMSProvider.AFRICASTALKING and not username:
            raise InvalidInput("Africa's Talking needs the application's username")
        obj.save()
    return obj


def provider_credentials_reset(*, platform: Platform, provider: str) -> bool:
    """Delete the platform's account at `provider` (its SMS go out on the project's again)."""
    deleted, _ = PlatformProviderCredentials.objects.filter(platform=platform, provider=provider).delete()
    return bool(deleted)
