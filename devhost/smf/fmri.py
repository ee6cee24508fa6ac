"""FMRIs: parsing svc: and file: FMRIs, the canonical form, matching operands as
libscf's scf_walk_fmri does (globs, abbreviations by trailing components), and
the restarter's own FMRI. Free of heavy imports (no attrs): svcs and svcprop
import it and start on every poll of the product."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from typing import NamedTuple

# svc.startd, the master restarter: general/restarter of every instance that names
# no other, and SMF_RESTARTER in its methods' environment.
STARTD_FMRI = "svc:/system/svc/restarter:default"

_NAME = r"[A-Za-z0-9][A-Za-z0-9_.,+-]*"
_SERVICE_RE = re.compile(rf"{_NAME}(/{_NAME})*")
_INSTANCE_RE = re.compile(_NAME)


class FmriError(ValueError):
    pass


class Fmri(NamedTuple):
    """An immutable, hashable and ordered (service, instance) pair."""

    service: str  # "system/vmbundle/vm"
    instance: str | None = None

    def __str__(self) -> str:
        return f"svc:/{self.service}" + (f":{self.instance}" if self.instance else "")

    @property
    def service_fmri(self) -> Fmri:
        return Fmri(self.service)


def parse(text: str) -> Fmri:
    """An exact FMRI: svc:/svc[:inst], /svc[:inst] or svc[:inst] (no abbreviation)."""
    body = text
    if body.startswith("svc:/"):
        body = body[5:]
    elif body.startswith("svc:"):
        raise FmriError(f"invalid FMRI {text!r}")
    body = body.lstrip("/")
    if body.startswith("/"):
        raise FmriError(f"invalid FMRI {text!r}")
    service, _, instance = body.partition(":")
    if not _SERVICE_RE.fullmatch(service) or (instance and not _INSTANCE_RE.fullmatch(instance)):
        raise FmriError(f"invalid FMRI {text!r}")
    if ":" in body and not instance:
        raise FmriError(f"invalid FMRI {text!r}")
    return Fmri(service, instance or None)


def file_path(text: str) -> str | None:
    """The path a file: FMRI names (file://localhost/p, file:///p or file:/p), as
    scf_parse_file_fmri() reads it; None when text is no file: FMRI, names another
    host, or has a relative path."""
    if not text.startswith("file:"):
        return None
    rest = text[len("file:") :]
    if rest.startswith("//"):
        rest = rest[2:]
        if rest.startswith("localhost/"):
            rest = rest[len("localhost") :]
        elif not rest.startswith("/"):
            return None
    return rest if rest.startswith("/") else None


def is_glob(operand: str) -> bool:
    return any(c in operand for c in "*?[")


def glob_pattern(operand: str) -> str:
    """The fnmatch pattern for a glob operand, as scf_walk_fmri builds it."""
    if operand.startswith("*") or operand[3:4] == ":":
        return operand
    return "svc:/" + operand.lstrip("/")


def _abbreviation_matches(operand: str, fmri: Fmri) -> bool:
    """`vm1`, `vm:vm1`, `system/vm:vm1`, `system/vm`: trailing components match."""
    try:
        wanted = parse(operand) if ":" in operand.removeprefix("svc:") else None
    except FmriError:
        return False
    if wanted is not None:
        if fmri.instance != wanted.instance:
            return False
        return fmri.service == wanted.service or fmri.service.endswith("/" + wanted.service)
    name = operand.removeprefix("svc:").lstrip("/")
    if fmri.instance is not None and fmri.instance == name:
        return True
    return fmri.instance is None and (fmri.service == name or fmri.service.endswith("/" + name))


def match(operand: str, known: Iterable[Fmri]) -> list[Fmri]:
    """The known FMRIs (services and instances) an operand names."""
    known = list(known)
    if is_glob(operand):
        pattern = glob_pattern(operand)
        return [f for f in known if fnmatch.fnmatchcase(str(f), pattern)]
    try:
        exact = parse(operand)
    except FmriError:
        exact = None
    if (
        exact is not None
        and exact in known
        and (operand.startswith(("svc:", "/")) or "/" in operand)
    ):
        return [exact]
    return [f for f in known if _abbreviation_matches(operand, f)]
