"""Email over a real SMTP conversation with aiosmtpd servers on loopback."""

from __future__ import annotations

import socket

import pytest
from django.core.files.base import ContentFile

from notifications.backends.email import EmailBackend
from notifications.models import Attachment, Channel, DeliveryStatus, Notification, PlatformSMTPSettings
from notifications.pipeline import Message, Recipient, notification_send
from notifications.pipeline.write import deliveries_write
from notifications.tests.factories import PlatformFactory
from notifications.tests.fakes import SMTPServer, backend_settings

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("loopback_only")]

EMAIL_BACKEND = "notifications.backends.email.EmailBackend"


@pytest.fixture
def project_smtp(settings, smtp_server, tmp_path):
    """The project's own mail server is `smtp_server`; the email channel uses the real backend."""
    for name, value in smtp_server.django_settings().items():
        setattr(settings, name, value)
    settings.NOTIFICATION_BACKENDS = backend_settings(settings.NOTIFICATION_BACKENDS, email=EMAIL_BACKEND)
    settings.MEDIA_ROOT = tmp_path
    return smtp_server


@pytest.fixture(autouse=True)
def _platform_smtp_on_loopback(settings):
    # A platform's own SMTP server passes the same address and port checks as
    # the live SMTP test; the servers of these tests sit on loopback.
    settings.SMTP_TEST_ALLOWED_HOSTS = ["127.0.0.1"]
    settings.SMTP_TEST_EXTRA_PORTS = []


def platform_smtp(platform, server: SMTPServer, *, password="s3cret-pass", **fields) -> PlatformSMTPSettings:
    from django.conf import settings

    settings.SMTP_TEST_EXTRA_PORTS.append(server.port)
    smtp = PlatformSMTPSettings(
        platform=platform,
        host=server.host,
        port=server.port,
        username="mailer",
        use_tls=False,
        timeout=5,
        **fields,
    )
    smtp.password = password
    smtp.save()
    return smtp


def rows(source: str) -> dict[str, Notification]:
    return {n.address: n for n in Notification.objects.filter(source=source)}


def test_mail_carries_headers_text_html_and_attachment(project_smtp, platform, make_user):
    platform.from_email = "learn@acme.example"
    platform.save()
    jane = make_user("jane")
    Attachment.objects.create(
        source="bulk:week3",
        file=ContentFile(b"%PDF-1.4 week three", name="syllabus.pdf"),
        filename="syllabus.pdf",
        content_type="application/pdf",
    )

    result = notification_send(
        platform=platform,
        source="bulk:week3",
        channels=["email"],
        recipients=[Recipient(user_id=jane.id), Recipient(address="guest@example.org")],
        message=Message(title="Week 3 is open", body="Read chapter 3.", html="<p>Read <b>chapter 3</b>.</p>"),
    )

    assert (result.sent, result.failed, result.pending) == (2, 0, 0)
    by_rcpt = {mail.rcpt_tos[0]: mail for mail in project_smtp.mails}
    assert set(by_rcpt) == {"jane@example.com", "guest@example.org"}
    # Both recipients went over one SMTP connection.
    assert project_smtp.connections() == 1

    mail = by_rcpt["jane@example.com"]
    assert mail.mail_from == "learn@acme.example"
    msg = mail.message
    assert msg["From"] == "Acme Learning <learn@acme.example>"
    assert msg["To"] == "jane@example.com"
    assert msg["Subject"] == "Week 3 is open"
    assert msg["Reply-To"] == "support@acme-learning.example.com"
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg.get_body(("plain",)).get_content().strip() == "Read chapter 3."
    assert msg.get_body(("html",)).get_content().strip() == "<p>Read <b>chapter 3</b>.</p>"
    [attachment] = list(msg.iter_attachments())
    assert attachment.get_filename() == "syllabus.pdf"
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_content() == b"%PDF-1.4 week three"

    row = rows("bulk:week3")["jane@example.com"]
    assert row.delivery_status == DeliveryStatus.SENT
    assert row.provider_message_id == msg["Message-ID"]
    assert msg["X-Notification-ID"] == str(row.id)


def test_from_falls_back_to_default_from_email(project_smtp, platform, settings):
    settings.DEFAULT_FROM_EMAIL = "notifications@notify.example"
    notification_send(
        platform=platform,
        source="bulk:plain",
        channels=["email"],
        recipients=[Recipient(address="guest@example.org")],
        message=Message(title="Hello", html="<p>Only &amp; HTML</p>"),
    )
    [mail] = project_smtp.mails
    assert mail.message["From"] == "Acme Learning <notifications@notify.example>"
    # A message with only HTML still gets a readable text part.
    assert mail.message.get_body(("plain",)).get_content().strip() == "Only & HTML"


def test_platform_smtp_settings_route_that_platforms_mail(project_smtp, smtp_server_auth, platform, make_user):
    other = PlatformFactory(key="globex")
    platform_smtp(platform, smtp_server_auth, from_email="noreply@mail.acme.example")
    jane = make_user("jane")
    bob = make_user("bob", plat=other)

    acme = notification_send(
        platform=platform,
        source="bulk:acme",
        channels=["email"],
        recipients=[Recipient(user_id=jane.id)],
        message=Message(title="From Acme", body="Hi"),
    )
    globex = notification_send(
        platform=other,
        source="bulk:globex",
        channels=["email"],
        recipients=[Recipient(user_id=bob.id)],
        message=Message(title="From Globex", body="Hi"),
    )

    assert acme.sent == globex.sent == 1
    [acme_mail] = smtp_server_auth.mails
    assert acme_mail.rcpt_tos == ["jane@example.com"]
    assert acme_mail.login == "mailer"
    assert acme_mail.message["From"] == "Acme Learning <noreply@mail.acme.example>"
    # The project's server only saw the platform without its own SMTP settings.
    [globex_mail] = project_smtp.mails
    assert globex_mail.rcpt_tos == ["bob@example.com"]


def test_inactive_platform_smtp_settings_are_ignored(project_smtp, smtp_server_auth, platform):
    platform_smtp(platform, smtp_server_auth, is_active=False)
    notification_send(
        platform=platform,
        source="bulk:inactive",
        channels=["email"],
        recipients=[Recipient(address="guest@example.org")],
        message=Message(title="Hi", body="Hi"),
    )
    assert smtp_server_auth.mails == []
    assert len(project_smtp.mails) == 1


def test_auth_login_mechanism(project_smtp, platform):
    with SMTPServer(credentials=("mailer", "s3cret-pass"), mechanisms=("LOGIN",)) as server:
        platform_smtp(platform, server)
        result = notification_send(
            platform=platform,
            source="bulk:login",
            channels=["email"],
            recipients=[Recipient(address="guest@example.org")],
            message=Message(title="Hi", body="Hi"),
        )
        assert result.sent == 1
        assert [m.login for m in server.mails] == ["mailer"]
        assert [(mechanism, ok) for _, mechanism, _, ok in server.auth_attempts] == [("LOGIN", True)]


def test_wrong_platform_password_fails_every_delivery_without_retry(project_smtp, smtp_server_auth, platform):
    platform_smtp(platform, smtp_server_auth, password="wrong")
    result = notification_send(
        platform=platform,
        source="bulk:badauth",
        channels=["email"],
        recipients=[Recipient(address="a@example.org"), Recipient(address="b@example.org")],
        message=Message(title="Hi", body="Hi"),
    )
    assert (result.sent, result.failed) == (0, 2)
    for row in rows("bulk:badauth").values():
        assert row.attempts == 1
        assert row.error.startswith("Login refused by SMTP server 127.0.0.1:") and "535" in row.error
    # One connection tried to log in (smtplib tries each offered mechanism),
    # for the whole batch, not one per recipient.
    attempts = smtp_server_auth.auth_attempts
    assert {(login, ok) for login, _, _, ok in attempts} == {("mailer", False)}
    assert len({peer for _, _, peer, _ in attempts}) == 1
    assert smtp_server_auth.mails == [] and project_smtp.mails == []


def test_refused_recipient_is_a_failed_delivery_with_the_smtp_reason(project_smtp, platform, make_user):
    project_smtp.refuse("nobody@example.org")
    jane = make_user("jane")
    result = notification_send(
        platform=platform,
        source="bulk:refused",
        channels=["email"],
        recipients=[Recipient(address="nobody@example.org"), Recipient(user_id=jane.id)],
        message=Message(title="Hi", body="Hi"),
    )
    assert (result.sent, result.failed) == (1, 1)
    refused = rows("bulk:refused")["nobody@example.org"]
    assert refused.delivery_status == DeliveryStatus.FAILED
    assert refused.attempts == 1  # 5xx: final, not retried
    assert "550" in refused.error and "No such user here" in refused.error
    assert [m.rcpt_tos for m in project_smtp.mails] == [["jane@example.com"]]


def test_user_without_email_is_failed_not_an_exception(project_smtp, platform, make_user):
    nomail = make_user("nomail", email="")
    result = notification_send(
        platform=platform,
        source="bulk:nomail",
        channels=["email"],
        recipients=[Recipient(user_id=nomail.id)],
        message=Message(title="Hi", body="Hi"),
    )
    assert (result.sent, result.failed) == (0, 1)
    assert project_smtp.mails == []


# -- the backend on its own: what each SMTP outcome means for a retry ---------------


def write(platform, source, addresses):
    deliveries_write(
        platform=platform,
        source=source,
        channels=["email"],
        recipients=[Recipient(address=a) for a in addresses],
        message=Message(title="Hi", body="Hi"),
    )
    return list(Notification.objects.filter(source=source).order_by("address"))


def test_temporary_refusal_is_retryable_and_permanent_is_not(project_smtp, platform):
    project_smtp.refuse("busy@example.org", "451 4.2.1 Mailbox busy, try again later")
    project_smtp.refuse("gone@example.org", "550 5.1.1 Mailbox does not exist")
    deliveries = write(platform, "direct:codes", ["busy@example.org", "gone@example.org", "ok@example.org"])

    results = {d.address: r for d, r in EmailBackend().send(deliveries)}

    assert results["busy@example.org"].retryable and "451" in results["busy@example.org"].error
    assert not results["gone@example.org"].retryable and "550" in results["gone@example.org"].error
    assert results["ok@example.org"].ok


def test_server_closing_the_channel_is_retryable_and_the_next_recipient_reconnects(project_smtp, platform):
    project_smtp.refuse("a@example.org", "421 4.3.2 Service shutting down, closing channel")
    deliveries = write(platform, "direct:421", ["a@example.org", "b@example.org"])

    results = [r for _, r in EmailBackend().send(deliveries)]

    assert results[0].retryable and "421" in results[0].error
    assert results[1].ok
    assert [m.rcpt_tos for m in project_smtp.mails] == [["b@example.org"]]


def test_console_mail_backend_prints_the_message_in_development(settings, platform, capsys):
    settings.EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
    deliveries = write(platform, "direct:console", ["dev@example.org"])
    [(_, result)] = list(EmailBackend().send(deliveries))
    assert result.ok
    out = capsys.readouterr().out
    assert "To: dev@example.org" in out and "Subject: Hi" in out


def test_unreachable_server_is_retryable(settings, platform, project_smtp):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    settings.EMAIL_PORT = closed_port
    deliveries = write(platform, "direct:down", ["a@example.org", "b@example.org"])

    results = [r for _, r in EmailBackend().send(deliveries)]

    assert [r.ok for r in results] == [False, False]
    assert all(r.retryable and "Cannot connect" in r.error for r in results)


def test_bad_rows_fail_one_by_one(project_smtp, platform):
    deliveries = write(platform, "direct:bad", ["a-bad-address", "b@example.org", "c@example.org"])
    deliveries[2].address = ""
    results = [r for _, r in EmailBackend().send(deliveries)]
    assert [(r.ok, r.error) for r in results] == [
        (False, "Invalid email address: 'a-bad-address'"),
        (True, ""),
        (False, "No email address"),
    ]
    assert [m.rcpt_tos for m in project_smtp.mails] == [["b@example.org"]]


def test_missing_attachment_fails_the_delivery(project_smtp, platform, tmp_path):
    Attachment.objects.create(source="direct:lost", file="attachments/gone.pdf", filename="gone.pdf")
    deliveries = write(platform, "direct:lost", ["ok@example.org"])
    [(_, result)] = list(EmailBackend().send(deliveries))
    assert not result.ok and not result.retryable
    assert "gone.pdf" in result.error and "missing" in result.error
    assert project_smtp.mails == []


def test_undecryptable_platform_password_is_reported(project_smtp, smtp_server_auth, platform):
    smtp = platform_smtp(platform, smtp_server_auth)
    PlatformSMTPSettings.objects.filter(pk=smtp.pk).update(password_encrypted="not-a-fernet-token")
    deliveries = write(platform, "direct:rotated", ["ok@example.org"])
    [(_, result)] = list(EmailBackend().send(deliveries))
    assert not result.ok and "enter it again" in result.error


def test_platform_smtp_on_an_internal_address_is_refused_without_connecting(project_smtp, platform, make_user):
    PlatformSMTPSettings.objects.create(platform=platform, host="10.0.0.1", port=587, use_tls=False, timeout=1)
    user = make_user("jane", email="jane@example.com")
    result = notification_send(
        platform=platform,
        source="bulk:internal-smtp",
        channels=[Channel.EMAIL],
        recipients=[Recipient(user_id=user.pk)],
        message=Message(title="Hi", body="Hello"),
    )
    assert (result.sent, result.failed) == (0, 1)
    row = Notification.objects.get(source="bulk:internal-smtp")
    assert "is not allowed" in row.error
    assert project_smtp.mails == []
