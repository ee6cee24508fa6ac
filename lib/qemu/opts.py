"""Values inside QEMU's `key=value,...` options, written so that QEMU reads them back unchanged.

QemuOpts and keyval, the parsers behind -drive, -device, -chardev, -netdev,
-object, -vnc, -smbios, -name and -machine (in QEMU 7.x and, QemuOpts only, in
0.14.1), split an option at commas and read a doubled comma as one literal
comma. That is the only escape either has. So:

- every comma in a value is doubled;
- a control character is refused: a NUL cannot pass exec at all, and a newline
  or tab would pass but would split QEMU's messages, vmbundle's logs and the
  one-element-per-line golden files;
- an implied first value (`-vnc unix:PATH`, given without its key) is read as
  `key=value` when it holds an '=' before its first comma, and no escape hides
  an '=', so such a value with '=' is refused.

Options that take their argument whole (-pidfile, -uuid) are never split: they
need only the control-character check (check_plain). A few split at commas with
no escape at all (-cpu, and -name in 0.14): they refuse commas (check_bare).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from vmbundle.errors import VmbundleError

# QEMU 0.14's option parser copies each value into a 1024-byte buffer and
# silently cuts what does not fit (qemu-option.c, opts_do_parse).
OLD_QEMU_MAX_VALUE_BYTES = 1023

_KEY_RE = re.compile(r"[a-z][a-z0-9_.-]*")

Pair = tuple[str, str | int | None]


class Unrepresentable(VmbundleError, ValueError):
    """A value QEMU's option syntax cannot carry; str() says why, for an operator."""


def _char_name(ch: str) -> str:
    names = {"\n": "a newline", "\r": "a carriage return", "\t": "a tab", "\0": "a NUL"}
    return names.get(ch, f"the control character U+{ord(ch):04X}")


def check_plain(value: str) -> str:
    """value, for an option QEMU takes whole; Unrepresentable if it holds a control character."""
    for ch in value:
        if unicodedata.category(ch) == "Cc":
            raise Unrepresentable(f"holds {_char_name(ch)}")
    return value


def check_bare(value: str) -> str:
    """value, for an option QEMU splits at commas with no escape at all (-cpu, 0.14's -name)."""
    if "," in check_plain(value):
        raise Unrepresentable("holds ',', which this option cannot carry")
    return value


def escape(value: str) -> str:
    """value as one QemuOpts/keyval value: commas doubled, control characters refused."""
    return check_plain(value).replace(",", ",,")


def escape_implied(value: str) -> str:
    """value as the implied first value of an option; also refuses '='."""
    if "=" in value:
        raise Unrepresentable("holds '=', which QEMU would read as the name of an option there")
    return escape(value)


def join(implied: str | None, pairs: Iterable[Pair]) -> str:
    """One option argument: the implied first value, then key=value pairs, every value escaped.

    A pair whose value is None is written as a bare flag (QEMU 0.14's `server,nowait`).
    """
    parts = [] if implied is None else [escape_implied(implied)]
    for key, value in pairs:
        if _KEY_RE.fullmatch(key) is None:
            raise ValueError(f"not a QEMU option key: {key!r}")
        if value is None:
            parts.append(key)
        else:
            parts.append(f"{key}={escape(str(value))}")
    return ",".join(parts)
