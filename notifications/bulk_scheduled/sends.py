"""Immediate bulk sends: send now through the pipeline, or preview who a send reaches.

A send is recorded as an `ImmediateSend` whose id is its deliveries' source
`bulk:<id>`. `message_for` turns a bulk request's content into the pipeline's
`Message` for one channel; scheduled jobs use it too when they run.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from notifications.bulk_scheduled import selectors
from notifications.bulk_scheduled.files import attachments_store, push_image_store
from notifications.bulk_scheduled.inputs import BulkInput, BulkInputError, Content
from notifications.digests import DigestOutcome, DigestRequest, digest_join_send, digests_apply
from notifications.models import DELIVERY_CHANNEL, ImmediateSend, Platform, ScheduledChannel
from notifications.pipeline import Message, SendResult, notification_send


@dataclass
class BulkSendResult:
    counts: SendResult
    target_users: int
    image_url: str = ""
    record_id: uuid.UUID | None = None
    # Set when the send named a digest key: where its recipients went.
    digest: DigestOutcome | None = None


@dataclass(frozen=True)
class BulkPreview:
    """Recipients a send resolves to: members and direct addresses of nobody's account."""

    recipients: int
    users: int
    addresses: int


def message_for(channel: str, content: Content, *, image_url: str = "") -> Message:
    short = content.message if channel in (ScheduledChannel.SMS, ScheduledChannel.PUSH) else ""
    return Message(
        title=content.title,
        body=content.message,
        html=content.html if channel == ScheduledChannel.EMAIL else "",
        short_message=short if len(short) <= 1000 else "",
        notification_type=content.notification_type,
        level=content.level,
        image_url=image_url,
    )


def check_channel_enabled(platform: Platform, channel: str, fallback_channel: str = "") -> None:
    if channel == ScheduledChannel.PUSH and not platform.push_enabled:
        raise BulkInputError("Push notifications are disabled", "this platform has push notifications turned off")
    if fallback_channel == ScheduledChannel.PUSH and not platform.push_enabled:
        raise BulkInputError("Invalid fallback_channel", "this platform has push notifications turned off")


def fallback_for(name: str) -> str:
    """The delivery rows' name of a bulk request's `fallback_channel`."""
    return DELIVERY_CHANNEL[name] if name else ""


def bulk_send(*, platform: Platform, data: BulkInput, base_url: str = "", created_by=None) -> BulkSendResult:
    """Send now, through the pipeline; returns the counts of the whole send.

    The send is recorded as an `ImmediateSend` (the admin's send history),
    whose id is the deliveries' source `bulk:<id>`.
    """
    check_channel_enabled(platform, data.channel, data.fallback_channel)
    recipients, user_count = selectors.recipients_resolve(
        platform=platform, channel=data.channel, targeting=data.targeting
    )
    if not recipients:
        raise BulkInputError("No target users found", "no member of this platform matches user_ids or role")
    channel = DELIVERY_CHANNEL[data.channel]
    if data.digest_key and not digests_apply(
        platform=platform, notification_type=data.content.notification_type, channel=channel
    ):
        raise BulkInputError(
            "Invalid digest_key",
            f"this platform does not digest {data.content.notification_type} on {channel}: add a digest rule first",
        )
    image_url = ""
    if data.channel == ScheduledChannel.PUSH and data.files:
        image_url = push_image_store(image=data.files[0], base_url=base_url)
    record = ImmediateSend.objects.create(
        platform=platform,
        channel=data.channel,
        title=data.content.title[:500],
        message=data.content.message,
        image_url=image_url,
        target_user_ids=list(data.targeting.user_ids),
        target_role=data.targeting.role,
        target_addresses=[*data.targeting.phones, *data.targeting.emails],
        target_users=user_count,
        created_by=created_by if created_by is not None and created_by.is_authenticated else None,
    )
    source = record.source
    if data.channel == ScheduledChannel.EMAIL and data.files:
        attachments_store(source=source, files=data.files)
    digest = None
    if data.digest_key:
        # Each recipient joins their digest of this key; the first of a leading window still goes now.
        digest = digest_join_send(
            DigestRequest(
                platform=platform,
                notification_type=data.content.notification_type,
                channel=channel,
                digest_key=data.digest_key,
                source=source,
                recipients=recipients,
                item={"title": data.content.title, "message": data.content.message},
            )
        )
        recipients = digest.at_once
    counts = notification_send(
        platform=platform,
        source=source,
        channels=[channel],
        recipients=recipients,
        message=message_for(data.channel, data.content, image_url=image_url),
        fallback_channel=fallback_for(data.fallback_channel),
    )
    ImmediateSend.objects.filter(pk=record.pk).update(
        total_recipients=counts.total_recipients, sent_count=counts.sent, failed_count=counts.failed
    )
    return BulkSendResult(
        counts=counts, target_users=user_count, image_url=image_url, record_id=record.pk, digest=digest
    )


def bulk_preview(*, platform: Platform, data: BulkInput) -> BulkPreview:
    """Who a send would reach right now, without sending: the admin's confirmation step."""
    check_channel_enabled(platform, data.channel, data.fallback_channel)
    recipients, user_count = selectors.recipients_resolve(
        platform=platform, channel=data.channel, targeting=data.targeting
    )
    if not recipients:
        raise BulkInputError("No target users found", "no member of this platform matches user_ids or role")
    return BulkPreview(recipients=len(recipients), users=user_count, addresses=len(recipients) - user_count)
