"""Static files through WhiteNoise as `run.py` serves them, and uploaded media.

The suite's settings let WhiteNoise find static files in the apps (no
collectstatic before every run); the first tests collect with the production
storage into a temporary STATIC_ROOT, as `run.py` does, and fetch what the
admin and Swagger UI pages link to.
"""

from __future__ import annotations

import re

import pytest
import requests
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.test import Client

from notifications.tests.bulk_helpers import PNG, V1

# Closing a response sends request_finished, which looks at the database connection.
pytestmark = pytest.mark.django_db

PRODUCTION_STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}


@pytest.fixture(scope="module")
def collected(tmp_path_factory):
    """STATIC_ROOT filled by `collectstatic` with the production storage (hashed, gzip and Brotli)."""
    from django.test import override_settings

    root = tmp_path_factory.mktemp("staticfiles")
    with override_settings(STATIC_ROOT=root, STORAGES=PRODUCTION_STORAGES):
        call_command("collectstatic", "--no-input", verbosity=0)
    return root


@pytest.fixture
def production_static(collected, settings):
    settings.STATIC_ROOT = collected
    settings.STORAGES = PRODUCTION_STORAGES
    settings.DEBUG = False
    settings.WHITENOISE_USE_FINDERS = False
    settings.WHITENOISE_AUTOREFRESH = False
    # A new client builds a new middleware chain: WhiteNoise indexes STATIC_ROOT as it starts.
    return Client()


def fetch(client, path: str, **headers):
    """GET and read the whole body; file responses are closed (their files too)."""
    r = client.get(path, **headers)
    r.body = b"".join(r.streaming_content) if r.streaming else r.content
    r.close()
    return r


def _assets(html: str) -> list[str]:
    return re.findall(r'(?:href|src)="(/static/[^"]+)"', html)


def test_admin_login_page_assets_are_hashed_compressed_and_cached(production_static):
    client = production_static
    page = client.get("/admin/login/")
    assert page.status_code == 200
    assets = _assets(page.content.decode())
    css = [a for a in assets if a.endswith(".css")]
    assert css and all(re.search(r"\.[0-9a-f]{12}\.css$", a) for a in css)
    for asset in assets:
        r = fetch(client, asset, HTTP_ACCEPT_ENCODING="gzip")
        assert r.status_code == 200, asset
        assert "immutable" in r["Cache-Control"] and "max-age=315360000" in r["Cache-Control"]
    r = fetch(client, css[0], HTTP_ACCEPT_ENCODING="gzip, br")
    assert r["Content-Type"].startswith("text/css") and r["Content-Encoding"] in {"br", "gzip"}


def test_swagger_ui_loads_offline_from_collected_files(production_static):
    client = production_static
    page = client.get("/api/docs/")
    assert page.status_code == 200
    assets = _assets(page.content.decode())
    assert any("swagger-ui-bundle" in a for a in assets) and any(a.endswith(".css") for a in assets)
    for asset in assets:
        assert fetch(client, asset).status_code == 200, asset
    # Nothing is fetched from a CDN.
    assert "cdn.jsdelivr" not in page.content.decode() and "unpkg.com" not in page.content.decode()


def test_unknown_static_file_is_a_404(production_static):
    assert fetch(production_static, "/static/admin/css/nope.css").status_code == 404


# --- Media ----------------------------------------------------------------------


@pytest.fixture
def stored():
    names = []

    def _store(name: str, content: bytes) -> str:
        names.append(default_storage.save(name, ContentFile(content)))
        return names[-1]

    yield _store
    for name in names:
        default_storage.delete(name)


def test_media_file_is_served_with_its_type(client, stored):
    name = stored("notification_images/served.png", PNG)
    r = fetch(client, f"/media/{name}")
    assert r.status_code == 200 and r.body == PNG
    assert r["Content-Type"] == "image/png" and not r.get("Content-Disposition", "").startswith("attachment")
    assert r["X-Content-Type-Options"] == "nosniff"


def test_media_that_could_run_script_is_a_download(client, stored):
    name = stored("attachments/page.html", b"<script>alert(1)</script>")
    r = fetch(client, f"/media/{name}")
    assert r.status_code == 200 and r["Content-Disposition"] == "attachment"
    assert "sandbox" in r["Content-Security-Policy"]


@pytest.mark.parametrize("path", ["../.secret_key", "..%2f.secret_key", "notification_images/../../.secret_key"])
def test_media_path_traversal_never_leaves_media_root(client, path):
    r = fetch(client, f"/media/{path}")
    assert r.status_code in (400, 404)
    with open(".secret_key", "rb") as f:
        assert f.read().strip() not in r.body


def test_media_missing_file_and_writes(client):
    assert fetch(client, "/media/notification_images/missing.png").status_code == 404
    assert client.post("/media/notification_images/missing.png").status_code == 405


@pytest.mark.integration
def test_push_image_url_from_bulk_push_is_fetchable_over_http(live_url, make_user):
    """The image URL bulk-push hands to devices answers with the uploaded bytes."""
    from notifications.models import AuthToken

    admin = make_user("pushadmin", role="ADMIN", admin=True)
    make_user("learner1", role="STUDENT")
    _, token = AuthToken.issue(user=admin, name="test")
    upload = SimpleUploadedFile("thumb.png", PNG, content_type="image/png")
    r = requests.post(
        f"{live_url}{V1}/bulk-push",
        headers={"Authorization": f"Bearer {token}"},
        data={"title": "Practice", "message": "Today's practice", "role": "STUDENT"},
        files={"file": (upload.name, upload.read(), "image/png")},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    image = r.json()["data"]["image"]
    assert image.startswith(f"{live_url}/media/notification_images/")
    fetched = requests.get(image, timeout=10)
    assert fetched.status_code == 200 and fetched.content == PNG
    assert fetched.headers["Content-Type"] == "image/png"
    default_storage.delete(image.removeprefix(f"{live_url}/media/"))


def test_storage_is_a_setting_from_the_environment():
    """MEDIA_STORAGE_BACKEND/OPTIONS become STORAGES["default"]; a bucket turns the media route off."""
    import json
    import os
    import subprocess
    import sys

    code = (
        "import json; from config.settings import base as s; print(json.dumps([s.STORAGES['default'], s.SERVE_MEDIA]))"
    )
    env = {
        **os.environ,
        "MEDIA_STORAGE_BACKEND": "storages.backends.s3.S3Storage",
        "MEDIA_STORAGE_OPTIONS": '{"bucket_name": "notify-media", "querystring_auth": false}',
    }
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    storage, serve = json.loads(out)
    assert storage == {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {"bucket_name": "notify-media", "querystring_auth": False},
    }
    assert serve is False


def test_push_image_url_comes_from_the_configured_storage(api, make_user, settings):
    """With another storage (a bucket behind a CDN) the URL handed out is the storage's own."""
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"base_url": "https://media.example.com/notify/"},
        },
    }
    admin = make_user("pushadmin", role="ADMIN", admin=True)
    make_user("learner1", role="STUDENT")
    r = api(admin).post(
        f"{V1}/bulk-push",
        {"title": "T", "message": "M", "role": "STUDENT", "file": SimpleUploadedFile("a.png", PNG)},
        format="multipart",
    )
    image = r.json()["data"]["image"]
    assert image.startswith("https://media.example.com/notify/notification_images/")
    default_storage.delete(image.removeprefix("https://media.example.com/notify/"))


@pytest.mark.integration
def test_static_files_stream_over_asgi_whole_in_ranges_and_as_head(live_url):
    """Under the ASGI server files are streamed in chunks; ranges and HEAD behave as WhiteNoise says."""
    url = f"{live_url}/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js"
    whole = requests.get(url, timeout=30)
    assert whole.status_code == 200 and len(whole.content) > 500_000
    assert int(whole.headers["Content-Length"]) == len(whole.content)
    part = requests.get(url, headers={"Range": "bytes=100-199"}, timeout=10)
    assert part.status_code == 206 and part.content == whole.content[100:200]
    head = requests.head(url, timeout=10)
    assert head.status_code == 200 and head.headers["Content-Length"] == whole.headers["Content-Length"]
