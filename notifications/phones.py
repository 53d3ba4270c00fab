"""Phone numbers: parsed and stored in E.164 with the `phonenumbers` library."""

from __future__ import annotations

import phonenumbers
from django.conf import settings


def normalize(raw: str, *, region: str | None = None) -> str | None:
    """Return `raw` as E.164, or None when it is not a valid number."""
    try:
        number = phonenumbers.parse(raw, region or settings.PHONE_DEFAULT_REGION)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
