"""The web console's users: names, roles and salted slow password hashes.

They live in one JSON file beside the host configuration (`users.json`, mode
0600, replaced whole and atomically), which `vmbundle user add|remove` writes and
the controller reads. A hash is stdlib scrypt, spelled
`scrypt$N$r$p$<salt>$<key>` (base64), so its cost can rise later without
invalidating the hashes made before.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
from pathlib import Path

import attrs

from vmbundle.atomic import write_atomic
from vmbundle.errors import ConfigError, UsageError, VmbundleError
from vmbundle.locks import exclusive

ROLES = ("admin", "operator", "viewer")
# What each role may do; admin may do everything (a force off and /metrics among it).
# "console" and "serial" are watching a guest's screen and serial console; "type" is
# sending it input there (keys, mouse, clipboard): without it both are view-only;
# "display" is reading the password of a guest's desktop VNC display.
_CAN = {
    "viewer": frozenset({"list", "thumbnail", "console", "serial"}),
    "operator": frozenset(
        {"list", "thumbnail", "console", "serial", "type", "start", "stop", "reset", "display"}
    ),
}
NAME = re.compile(r"[a-z_][a-z0-9_.-]{0,31}")
MIN_PASSWORD = 8
MAX_PASSWORD = 1024
# scrypt at N=2^14, r=8: 16 MiB and about 50 ms a check, OWASP's floor.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 1 << 14, 8, 1
KEY_BYTES = 32
_HASH = re.compile(r"scrypt\$(\d+)\$(\d+)\$(\d+)\$([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+)")


class NoSuchUser(VmbundleError):
    """No user of that name."""


@attrs.frozen
class User:
    name: str
    role: str
    password_hash: str = attrs.field(repr=False)

    def may(self, action: str) -> bool:
        return self.role == "admin" or action in _CAN.get(self.role, frozenset())


def hash_password(password: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    salt = secrets.token_bytes(16)
    key = hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=r, p=p, maxmem=256 << 20, dklen=KEY_BYTES
    )
    b64 = base64.b64encode
    return f"scrypt${n}${r}${p}${b64(salt).decode()}${b64(key).decode()}"


def verify(password_hash: str, password: str) -> bool:
    m = _HASH.fullmatch(password_hash)
    if m is None:
        return False
    n, r, p = (int(m.group(i)) for i in (1, 2, 3))
    try:
        salt, key = base64.b64decode(m.group(4)), base64.b64decode(m.group(5))
    except ValueError:
        return False
    # A shortened key would match a prefix: only whole hashes count.
    if len(key) != KEY_BYTES or len(salt) < 16 or len(password) > MAX_PASSWORD:
        return False
    try:
        got = hashlib.scrypt(
            password.encode(), salt=salt, n=n, r=r, p=p, maxmem=256 << 20, dklen=KEY_BYTES
        )
    except ValueError:  # a cost this host cannot pay: no match
        return False
    return hmac.compare_digest(got, key)


def check_name(name: str) -> str:
    if NAME.fullmatch(name) is None:
        raise UsageError(
            f"user {name[:40]!r}: not a user name (a-z, 0-9, _ . -, first a letter or _, at most 32)"
        )
    return name


def check_role(role: str) -> str:
    if role not in ROLES:
        raise UsageError(f"--role {role!r}: must be one of {', '.join(ROLES)}")
    return role


def check_password(name: str, password: str) -> str:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise UsageError(
            f"user {name}: the password must be {MIN_PASSWORD} to {MAX_PASSWORD} characters"
        )
    return password


def load(path: Path) -> dict[str, User]:
    """The users in path; none when there is no file. A damaged file is an error
    that names it and the entry."""
    try:
        doc = json.loads(path.read_bytes())
    except FileNotFoundError:
        return {}
    except ValueError as exc:
        raise ConfigError([f"{path}: not valid JSON: {exc}"]) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("users"), dict):
        raise ConfigError([f'{path}: must be an object with "users": {{NAME: {{...}}}}'])
    problems: list[str] = []
    users: dict[str, User] = {}
    for name, entry in doc["users"].items():
        where = f"{path}: users.{name}"
        if not isinstance(name, str) or NAME.fullmatch(name) is None:
            problems.append(f"{where}: not a user name")
            continue
        if not isinstance(entry, dict) or entry.get("role") not in ROLES:
            problems.append(f"{where}.role: must be one of {', '.join(ROLES)}")
            continue
        digest = entry.get("password_hash")
        if not isinstance(digest, str) or _HASH.fullmatch(digest) is None:
            problems.append(
                f"{where}.password_hash: not a scrypt hash; set it again: vmbundle user add {name} --role {entry['role']} --replace"
            )
            continue
        users[name] = User(name, entry["role"], digest)
    if problems:
        raise ConfigError(problems)
    return users


def _save(path: Path, users: dict[str, User]) -> None:
    doc = {
        "users": {
            u.name: {"role": u.role, "password_hash": u.password_hash}
            for u in sorted(users.values(), key=lambda u: u.name)
        }
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, (json.dumps(doc, indent=2) + "\n").encode(), mode=0o600)


def _lock(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.with_name(f".{path.name}.lock")


def add(path: Path, name: str, role: str, password: str, *, replace: bool = False) -> User:
    """Add a user (or, with replace, set an existing one's role and password)."""
    check_name(name)
    check_role(role)
    check_password(name, password)
    user = User(name, role, hash_password(password))
    with exclusive(_lock(path), 10):
        users = load(path)
        if name in users and not replace:
            raise VmbundleError(
                f"user {name}: exists already ({users[name].role}); to set a new role or "
                f"password: vmbundle user add {name} --role {role} --replace"
            )
        users[name] = user
        _save(path, users)
    return user


def remove(path: Path, name: str) -> User:
    check_name(name)
    with exclusive(_lock(path), 10):
        users = load(path)
        if name not in users:
            raise NoSuchUser(f"user {name}: no such user in {path}")
        gone = users.pop(name)
        _save(path, users)
    return gone


def default_path(config: Path | None) -> Path:
    """users.json beside the host configuration file (or in /etc/vmbundle)."""
    base = config.parent if config is not None else Path("/etc/vmbundle")
    return base / "users.json"
