"""`/static/` served by Django from the apps' static directories (SERVE_STATIC_FROM_FINDERS).

For `python3 run.py` and the test suite, where nothing stands in front of the
ASGI server. Files are found with django.contrib.staticfiles' finders (never a
path outside them) and answered whole: they are small, and under ASGI Django
serves a FileResponse (a synchronous iterator) by reading it all anyway, with a
warning on every response (which the test suite turns into an error,
truncating the body).
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from django.contrib.staticfiles import finders
from django.http import Http404, HttpResponse, HttpResponseNotModified
from django.utils.http import http_date
from django.views.decorators.http import require_safe


@require_safe
def serve(request, path: str):
    found = finders.find(path)
    if not found or not Path(found).is_file():
        raise Http404(path)
    file = Path(found)
    stat = file.stat()
    etag = f'"{stat.st_mtime_ns:x}-{stat.st_size:x}"'
    if request.headers.get("If-None-Match") == etag:
        return HttpResponseNotModified(headers={"ETag": etag})
    content_type, encoding = mimetypes.guess_type(file.name)
    response = HttpResponse(file.read_bytes(), content_type=content_type or "application/octet-stream")
    if encoding:
        response.headers["Content-Encoding"] = encoding
    response.headers["ETag"] = etag
    response.headers["Last-Modified"] = http_date(stat.st_mtime)
    # Revalidate every time: a changed script reaches pages at once.
    response.headers["Cache-Control"] = "no-cache"
    return response
