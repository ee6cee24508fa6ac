"""hostid(1) of a devhost: eight hex digits (illumos prints `%08x` of gethostid(3C)),
one per state directory, so two devhosts side by side are two hosts to an owner
record. It stays the same across down and up, as a real host's does."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path


def host_id(state_dir: Path) -> str:
    return hashlib.sha256(str(Path(state_dir).absolute()).encode()).hexdigest()[:8]


def main(argv: Sequence[str], state_dir: Path) -> int:
    # illumos's main(void) looks at no operand (usr/src/cmd/hostid/hostid.c).
    print(host_id(state_dir))
    return 0
