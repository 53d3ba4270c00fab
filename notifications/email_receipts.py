"""Email receipts through django-anymail's tracking webhooks.

anymail knows each provider's webhook: how it authenticates (HTTP basic auth
with `ANYMAIL["WEBHOOK_SECRET"]`, plus the provider's signature where it signs,
e.g. Mailgun's `MAILGUN_WEBHOOK_SIGNING_KEY`, Resend's `RESEND_SIGNING_SECRET`)
and how its payload reads. We use its views for exactly that, validate and
parse, and record the normalised events ourselves (`notifications.receipts`)
instead of through anymail's global `tracking` signal, so a payload that does
not parse is the sender's 400, never our 500.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.core.exceptions import ImproperlyConfigured, SuspiciousOperation
from django.utils.module_loading import import_string

from notifications.channels import Channel
from notifications.models import ProviderStatus
from notifications.receipts import ReceiptEvent, Recorded, receipts_record

logger = logging.getLogger(__name__)

# URL name of the provider -> anymail's tracking webhook view.
TRACKING_VIEWS = {
    "amazon_ses": "anymail.webhooks.amazon_ses.AmazonSESTrackingWebhookView",
    "brevo": "anymail.webhooks.brevo.BrevoTrackingWebhookView",
    "mailersend": "anymail.webhooks.mailersend.MailerSendTrackingWebhookView",
    "mailgun": "anymail.webhooks.mailgun.MailgunTrackingWebhookView",
    "mailjet": "anymail.webhooks.mailjet.MailjetTrackingWebhookView",
    "mailtrap": "anymail.webhooks.mailtrap.MailtrapTrackingWebhookView",
    "mandrill": "anymail.webhooks.mandrill.MandrillCombinedWebhookView",
    "postal": "anymail.webhooks.postal.PostalTrackingWebhookView",
    "postmark": "anymail.webhooks.postmark.PostmarkTrackingWebhookView",
    "resend": "anymail.webhooks.resend.ResendTrackingWebhookView",
    "sendgrid": "anymail.webhooks.sendgrid.SendGridTrackingWebhookView",
    "sparkpost": "anymail.webhooks.sparkpost.SparkPostTrackingWebhookView",
    "unisender_go": "anymail.webhooks.unisender_go.UnisenderGoTrackingWebhookView",
}
# anymail's event types that say nothing about the delivery (an auto-reply, a re-subscribe) are skipped.
_STATUSES = {
    "queued": ProviderStatus.QUEUED,
    "sent": ProviderStatus.SENT,
    "rejected": ProviderStatus.REJECTED,
    "failed": ProviderStatus.FAILED,
    "bounced": ProviderStatus.BOUNCED,
    "deferred": ProviderStatus.DEFERRED,
    "delivered": ProviderStatus.DELIVERED,
    "opened": ProviderStatus.OPENED,
    "clicked": ProviderStatus.CLICKED,
    "complained": ProviderStatus.COMPLAINED,
    "unsubscribed": ProviderStatus.UNSUBSCRIBED,
}
# Anything a provider's payload can make anymail's parser raise.
_PARSE_ERRORS = (ValueError, KeyError, TypeError, AttributeError, IndexError, LookupError, UnicodeError)


class ReceiptRefused(Exception):
    """The request is not a receipt we take; `status` is the HTTP status to answer."""

    def __init__(self, message: str, *, status: int):
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class Handled:
    provider: str
    events: int
    recorded: Recorded


def webhook_secret_configured() -> bool:
    from anymail.utils import get_anymail_setting

    return bool(get_anymail_setting("webhook_secret", default=None))


def tracking_webhook_handle(*, provider_slug: str, request) -> Handled:
    """Authenticate, parse and record one tracking webhook post (a Django HttpRequest).

    Raises `ReceiptRefused`: 404 for a provider anymail has no tracking
    webhook for, 403 when no webhook secret is configured (receipts would
    otherwise be open to anyone), 401 for failed authentication, 400 for a
    payload that does not parse, 503 when the provider's own webhook settings
    are missing (the provider retries once the operator sets them).
    """
    path = TRACKING_VIEWS.get(provider_slug)
    if path is None:
        raise ReceiptRefused(f"No email receipts from {provider_slug!r}.", status=404)
    if not webhook_secret_configured():
        raise ReceiptRefused("Email receipts are off: set ANYMAIL_WEBHOOK_SECRET.", status=403)
    try:
        view = import_string(path)()
    except ImproperlyConfigured as exc:
        logger.error("email receipts from %s are not configured: %s", provider_slug, exc)
        raise ReceiptRefused(f"Receipts from {provider_slug} are not configured.", status=503) from None
    try:
        view.run_validators(request)
    except SuspiciousOperation:  # AnymailWebhookValidationFailure: wrong basic auth or signature
        raise ReceiptRefused("Webhook authentication failed.", status=401) from None
    except _PARSE_ERRORS:  # a signature block that is not even the right shape
        raise ReceiptRefused("Webhook authentication failed.", status=401) from None
    try:
        events = list(view.parse_events(request))
    except (SuspiciousOperation, *_PARSE_ERRORS):
        raise ReceiptRefused("The payload is not a tracking event this provider sends.", status=400) from None
    receipts = [r for r in (_receipt(e) for e in events) if r is not None]
    recorded = receipts_record(provider=view.esp_name, channel=Channel.EMAIL, events=receipts)
    return Handled(provider=view.esp_name, events=len(events), recorded=recorded)


def _receipt(event) -> ReceiptEvent | None:
    status = _STATUSES.get(getattr(event, "event_type", None))
    message_id = getattr(event, "message_id", None)
    if status is None or not isinstance(message_id, str) or not message_id:
        return None
    permanent = True
    if status == ProviderStatus.BOUNCED and _soft(event):
        # A soft bounce: the provider keeps trying; the address is not bad.
        status, permanent = ProviderStatus.DEFERRED, False
    detail = " ".join(str(part) for part in (event.description, event.mta_response) if part)
    return ReceiptEvent(
        status=status,
        message_id=message_id,
        recipient=event.recipient if isinstance(event.recipient, str) else "",
        timestamp=event.timestamp,
        detail=detail[:1000],
        permanent=permanent,
        reject_reason=event.reject_reason or "",
    )


def _soft(event) -> bool:
    esp_event = event.esp_event
    if isinstance(esp_event, dict) and esp_event.get("Type") == "SoftBounce":  # Postmark
        return True
    # An SMTP 4xx reply (a temporary failure) as the receiving server's answer.
    return isinstance(event.mta_response, str) and event.mta_response.lstrip().startswith("4")
