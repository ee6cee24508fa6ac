"""RFB client messages (RFC 6143 and QEMU's), built by hand as noVNC 1.7 spells
them, for the console filter's tests."""

from __future__ import annotations

import struct


def pixel_format(bpp: int = 32, depth: int = 24) -> bytes:
    return struct.pack(">BxxxBBBBHHHBBBxxx", 0, bpp, depth, 0, 1, 255, 255, 255, 0, 8, 16)


def set_encodings(*encodings: int) -> bytes:
    return struct.pack(f">BxH{len(encodings)}i", 2, len(encodings), *encodings)


def update_request(
    incremental: int = 0, x: int = 0, y: int = 0, w: int = 640, h: int = 480
) -> bytes:
    return struct.pack(">BBHHHH", 3, incremental, x, y, w, h)


def key(down: int, keysym: int) -> bytes:
    return struct.pack(">BBxxI", 4, down, keysym)


def pointer(mask: int, x: int, y: int) -> bytes:
    return struct.pack(">BBHH", 5, mask, x, y)


def cut_text(text: bytes, *, extended: bool = False) -> bytes:
    length = -len(text) if extended else len(text)
    return struct.pack(">Bxxxi", 6, length) + text


def continuous_updates(enable: int, x: int = 0, y: int = 0, w: int = 640, h: int = 480) -> bytes:
    return struct.pack(">BBHHHH", 150, enable, x, y, w, h)


def fence(flags: int, payload: bytes) -> bytes:
    return struct.pack(">BxxxIB", 248, flags, len(payload)) + payload


def xvp(action: int) -> bytes:
    return struct.pack(">BxBB", 250, 1, action)


def desktop_size(w: int, h: int, screens: int = 1) -> bytes:
    head = struct.pack(">BxHHBx", 251, w, h, screens)
    return head + b"".join(struct.pack(">IHHHHI", i, 0, 0, w, h, 0) for i in range(screens))


def qemu_key(down: int, keysym: int, keycode: int) -> bytes:
    return struct.pack(">BBHII", 255, 0, down, keysym, keycode)


def qemu_audio(operation: int, fmt: int = 3, channels: int = 2, freq: int = 44100) -> bytes:
    head = struct.pack(">BBH", 255, 1, operation)
    return head + struct.pack(">BBI", fmt, channels, freq) if operation == 2 else head


def vnc_auth_response(password: str, challenge: bytes) -> bytes:
    """RFB's VNC authentication: DES of the challenge, keyed by the password with
    each byte's bits reversed (RFC 6143 7.2.2 and its errata)."""
    import pyDes  # type: ignore[import-untyped]

    key = bytes(int(f"{b:08b}"[::-1], 2) for b in password.encode().ljust(8, b"\0")[:8])
    return bytes(pyDes.des(key, pyDes.ECB).encrypt(challenge))
