"""Sizes as operators write them ("20G") and as the code counts them (bytes)."""

from __future__ import annotations

import re

_UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_SIZE_RE = re.compile(r"([1-9][0-9]{0,15})([KMGT])")


def parse_size(text: str) -> int:
    """Bytes for "512M", "20G", "1T" (binary units); ValueError for anything else."""
    m = _SIZE_RE.fullmatch(text)
    if m is None:
        raise ValueError(text)
    return int(m.group(1)) * _UNITS[m.group(2)]


def format_size(n: int) -> str:
    """The shortest exact spelling of n bytes; n must be a whole number of KiB."""
    for unit in "TGMK":
        if n % _UNITS[unit] == 0:
            return f"{n // _UNITS[unit]}{unit}"
    raise ValueError(f"{n} is not a whole number of KiB")
