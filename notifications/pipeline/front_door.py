"""The front door: every send path ends in `notification_send` (or `_many`).

A caller resolves its audience, chooses its content and calls the front door
once with the channels it wants and all its recipients; the front door
decides who gets which channel (`eligibility`), writes the rows (`write`),
dispatches them (`dispatch`) and answers with the counts read from the rows
(`counts`), so no caller filters channels, sends twice or reads rows back.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import notifications.pipeline.eligibility as eligibility
import notifications.pipeline.tuning as tuning
from notifications.models import Platform
from notifications.pipeline.counts import send_counts, send_counts_many
from notifications.pipeline.dispatch import dispatch_channel, dispatch_finish, running_from, still_running
from notifications.pipeline.parts import Message, Recipient, Renderer, RunningCheck, Send, SendResult, StopCheck
from notifications.pipeline.policies import FALLS_BACK
from notifications.pipeline.write import deliveries_write, deliveries_write_many


def notification_send(
    *,
    platform: Platform,
    source: str,
    channels: Sequence[str],
    recipients: Iterable[Recipient],
    message: Message | None = None,
    render: Renderer | None = None,
    should_stop: StopCheck | None = None,
    wait: bool = True,
    fallback_channel: str = "",
    count: bool = True,
    alongside: bool = False,
) -> SendResult:
    """Deliver `message` (or what `render` gives per recipient) over the eligible `channels`.

    Idempotent per `source`: rows already written are kept, rows already sent
    are never sent again. `should_stop` is asked before every batch (a
    cancelled scheduled job). With `wait=True` (the default) it returns once
    every row is sent or failed, except rows waiting for a retry; with
    `wait=False` it returns as soon as the rows are written and the workers'
    chunks are queued (after the caller's transaction commits), and the caller
    shows progress from `send_counts(source=result.source)`. In-app rows are
    delivered while they are written, in both modes. `fallback_channel`: where
    a delivery that cannot get through goes instead, for every channel of the
    send (bulk requests); without it the notification type's policy applies
    (see `pipeline.fallback`). `count=False` answers without counting the
    source's rows (only `source` is set): for a caller that sends one
    audience in many calls and reads its recipients' outcomes itself (the
    builder), where counting the whole send after every call would grow with it.
    `alongside=True`: the caller is one of several processes sending parts of
    one source side by side (the builder's workers); it dispatches what it
    can claim in this process, queues no workers, and returns without waiting
    for rows another dispatcher holds (their outcome is read later).
    """
    channels = eligibility.platform_channels(platform=platform, channels=channels)
    deliveries_write(
        platform=platform,
        source=source,
        channels=channels,
        recipients=recipients,
        message=message,
        render=render,
        should_stop=should_stop,
        fallback_channel=fallback_channel,
    )
    _dispatch_sends(channels_of={source: channels}, wait=wait, running=running_from(should_stop), alongside=alongside)
    return send_counts(source=source) if count else SendResult(source=source)


def notification_send_many(
    *, sends: Sequence[Send], running: RunningCheck | None = None, wait: bool = True
) -> dict[str, SendResult]:
    """`notification_send` for many sources at once; returns each source's counts.

    Small sends share their INSERTs, claims and counts (many scheduled jobs
    falling due together cost a handful of statements, not a handful each);
    a large send goes through `deliveries_write` on its own, in chunks. Every
    send stays idempotent under its own source. `running` is asked before
    every batch with the sources still at work and answers those that may go
    on: a source it drops sends nothing more.
    """
    size = tuning.setting("WRITE_CHUNK", tuning.WRITE_CHUNK)
    going = set(still_running([send.source for send in sends], running)) if running is not None else None
    eligible = [_eligible(send) for send in sends]
    small, large = [], []
    for send in eligible:
        if going is not None and send.source not in going:
            continue  # stopped before anything was written
        (large if len(send.recipients) > size else small).append(send)
    deliveries_write_many(sends=small)
    for send in large:
        deliveries_write(
            platform=send.platform,
            source=send.source,
            channels=send.channels,
            recipients=send.recipients,
            message=send.message,
            render=send.render,
            should_stop=None if running is None else (lambda s=send.source: not still_running([s], running)),
            fallback_channel=send.fallback_channel,
        )
    _dispatch_sends(channels_of={send.source: send.channels for send in eligible}, wait=wait, running=running)
    return send_counts_many(sources=[send.source for send in sends])


def _eligible(send: Send) -> Send:
    channels = eligibility.platform_channels(platform=send.platform, channels=send.channels)
    if channels == tuple(send.channels):
        return send
    return Send(
        platform=send.platform,
        source=send.source,
        channels=channels,
        recipients=send.recipients,
        message=send.message,
        render=send.render,
        fallback_channel=send.fallback_channel,
    )


def notification_send_finish(*, source: str, channels: Sequence[str]) -> None:
    """The last step of a sender that called `notification_send(alongside=True)`.

    Sends the source's rows that no dispatcher holds and waits for the ones
    others hold, so that the outcomes read after it are final (except rows
    waiting for a retry, which the sweep sends).
    """
    _dispatch_sends(channels_of={source: channels}, wait=True, running=None, finish=True)


def _dispatch_sends(
    *,
    channels_of: dict[str, Sequence[str]],
    wait: bool,
    running: RunningCheck | None,
    alongside: bool = False,
    finish: bool = False,
) -> None:
    """Dispatch each channel's pending rows of the given sources, channel after channel.

    The send's own channels first, then the channels its fallbacks may have
    written rows on while it was written (a user without a push device got
    an SMS row): one probe of the pending-rows index each when there are none.
    """
    order: dict[str, list[str]] = {}
    for source, channels in channels_of.items():
        for channel in channels:
            order.setdefault(str(channel), []).append(source)
    for channel in FALLS_BACK:
        asked = set(order.get(channel, ()))
        extra = [source for source in channels_of if source not in asked]
        if extra:
            order.setdefault(channel, []).extend(extra)
    for channel, sources in order.items():
        if running is not None:
            sources = still_running(sources, running)
            if not sources:
                continue
        if finish:
            dispatch_finish(sources=sources, channel=channel, running=running)
        else:
            dispatch_channel(sources=sources, channel=channel, wait=wait, running=running, alongside=alongside)
