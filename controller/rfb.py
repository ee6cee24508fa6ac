"""What a VNC client sends, read message by message, so the web console can filter it.

The console WebSocket carries raw RFB (RFC 6143) from noVNC to the guest's QEMU VNC
server. A ClientStream parses that direction only, the handshake and then every
message, and returns the bytes to pass on:

- ClientInit's shared flag always goes on as 1. QEMU's default share policy
  (allow-exclusive) disconnects every other client when one asks for the screen
  alone, and two people may watch one console.
- A view-only stream passes only the handshake and what asks for pixels or paces
  them: SetPixelFormat (0), SetEncodings (2), FramebufferUpdateRequest (3),
  EnableContinuousUpdates (150), ClientFence (248). It drops the rest, which acts on
  the guest: KeyEvent (4), PointerEvent (5), ClientCutText (6), xvp (250: power off,
  reset), SetDesktopSize (251: the guest's screen size) and QEMU's messages (255: its
  extended key event, and its audio control with it).
- Anything else is refused (RfbRefused), and the proxy closes the connection: an
  unknown message type or QEMU submessage, a protocol version other than 3.7 or 3.8,
  a security type other than None (1) or VNC authentication (2), a length over what
  QEMU accepts. Nothing unparsed is ever passed on.

Security: with 3.7 and 3.8 the client names the type it chose (one byte), so the
client's bytes alone say what follows: ClientInit for None, a 16-byte response then
ClientInit for VNC authentication; the server still decides whether that is
acceptable. With 3.3 the server names the type and the client's bytes cannot tell a
VNC-authentication response from ClientInit, so this filter would have to read the
server's bytes too. It refuses 3.3 instead: every QEMU, the illumos fork's too,
announces 3.8, and noVNC answers the server's version capped at 3.8, so only a client
that is not noVNC answers 3.3 here.

The framing is QEMU's (ui/vnc.c, protocol_client_msg), message for message: QEMU reads
exactly the bytes passed on, and were the two ever to disagree on where a message
ends, bytes taken here for a screen request could be a key press to QEMU. Every
message passed to a view-only console is framed by its own header alone. One
extension would make PointerEvent's length depend on what the server answered:
ExtendedMouseButtons (-316; noVNC 1.7 asks for it) adds a byte to it. SetEncodings
therefore loses -316 on its way, so no server turns it on (QEMU does not implement it
yet anyway) and noVNC keeps sending the 6-byte PointerEvent; back and forward mouse
buttons are lost, which no guest console needs.

Pure, no I/O. A partial message waits in a buffer; at most one message is buffered
(ClientCutText, up to 1 MiB, is the largest), and each byte is copied a bounded
number of times, so the cost is linear in the bytes fed.
"""

from __future__ import annotations

import struct

from vmbundle.errors import VmbundleError

VERSIONS = frozenset({b"RFB 003.007\n", b"RFB 003.008\n"})
SECURITY_NONE = 1
SECURITY_VNC_AUTH = 2
VNC_AUTH_RESPONSE = 16
# QEMU refuses a ClientCutText payload over 1 MiB; RFB caps a fence payload at 64.
MAX_CUT_TEXT = 1 << 20
MAX_FENCE_PAYLOAD = 64
EXTENDED_MOUSE_BUTTONS = -316

# Client message types (RFC 6143 and QEMU's ui/vnc.h).
SET_PIXEL_FORMAT = 0
SET_ENCODINGS = 2
FRAMEBUFFER_UPDATE_REQUEST = 3
KEY_EVENT = 4
POINTER_EVENT = 5
CLIENT_CUT_TEXT = 6
ENABLE_CONTINUOUS_UPDATES = 150
CLIENT_FENCE = 248
XVP = 250
SET_DESKTOP_SIZE = 251
QEMU = 255
QEMU_EXTENDED_KEY_EVENT = 0
QEMU_AUDIO = 1
# Their lengths, where the type alone gives it.
_FIXED = {
    SET_PIXEL_FORMAT: 20,
    FRAMEBUFFER_UPDATE_REQUEST: 10,
    KEY_EVENT: 8,
    POINTER_EVENT: 6,
    ENABLE_CONTINUOUS_UPDATES: 10,
    XVP: 4,
}
# What a view-only console drops: everything that acts on the guest.
INPUT = frozenset({KEY_EVENT, POINTER_EVENT, CLIENT_CUT_TEXT, XVP, SET_DESKTOP_SIZE, QEMU})
_NOTHING: frozenset[int] = frozenset()
# QEMU audio operations: enable and disable (4 bytes), set-format (10).
_AUDIO = {0: 4, 1: 4, 2: 10}

# Where the stream is.
_VERSION, _SECURITY, _AUTH, _INIT, _MESSAGES, _REFUSED = range(6)


class RfbRefused(VmbundleError):
    """Client bytes this filter cannot parse, or will not pass: the connection must close."""


class ClientStream:
    """The client-to-server half of one RFB connection."""

    def __init__(self, *, view_only: bool) -> None:
        self.view_only = view_only
        self._state = _VERSION
        self._pending = bytearray()

    def feed(self, data: bytes) -> bytes:
        """The bytes to send the server for these client bytes; a message's start
        without its end waits for the next feed. RfbRefused, for good, on bytes
        that cannot pass."""
        if self._state == _REFUSED:
            raise RfbRefused("the console stream was refused already")
        if self._pending:
            self._pending += data
            buf: bytes | bytearray = self._pending
        else:
            buf = data
        out: list[bytes | bytearray] = []
        try:
            pos = self._parse(buf, out)
        except RfbRefused:
            self._state = _REFUSED
            self._pending = bytearray()
            raise
        # Joined before the buffer moves on: out may hold the buffer itself.
        passed = data if len(out) == 1 and out[0] is data else b"".join(out)
        if buf is self._pending:
            del self._pending[:pos]
        elif pos < len(buf):
            self._pending = bytearray(buf[pos:])
        return passed

    def _parse(self, buf: bytes | bytearray, out: list[bytes | bytearray]) -> int:
        """Append what passes to out; how many bytes were used."""
        end = len(buf)
        pos = 0
        while self._state != _MESSAGES:
            if self._state == _VERSION:
                if end - pos < 12:
                    return pos
                version = bytes(buf[pos : pos + 12])
                if version not in VERSIONS:
                    raise RfbRefused(_bad_version(version))
                out.append(version)
                pos += 12
                self._state = _SECURITY
            elif self._state == _SECURITY:
                if pos == end:
                    return pos
                chosen = buf[pos]
                if chosen not in (SECURITY_NONE, SECURITY_VNC_AUTH):
                    raise RfbRefused(
                        f"security type {chosen}: the console passes only None (1) and "
                        "VNC authentication (2)"
                    )
                out.append(bytes((chosen,)))
                pos += 1
                self._state = _AUTH if chosen == SECURITY_VNC_AUTH else _INIT
            elif self._state == _AUTH:
                if end - pos < VNC_AUTH_RESPONSE:
                    return pos
                out.append(buf[pos : pos + VNC_AUTH_RESPONSE])
                pos += VNC_AUTH_RESPONSE
                self._state = _INIT
            else:  # _INIT: the shared flag, whatever the client asked
                if pos == end:
                    return pos
                out.append(b"\x01")
                pos += 1
                self._state = _MESSAGES
        return self._messages(buf, pos, out)

    def _messages(self, buf: bytes | bytearray, pos: int, out: list[bytes | bytearray]) -> int:
        end = len(buf)
        run = pos  # the start of the messages passed as they are, not yet in out
        drop = INPUT if self.view_only else _NOTHING
        while pos < end:
            kind = buf[pos]
            size = _FIXED.get(kind) or _size(buf, pos, end)
            if size is None or pos + size > end:
                break
            if kind in drop:
                if run < pos:
                    out.append(buf[run:pos])
                run = pos + size
            elif kind == SET_ENCODINGS:
                changed = _without_extended_mouse_buttons(buf, pos, size)
                if changed is not None:
                    if run < pos:
                        out.append(buf[run:pos])
                    out.append(changed)
                    run = pos + size
            pos += size
        if run < pos:
            out.append(buf if run == 0 and pos == end else buf[run:pos])
        return pos


def _size(buf: bytes | bytearray, pos: int, end: int) -> int | None:
    """The length of the message of variable length at pos; None while its header
    is incomplete. RfbRefused for a type that is not one of them."""
    kind = buf[pos]
    have = end - pos
    if kind == SET_ENCODINGS:
        if have < 4:
            return None
        return 4 + 4 * int.from_bytes(buf[pos + 2 : pos + 4], "big")
    if kind == CLIENT_CUT_TEXT:
        if have < 8:
            return None
        # Negative: the extended clipboard's, of that many bytes (QEMU takes abs()).
        length = abs(int.from_bytes(buf[pos + 4 : pos + 8], "big", signed=True))
        if length > MAX_CUT_TEXT:
            raise RfbRefused(f"ClientCutText of {length} bytes: QEMU takes at most {MAX_CUT_TEXT}")
        return 8 + length
    if kind == CLIENT_FENCE:
        if have < 9:
            return None
        length = buf[pos + 8]
        if length > MAX_FENCE_PAYLOAD:
            raise RfbRefused(
                f"ClientFence with {length} bytes: RFB allows at most {MAX_FENCE_PAYLOAD}"
            )
        return 9 + length
    if kind == SET_DESKTOP_SIZE:
        if have < 8:
            return None
        return 8 + 16 * buf[pos + 6]
    if kind == QEMU:
        if have < 2:
            return None
        sub = buf[pos + 1]
        if sub == QEMU_EXTENDED_KEY_EVENT:
            return 12
        if sub == QEMU_AUDIO:
            if have < 4:
                return None
            operation = int.from_bytes(buf[pos + 2 : pos + 4], "big")
            if operation not in _AUDIO:
                raise RfbRefused(
                    f"QEMU audio operation {operation}: not enable, disable or set-format"
                )
            return _AUDIO[operation]
        raise RfbRefused(f"QEMU client message {sub}: not one the console passes")
    raise RfbRefused(f"client message type {kind}: not one the console passes")


def _without_extended_mouse_buttons(buf: bytes | bytearray, pos: int, size: int) -> bytes | None:
    """SetEncodings at pos without ExtendedMouseButtons; None when it does not ask for it."""
    count = (size - 4) // 4
    encodings = struct.unpack_from(f">{count}i", buf, pos + 4)
    if EXTENDED_MOUSE_BUTTONS not in encodings:
        return None
    kept = [e for e in encodings if e != EXTENDED_MOUSE_BUTTONS]
    return struct.pack(f">BxH{len(kept)}i", SET_ENCODINGS, len(kept), *kept)


def _bad_version(version: bytes) -> str:
    if version[:8] == b"RFB 003." and version[8:11] in (b"003", b"004", b"005"):
        return (
            "the client answered RFB 3.3, where the server picks the security type "
            "unseen by this filter; the console takes 3.7 or 3.8 (noVNC answers 3.8)"
        )
    return f"{version!r}: not RFB protocol version 3.7 or 3.8"
