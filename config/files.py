"""Static files and uploaded media, served by the project itself.

Static files: WhiteNoise, from STATIC_ROOT (`run.py` runs collectstatic):
hashed names, gzip and Brotli copies, a year of caching.

Media: uploaded files (push images, email attachments) from MEDIA_ROOT, only
while the default storage is the local disk (`settings.SERVE_MEDIA`): the
embedded setup has no web server in front of it, and a device must be able to
fetch the image URL a push carries. With a bucket (django-storages) the
storage's own URLs are handed out and the media route is not installed.

Both answer with file responses. Under ASGI Django would read a synchronous
file iterator whole into memory (and warn each time); the responses here
stream the file in chunks read off the event loop instead.
"""

from __future__ import annotations

import asyncio

from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.views.decorators.http import require_safe
from django.views.static import serve
from whitenoise.middleware import WhiteNoiseMiddleware

CHUNK_SIZE = 64 * 1024
# Shown in place: what a push or an email links to. Anything else (an email
# attachment could be HTML or SVG) is a download, so an upload can never run
# script on this origin.
INLINE_TYPES = {"image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf", "text/plain"}


async def _read_chunks(file):
    if file is None:
        return
    while chunk := await asyncio.to_thread(file.read, CHUNK_SIZE):
        yield chunk


def stream_for_asgi(request, response):
    """Give an ASGI server the file in chunks; WSGI and the test client keep the sync iterator.

    The response still closes the file when it is closed (FileResponse
    registered it when it was built).
    """
    if isinstance(request, ASGIRequest) and response.streaming:
        response.streaming_content = _read_chunks(getattr(response, "file_to_stream", None))
    return response


class StaticFilesMiddleware(WhiteNoiseMiddleware):
    """WhiteNoise, streaming its files asynchronously under ASGI."""

    def serve(self, static_file, request):
        return stream_for_asgi(request, super().serve(static_file, request))


@require_safe
def media_serve(request, path: str):
    """A file under MEDIA_ROOT.

    Django's `static.serve` does the file work: the path is normalised and
    joined under MEDIA_ROOT with `safe_join` (`..` is a 400, never a file
    outside), a directory is a 404, the type comes from the name, and
    `If-Modified-Since` answers 304.
    """
    response = serve(request, path, document_root=settings.MEDIA_ROOT)
    if response.status_code == 200:
        content_type = response.get("Content-Type", "").split(";")[0].strip()
        if content_type not in INLINE_TYPES:
            response["Content-Disposition"] = "attachment"
        response["Content-Security-Policy"] = "default-src 'none'; sandbox"
        response["X-Content-Type-Options"] = "nosniff"
        response["Cache-Control"] = "public, max-age=3600"
    return stream_for_asgi(request, response)
