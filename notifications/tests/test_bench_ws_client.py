"""The benchmark's lean WebSocket client (bench/ws_client.py) speaks RFC 6455 correctly.

The WebSocket benchmark's figures are only as good as its client: it must do
the real handshake, read every frame form the server may send and mask what it
sends, or the server would refuse it (and the benchmark measure nothing).
"""

from __future__ import annotations

import asyncio
import json
import struct

import pytest

from bench import ws_client
from notifications.models import AuthToken


class _Transport:
    """What the protocol writes, for the frame tests (no network)."""

    def __init__(self):
        self.written: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


def _server_frame(opcode: int, payload: bytes, *, fin: bool = True) -> bytes:
    first = (0x80 if fin else 0) | opcode
    if len(payload) < 126:
        return struct.pack("!BB", first, len(payload)) + payload
    if len(payload) < 1 << 16:
        return struct.pack("!BBH", first, 126, len(payload)) + payload
    return struct.pack("!BBQ", first, 127, len(payload)) + payload


def _unmask(frame: bytes) -> tuple[int, bytes]:
    assert frame[1] & 0x80, "a client frame must be masked"
    length, offset = frame[1] & 0x7F, 2
    if length == 126:
        length, offset = struct.unpack_from("!H", frame, 2)[0], 4
    elif length == 127:
        length, offset = struct.unpack_from("!Q", frame, 2)[0], 10
    mask, data = frame[offset : offset + 4], frame[offset + 4 : offset + 4 + length]
    return frame[0] & 0x0F, bytes(b ^ mask[i % 4] for i, b in enumerate(data))


def test_frames_of_every_length_fragments_ping_and_close():
    async def scenario():
        texts = []
        sock = ws_client.LeanSocket(0, "h", "/", lambda i, text, now: texts.append(text))
        sock.transport = _Transport()
        sock.upgraded = True
        small, medium, large = "a" * 10, "b" * 300, "c" * 70_000
        wire = b"".join(
            [
                _server_frame(ws_client.OP_TEXT, small.encode()),
                _server_frame(ws_client.OP_TEXT, medium.encode()),
                _server_frame(ws_client.OP_TEXT, large.encode()),
                _server_frame(ws_client.OP_TEXT, b"fir", fin=False),
                _server_frame(ws_client.OP_PING, b"p"),
                _server_frame(ws_client.OP_CONTINUATION, b"st"),
                _server_frame(ws_client.OP_CLOSE, struct.pack("!H", 4401)),
            ]
        )
        # In pieces that split headers and payloads anywhere.
        for start in range(0, len(wire), 7):
            sock.data_received(wire[start : start + 7])
        sent = [_unmask(frame) for frame in sock.transport.written]
        return texts, sock.close_code, sent, sock.transport.closed

    texts, code, sent, closed = asyncio.run(scenario())
    assert texts == ["a" * 10, "b" * 300, "c" * 70_000, "first"]
    assert code == 4401
    assert sent == [(ws_client.OP_PONG, b"p"), (ws_client.OP_CLOSE, struct.pack("!H", 4401))]
    assert closed


def test_client_frames_are_masked_at_every_length():
    for size in (0, 5, 125, 126, 65_535, 65_536):
        payload = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
        assert _unmask(ws_client.client_frame(ws_client.OP_TEXT, payload)) == (ws_client.OP_TEXT, payload)


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_it_opens_a_socket_of_the_real_server_and_is_refused_without_a_token(live_url, platform, make_user):
    url = live_url.replace("http://", "ws://", 1) + "/api/v1/ws/connect"
    _, raw = AuthToken.issue(user=make_user("jane"))

    async def scenario():
        texts = []
        sock = await ws_client.connect(f"{url}?token={raw}", 0, lambda i, text, now: texts.append(text), timeout=30)
        sock.send_text(json.dumps({"type": "PING"}))
        for _ in range(600):  # until the answer is in (a loaded machine may take a while)
            if texts:
                break
            await asyncio.sleep(0.05)
        await sock.close()
        refused = None
        try:
            await ws_client.connect(f"{url}?token=not-a-token", 1, lambda *args: None, timeout=30)
        except ws_client.HandshakeError as error:
            refused = str(error)
        return texts, sock.close_code, refused

    texts, code, refused = asyncio.run(scenario())
    assert [json.loads(text) for text in texts] == [{"type": "PONG"}]
    assert code == 1000
    assert refused is not None and " 403" in refused
