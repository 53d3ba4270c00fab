"""Status-callback URLs we hand an SMS provider with each send, signed per delivery.

AfroMessage's send API takes a `callback` URL and signs nothing it sends
there, so the URL itself carries the credential: the delivery's id signed
with SECRET_KEY (`django.core.signing`) in `?d=`. A report to such a URL can
only ever concern that one delivery; a URL we did not sign is refused.
"""

from __future__ import annotations

import uuid
from urllib.parse import urlencode

from django.core import signing
from django.urls import reverse

_SALT = "notifications.afromessage-status-report"


def afromessage_callback_url(*, base_url: str, notification_id) -> str:
    """The status-report URL of one delivery under `base_url` (our public origin, e.g. https://notify.example.org)."""
    token = signing.Signer(salt=_SALT).sign(str(notification_id))
    return f"{base_url.rstrip('/')}{reverse('v1-afromessage-status-reports')}?{urlencode({'d': token})}"


def afromessage_callback_notification(*, token: str) -> uuid.UUID | None:
    """The delivery id a callback URL's `d` was signed for, or None when we did not sign it."""
    try:
        return uuid.UUID(signing.Signer(salt=_SALT).unsign(token))
    except (signing.BadSignature, ValueError, TypeError):
        return None
