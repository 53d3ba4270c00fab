"""What a newcomer reads first: the start banner's URLs and token, and quiet console deliveries."""

from __future__ import annotations

import importlib.util
import io
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command

from notifications.models import AuthToken


def _run_module():
    spec = importlib.util.spec_from_file_location("run_script", Path(settings.BASE_DIR) / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("host", "port", "url"),
    [
        ("127.0.0.1", "8765", "http://127.0.0.1:8765"),
        ("0.0.0.0", "9000", "http://127.0.0.1:9000"),
        ("::", "9000", "http://[::1]:9000"),
        ("notify.internal", "80", "http://notify.internal:80"),
    ],
)
def test_banner_base_url_is_where_the_server_listens(monkeypatch, host, port, url):
    monkeypatch.delenv("PUBLIC_BASE_URL", raising=False)
    assert _run_module().public_base_url(host, port) == url


def test_banner_prefers_the_public_base_url(monkeypatch):
    monkeypatch.setenv("PUBLIC_BASE_URL", "https://notify.example.com/")
    assert _run_module().public_base_url("0.0.0.0", "8000") == "https://notify.example.com"


@pytest.mark.django_db
def test_bootstrap_prints_the_real_port_and_token():
    out = io.StringIO()
    call_command("bootstrap", "--base-url", "http://127.0.0.1:8765", stdout=out)
    text = out.getvalue()
    token = re.search(r"admin token:\s+(\S+)", text).group(1)
    assert AuthToken.objects.filter(revoked_at__isnull=True, name="bootstrap").count() == 1
    assert f"ws://127.0.0.1:8765/api/v1/ws/connect?token={token}" in text
    assert f"curl -H 'Authorization: Bearer {token}' http://127.0.0.1:8765/healthz" in text
    assert "<token>" not in text and ":8000" not in text


def test_what_a_worker_prints_is_logged_at_info():
    """The console backends print each delivery; a Celery worker logs prints at INFO, not WARNING."""
    from config.celery import app

    assert app.conf.worker_redirect_stdouts_level == "INFO"
