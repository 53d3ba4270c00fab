"""Tokens never reach a log line, whatever their spelling; other lines pass unchanged."""

import logging

import pytest

from notifications.logging import RedactTokensFilter, redact


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("GET /api/v1/ws/connect?token=abc123secret&platform=x", "GET /api/v1/ws/connect?token=[redacted]&platform=x"),
        ("GET /api/v1/ws/connect?TOKEN=abc123secret", "GET /api/v1/ws/connect?TOKEN=[redacted]"),
        ("Authorization: Bearer abcdefgh12345678", "Authorization: Bearer [redacted]"),
        ("Authorization: Token abcdefgh12345678", "Authorization: Token [redacted]"),
        ("GET /api/v1/notifications?limit=20&offset=0", "GET /api/v1/notifications?limit=20&offset=0"),
    ],
)
def test_redact(line, expected):
    assert redact(line) == expected


def test_the_filter_redacts_arguments_and_message():
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s"', ("127.0.0.1", "GET", "/x?token=s3cr3t"), None
    )
    assert RedactTokensFilter().filter(record)
    assert record.getMessage() == '127.0.0.1 - "GET /x?token=[redacted]"'
