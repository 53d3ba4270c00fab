"""A lean WebSocket client for the benchmark: an asyncio Protocol, no library.

The `websockets` client spends about a millisecond of CPU per connect (its
handshake objects, a task per connection, its keepalive and queue machinery):
with thousands of sockets opened from the same two cores as the server, the
benchmark measured its own client as much as the server. This one does what
the benchmark needs and nothing else, in a few microseconds per frame:

- the RFC 6455 opening handshake, with a fresh Sec-WebSocket-Key and the
  server's Sec-WebSocket-Accept checked; it offers no extension (the server
  must not compress: permessage-deflate needs the `websockets` client);
- server frames of any length (7-bit, 16-bit and 64-bit lengths), fragmented
  messages, ping (answered with pong) and close (answered, then the TCP
  connection ends); a masked server frame or a reserved bit is a protocol error;
- every frame it sends masked with a fresh key, as a client must.

`on_text(index, text, arrived_at)` gets every complete text message with the
wall-clock time its last byte was read.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import struct
import time
from collections.abc import Callable
from urllib.parse import urlsplit

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


class HandshakeError(Exception):
    pass


def accept_for(key: bytes) -> bytes:
    return base64.b64encode(hashlib.sha1(key + GUID).digest())


def client_frame(opcode: int, payload: bytes) -> bytes:
    """One final frame, masked with a fresh key (RFC 6455 5.3)."""
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
    elif length < 1 << 16:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
    mask = os.urandom(4)
    if not payload:
        return header + mask
    # XOR with the key repeated over the payload, as one big-integer operation.
    repeated = (mask * (length // 4 + 1))[:length]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(length, "big")
    return header + mask + masked


class LeanSocket(asyncio.Protocol):
    def __init__(self, index: int, host: str, target: str, on_text: Callable[[int, str, float], None]):
        self.index = index
        self.key = base64.b64encode(os.urandom(16))
        self.request = (
            f"GET {target} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {self.key.decode()}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
        self.on_text = on_text
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.upgraded = False
        self.opened: asyncio.Future = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future = asyncio.get_running_loop().create_future()
        self.fragments: list[bytes] = []
        self.fragment_opcode = 0
        self.close_sent = False
        self.close_code: int | None = None

    # -- asyncio.Protocol

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.upgraded:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head, self.buffer = bytes(self.buffer[:end]), self.buffer[end + 4 :]
            try:
                self._check_response(head)
            except HandshakeError as error:
                self._fail(error)
                return
            self.upgraded = True
            self.opened.set_result(None)
        self._read_frames(time.time())

    def connection_lost(self, exc) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc or HandshakeError("connection closed during the handshake"))
        if not self.closed.done():
            self.closed.set_result(self.close_code)

    # -- the protocol

    def _check_response(self, head: bytes) -> None:
        lines = head.decode("latin-1").split("\r\n")
        status = lines[0].split(" ", 2)
        if len(status) < 2 or status[1] != "101":
            raise HandshakeError(lines[0])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if headers.get("upgrade", "").lower() != "websocket" or "upgrade" not in headers.get("connection", "").lower():
            raise HandshakeError("not an upgrade to websocket")
        if headers.get("sec-websocket-accept", "").encode() != accept_for(self.key):
            raise HandshakeError("wrong Sec-WebSocket-Accept")
        if headers.get("sec-websocket-extensions"):
            raise HandshakeError("the server chose an extension this client did not offer")

    def _read_frames(self, now: float) -> None:
        buffer = self.buffer
        while len(buffer) >= 2:
            first, second = buffer[0], buffer[1]
            if second & 0x80 or first & 0x70:
                self._fail(HandshakeError("masked server frame or reserved bits set"))
                return
            length, offset = second & 0x7F, 2
            if length == 126:
                if len(buffer) < 4:
                    return
                length, offset = struct.unpack_from("!H", buffer, 2)[0], 4
            elif length == 127:
                if len(buffer) < 10:
                    return
                length, offset = struct.unpack_from("!Q", buffer, 2)[0], 10
            if len(buffer) < offset + length:
                return
            payload = bytes(buffer[offset : offset + length])
            del buffer[: offset + length]
            self._frame(first & 0x80, first & 0x0F, payload, now)
            if self.transport is None or self.transport.is_closing():
                return

    def _frame(self, fin: int, opcode: int, payload: bytes, now: float) -> None:
        if opcode == OP_CLOSE:
            self.close_code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
            if not self.close_sent:
                self.close_sent = True
                self.transport.write(client_frame(OP_CLOSE, payload[:2]))
            # The server closes the TCP connection first (RFC 6455 7.1.1); we end ours too.
            self.transport.close()
        elif opcode == OP_PING:
            self.transport.write(client_frame(OP_PONG, payload))
        elif opcode == OP_PONG:
            pass
        elif opcode == OP_CONTINUATION:
            self.fragments.append(payload)
            if fin:
                message, self.fragments = b"".join(self.fragments), []
                if self.fragment_opcode == OP_TEXT:
                    self.on_text(self.index, message.decode(), now)
        elif fin:
            if opcode == OP_TEXT:
                self.on_text(self.index, payload.decode(), now)
        else:
            self.fragment_opcode, self.fragments = opcode, [payload]

    def _fail(self, error: Exception) -> None:
        if not self.opened.done():
            self.opened.set_exception(error)
        if self.transport is not None:
            self.transport.abort()

    # -- for the benchmark

    def send_text(self, text: str) -> None:
        self.transport.write(client_frame(OP_TEXT, text.encode()))

    async def close(self, code: int = 1000, timeout: float = 10) -> None:
        """Send a close frame and wait until the server has closed the connection."""
        if self.transport is None or self.closed.done():
            return
        if not self.close_sent:
            self.close_sent = True
            self.transport.write(client_frame(OP_CLOSE, struct.pack("!H", code)))
        try:
            await asyncio.wait_for(asyncio.shield(self.closed), timeout)
        except TimeoutError:
            self.transport.abort()


async def connect(
    url: str, index: int, on_text: Callable[[int, str, float], None], *, timeout: float = 60
) -> LeanSocket:
    """Open `url` (ws://host:port/path?query); returns once the handshake is done."""
    parts = urlsplit(url)
    if parts.scheme != "ws":
        raise ValueError("ws:// only")
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    loop = asyncio.get_running_loop()
    _, protocol = await asyncio.wait_for(
        loop.create_connection(
            lambda: LeanSocket(index, parts.netloc, target, on_text), parts.hostname, parts.port or 80
        ),
        timeout,
    )
    try:
        await asyncio.wait_for(asyncio.shield(protocol.opened), timeout)
    except BaseException:
        protocol.transport.abort()
        raise
    return protocol
