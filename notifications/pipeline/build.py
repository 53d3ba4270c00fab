"""The rows of one chunk of recipients, column by column, ready for `sql.insert`.

One row per recipient and eligible channel (see `eligibility`): its address,
its status as written (in-app rows are the delivery and go in `sent`; a user
without the address a channel needs goes in `failed`; the rest `pending` for
dispatch) and its message, fixed or rendered per recipient. For a type with a
channel fallback, a user without a push device or without the address a
channel needs also gets a row on the fallback channel (see `fallback`), and
the chunk carries the send's plan (`sql.Batch.plans`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from django.utils import timezone

import notifications.pipeline.eligibility as eligibility
import notifications.pipeline.rules as rules
import notifications.pipeline.sql as sql
import notifications.pipeline.tuning as tuning
from notifications.backends import backend_class
from notifications.channels import Channel, settings_key
from notifications.models import DeliveryStatus, InboxStatus
from notifications.pipeline.parts import Message, Recipient, Renderer
from notifications.pipeline.policies import FALLBACK, NO_DEVICE, Policy, send_policy, type_policy
from notifications.selectors import push_devices_by_recipient

# Plain strings for the row columns: comparing and dumping 100k enum members costs.
SENT, FAILED, PENDING, SUPPRESSED = (
    str(s.value)
    for s in (DeliveryStatus.SENT, DeliveryStatus.FAILED, DeliveryStatus.PENDING, DeliveryStatus.SUPPRESSED)
)
_UNREAD = str(InboxStatus.UNREAD.value)
_MESSAGE_FIELDS = ("notification_type", "level", "title", "body", "html", "short_message", "data", "image_url")
ADDRESSED = (Channel.EMAIL, Channel.SMS)


def delivered_on_write(channel: str) -> bool:
    """True for channels whose row is the delivery (in-app): written as sent."""
    return bool(getattr(backend_class(settings_key(channel)), "delivered_on_write", False))


@dataclass(frozen=True)
class WriteJob:
    platform_id: int
    source: str
    # The channels the platform allows (see `eligibility.platform_channels`).
    channels: tuple[str, ...]
    direct: frozenset[str]
    message: Message | None
    render: Renderer | None
    # No row of the source existed when the send began (see sql.insert_postgresql).
    fresh_source: bool = False
    # The caller's fallback for every channel of the send ("" : the types' own policies).
    fallback_channel: str = ""
    # Every channel the platform allows: fallbacks and escalations may only go there.
    allowed: tuple[str, ...] = ()
    # {(platform id, type): the type's Policy}, shared by the sends written together.
    type_policies: dict = field(default_factory=dict, compare=False, hash=False)
    # {type: the Policy this send's rows of that type are written under}.
    send_policies: dict = field(default_factory=dict, compare=False, hash=False)
    # Types whose plan a chunk of this write already carries: one upsert per send and type,
    # not one per chunk (parallel writers would queue on the plan row's lock).
    planned: set = field(default_factory=set, compare=False, hash=False)

    def policy(self, notification_type: str) -> Policy:
        """The fallback and escalation for this send's rows of `notification_type`."""
        found = self.send_policies.get(notification_type)
        if found is None:
            found = self.send_policies[notification_type] = send_policy(
                type_policy(self.type_policies, platform_id=self.platform_id, notification_type=notification_type),
                fallback_channel=self.fallback_channel,
                channels=self.channels,
                allowed=self.allowed,
            )
        return found


def address_for(channel: str, email: str, phone: str) -> str:
    if channel == Channel.EMAIL:
        return email or ""
    if channel == Channel.SMS:
        return phone or ""
    return ""


def missing_address_error(channel: str) -> str:
    return {Channel.EMAIL: "User has no email address", Channel.SMS: "User has no phone number"}.get(channel, "")


# The account fields a renderer is given loaded (`parts.Renderer`): the
# recipient's variables and addresses. A whole User row (password hash, dates,
# flags) for every recipient of a chunk was a tenth of a builder worker's time.
RENDERED_USER_FIELDS = ("id", "username", "email", "phone_number", "timezone")


def build_rows(job: WriteJob, chunk: Sequence[Recipient]) -> sql.Batch:
    """The rows of one chunk of recipients (see `sql.Batch`)."""
    now = timezone.now()
    user_ids = [r.user_id for r in chunk if r.user_id is not None]
    fixed = job.message.notification_type if job.render is None else None
    fixed_policy = job.policy(fixed) if fixed is not None and user_ids else None
    # The delivery rules that apply to this chunk; zones are read with the users for those that read them.
    ruled = rules.applicable(platform=job.platform_id, channels=job.channels) if rules.has_rules() else []
    zoned = any(r.needs_time_zone for r in ruled)
    zones: dict[int, str] | None = None
    if job.render is not None:
        users = sql.accounts(user_ids, fields=RENDERED_USER_FIELDS)
        known = {pk: (u.email, u.phone_number) for pk, u in users.items()}
        if zoned:
            zones = {pk: u.timezone for pk, u in users.items()}
    else:
        # Without a renderer nobody needs the account itself, and only email
        # and SMS (asked for, or fallen back to) need its addresses.
        wanted = (*job.channels, *(fixed_policy.fallback.values() if fixed_policy else ()))
        addresses = any(c in ADDRESSED for c in wanted)
        users = {}
        if zoned:
            known, zones = sql.contacts_and_zones(user_ids, addresses=addresses)
        else:
            known = sql.contacts(user_ids, addresses=addresses)
    by_address = eligibility.address_channels(job.channels)
    per_row_message = job.render is not None or any(r.context for r in chunk)
    col_user, col_key, col_address, col_channel, col_status, col_error = [], [], [], [], [], []
    messages, contexts = [], []
    # Rows whose delivery may fall back: (row index, recipient, fallback channel).
    unreachable: list[tuple[int, Recipient, str]] = []
    push_unknown: list[tuple[int, Recipient, str]] = []
    # The types of these rows that have a policy (their send's plan); per row only for a renderer.
    seen_types: set[str] = {fixed} if fixed is not None and fixed_policy else set()
    # One test per chunk, not per row, for the common send whose type has no fallback.
    may_fall_back = fixed is None or bool(fixed_policy and fixed_policy.fallback)
    # The bulk send (one message, accounts only, channels without addresses,
    # nothing to fall back to): its columns are built whole, not row by row.
    plain = (
        not per_row_message
        and not may_fall_back
        and not any(c in ADDRESSED for c in job.channels)
        and all(r.user_id is not None and not r.address for r in chunk)
    )
    if plain:
        kept = [r for r in chunk if r.user_id in known]  # the others were deleted between resolution and write
        col_user = [r.user_id for r in kept for _ in job.channels]
        col_key = [r.key() for r in kept for _ in job.channels]
        col_channel = list(job.channels) * len(kept)
        col_address = [""] * len(col_user)
        col_error = [""] * len(col_user)
        col_status = [SENT if c in job.direct else PENDING for c in job.channels] * len(kept)
    for r in () if plain else chunk:
        if r.user_id is None:
            channels = by_address[eligibility.address_kind(r.address)]
        elif r.user_id in known:
            channels = job.channels
        else:
            continue  # deleted between resolution and write
        email, phone = known.get(r.user_id, ("", ""))
        key = r.key()
        for channel in channels:
            address = r.address
            if not address and channel in ADDRESSED:
                address = address_for(channel, email, phone)
            error = "" if address or channel not in ADDRESSED else missing_address_error(channel)
            col_user.append(r.user_id)
            col_key.append(key)
            col_address.append(address)
            col_channel.append(channel)
            col_error.append(error)
            col_status.append(FAILED if error else SENT if channel in job.direct else PENDING)
            if per_row_message:
                msg = job.message if job.render is None else job.render(r, channel, users.get(r.user_id))
                messages.append(msg)
                contexts.append({**msg.context, **r.context} if r.context else msg.context)
            if not may_fall_back or r.user_id is None:
                continue  # no policy for this send's type; a bare address has no fallback either
            if fixed is None:
                policy = job.policy(messages[-1].notification_type)
                if not policy:
                    continue
                seen_types.add(messages[-1].notification_type)
            else:
                policy = fixed_policy
            to = policy.fallback.get(channel)
            if to and to not in channels:  # a row on `to` exists already: nothing more
                if error:
                    unreachable.append((len(col_key) - 1, r, to))
                elif channel == Channel.PUSH:
                    push_unknown.append((len(col_key) - 1, r, to))
    no_device: list[int] = []
    if push_unknown:
        # "Push, else ...": users without an active device on this platform fall back now, in bulk.
        devices = push_devices_by_recipient(recipients={(r.user_id, job.platform_id) for _, r, _ in push_unknown})
        for index, r, to in push_unknown:
            if not devices.get((r.user_id, job.platform_id)):
                col_status[index], col_error[index] = FAILED, NO_DEVICE
                no_device.append(index)
                unreachable.append((index, r, to))
    # Fallback rows, each its own delivery under the unique key (rule "fallback").
    primary_of: dict[int, int] = {}
    for index, r, to in sorted(unreachable, key=lambda u: u[0]):
        email, phone = known.get(r.user_id, ("", ""))
        address = address_for(to, email, phone)
        error = "" if address or to not in ADDRESSED else missing_address_error(to)
        primary_of[len(col_key)] = index
        col_user.append(r.user_id)
        col_key.append(col_key[index])
        col_address.append(address)
        col_channel.append(to)
        col_error.append(error)
        col_status.append(FAILED if error else SENT if delivered_on_write(to) else PENDING)
        if per_row_message:
            msg = messages[index] if job.render is None else job.render(r, to, users.get(r.user_id))
            messages.append(msg)
            contexts.append({**msg.context, **r.context} if r.context else msg.context)
    col_rule = [""] * (len(col_key) - len(primary_of)) + [FALLBACK] * len(primary_of) if primary_of else None
    col_units_failed = None
    if no_device:
        # Like the push backend's answer for a user without a device: failed, no token reached.
        col_units_failed = [1 if status == FAILED else 0 for status in col_status]
        for index in no_device:
            col_units_failed[index] = 0
    if eligibility.has_recipient_filters():
        # Opted-out recipients get no row, on every send path.
        types = (
            [m.notification_type for m in messages]
            if per_row_message
            else [job.message.notification_type] * len(col_key)
        )
        dropped = eligibility.recipients_dropped(
            platform=job.platform_id,
            rows=eligibility.Candidates(user_ids=col_user, channels=col_channel, types=types),
        )
        if dropped:
            keep = [
                i
                for i in range(len(col_key))
                # A fallback goes only with its delivery: opting out of push is not "push failed".
                if i not in dropped and (i not in primary_of or primary_of[i] not in dropped)
            ]
            columns = [col_user, col_key, col_address, col_channel, col_status, col_error]
            columns += [c for c in (col_rule, col_units_failed) if c is not None]
            if per_row_message:
                columns += [messages, contexts]
            for column in columns:
                column[:] = [column[i] for i in keep]
    count = len(col_key)
    decisions = (
        _rule(job, now, col_user, col_key, col_channel, col_status, messages if per_row_message else None, ruled, zones)
        if count and ruled
        else {}
    )
    batch = sql.Batch(count)
    batch.set("id", sql.uuid7s(count))
    batch.set("platform_id", job.platform_id)
    batch.set("user_id", col_user)
    batch.set("recipient_key", col_key)
    batch.set("address", col_address)
    batch.set("channel", col_channel)
    batch.set("source", job.source)
    if per_row_message:
        for name in _MESSAGE_FIELDS:
            batch.set(name, [getattr(m, name) for m in messages])
        batch.set("context", contexts)
    else:
        for name in _MESSAGE_FIELDS:
            batch.set(name, getattr(job.message, name))
        batch.set("context", job.message.context)
    batch.set("status", _UNREAD)
    batch.set("delivery_status", col_status)
    batch.set("error", col_error)
    rule_column = col_rule if col_rule is not None else [""] * count if decisions else ""
    if decisions:
        for i, decision in decisions.items():
            rule_column[i] = decision.rule  # a fallback row deferred or suppressed shows the rule that held it
    batch.set("rule", rule_column)
    batch.fell_back = col_rule is not None
    batch.set("provider_message_id", "")
    batch.set("claimed_until", None)
    batch.set("created_at", now)
    batch.set("updated_at", now)
    batch.set("read_at", None)
    # Columns that follow from the delivery status; one value each when all rows share it.
    pending_due = now + tuning.lease()  # the sweep steps in for a writer that died
    derived = {
        "attempts": {SENT: 1, FAILED: 0, PENDING: 0, SUPPRESSED: 0},
        "units_sent": {SENT: 1, FAILED: 0, PENDING: 0, SUPPRESSED: 0},
        "units_failed": {SENT: 0, FAILED: 1, PENDING: 0, SUPPRESSED: 0},
        "next_attempt_at": {SENT: None, FAILED: None, PENDING: pending_due, SUPPRESSED: None},
        "sent_at": {SENT: now, FAILED: None, PENDING: None, SUPPRESSED: None},
    }
    uniform = count and col_status.count(col_status[0]) == count
    for name, by_status in derived.items():
        batch.set(name, by_status[col_status[0]] if uniform else [by_status[v] for v in col_status])
    if col_units_failed is not None:
        batch.set("units_failed", col_units_failed)
    # What these rows' fallbacks and escalation are, for dispatch and the escalation sweep.
    batch.plans = [(job.platform_id, job.source, t, job.policy(t)) for t in sorted(seen_types - job.planned)]
    job.planned.update(seen_types)
    if decisions:
        # A deferred row waits for its rule's time, not for the writer's lease.
        due = batch.column("next_attempt_at")
        for i, decision in decisions.items():
            if decision.action == rules.DEFER:
                due[i] = decision.until
        batch.set("next_attempt_at", due)
    return batch


def _rule(
    job: WriteJob, now, col_user, col_key, col_channel, col_status, messages, ruled, zones
) -> dict[int, rules.Decision]:
    """Ask the delivery rules about the chunk's rows; apply their statuses to `col_status` in place."""
    if messages is None:
        types, critical = job.message.notification_type, job.message.critical
    else:
        types, critical = [m.notification_type for m in messages], [m.critical for m in messages]
    decisions = rules.decide(
        platform=job.platform_id,
        now=now,
        channels=job.channels,
        user_ids=col_user,
        keys=col_key,
        row_channels=col_channel,
        types=types,
        critical=critical,
        skip={i for i, status in enumerate(col_status) if status == FAILED},
        rules=ruled,
        time_zones=zones,
    )
    for i, decision in decisions.items():
        if decision.action == rules.DEFER:
            col_status[i] = PENDING
        elif decision.action == rules.SUPPRESS:
            col_status[i] = SUPPRESSED
    return decisions
