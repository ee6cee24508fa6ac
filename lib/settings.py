"""The host's configuration: /etc/vmbundle/vmbundle.toml, or $VMBUNDLE_CONFIG.

Every key has a default, so a missing file means "all defaults"; a file that
names an unknown key or holds a bad value is an error that names it.
"""

from __future__ import annotations

import contextlib
import difflib
import ipaddress
import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from vmbundle import config_path
from vmbundle.errors import ConfigError
from vmbundle.memory import policy
from vmbundle.units import parse_size

DEFAULT_PATH = config_path.DEFAULT_PATH


@attrs.frozen
class HostSettings:
    bundle_roots: tuple[str, ...] = ()
    iso_dirs: tuple[Path, ...] = ()
    run_dir: Path = config_path.DEFAULT_RUN_DIR
    qemu_binary: str = "qemu-system-x86_64"
    qemu_img: str = "qemu-img"
    accelerator: str = "auto"
    display_first: int = 0
    display_last: int = 99
    vnc_listen: str = "127.0.0.1"
    # [display] Off loopback every desktop display is protected (vmbundle.guest.display_auth):
    # "generate" gives a guest with no vnc.password one at each start.
    display_passwords: str = "guest"
    display_tls: bool = False
    # QEMU's x509 directory (ca-cert.pem, server-cert.pem, server-key.pem); None: the
    # web console's certificate.
    display_tls_dir: Path | None = None
    display_allow_unauthenticated: bool = False
    # svc:/system/manifest-import imports everything under /var/svc/manifest/site at boot.
    manifest_dir: Path = Path("/var/svc/manifest/site/vmbundle")
    # [memory] (vmbundle.memory.policy). None: "auto", computed from physical memory.
    memory_reserve: int | None = None
    # A float is a fraction of physical memory, an int a number of bytes.
    memory_arc_floor: float | int = policy.DEFAULT_ARC_FLOOR
    memory_backend: str = "auto"
    memory_shrink_timeout: int = 120
    memory_shrink_slack: int = 64 * policy.MiB
    memory_overhead_fixed: int = policy.DEFAULT_OVERHEAD_FIXED
    memory_overhead_per_vcpu: int = policy.DEFAULT_OVERHEAD_PER_VCPU
    memory_overhead_ratio: float = policy.DEFAULT_OVERHEAD_RATIO
    # [web] users: the web console's users (vmbundle.users); None: users.json
    # beside this configuration file.
    web_users: Path | None = None
    web_enabled: bool = True
    web_listen: str = "127.0.0.1"
    web_port: int = 8006
    # Beyond loopback the console is HTTPS only: these, or a self-signed pair made
    # at first start beside the host configuration.
    web_cert: Path | None = None
    web_key: Path | None = None
    # [web] metrics_token: lets a Prometheus scraper read GET /metrics with
    # "Authorization: Bearer TOKEN" and no login; None: admins only.
    web_metrics_token: str | None = None
    source: Path | None = None

    @property
    def users_file(self) -> Path:
        from vmbundle.users import default_path

        return self.web_users or default_path(self.source)

    @property
    def config_dir(self) -> Path:
        """Where files vmbundle makes for the host live: beside the host configuration."""
        return self.source.parent if self.source is not None else DEFAULT_PATH.parent

    def overhead_model(self) -> policy.OverheadModel:
        return policy.OverheadModel(
            fixed=self.memory_overhead_fixed,
            per_vcpu=self.memory_overhead_per_vcpu,
            ratio=self.memory_overhead_ratio,
        )


# section -> key -> (HostSettings attribute, checker)
def _str_list(v: Any) -> tuple[str, ...]:
    if not isinstance(v, list) or not all(isinstance(x, str) and x for x in v):
        raise ValueError("must be a list of non-empty strings")
    return tuple(v)


def _abs_dirs(v: Any) -> tuple[Path, ...]:
    items = _str_list(v)
    if not all(x.startswith("/") for x in items):
        raise ValueError("must be a list of absolute paths")
    return tuple(Path(x) for x in items)


def _roots(v: Any) -> tuple[str, ...]:
    items = _str_list(v)
    for x in items:
        if ".." in x.split("/"):
            raise ValueError(f"{x!r} must not contain '..'")
    return items


def _abs_path(v: Any) -> Path:
    if not isinstance(v, str) or not v.startswith("/"):
        raise ValueError("must be an absolute path")
    return Path(v)


def _command(v: Any) -> str:
    if not isinstance(v, str) or not v or any(c.isspace() for c in v):
        raise ValueError("must be a command name or path without spaces")
    return v


def _accel(v: Any) -> str:
    if v not in ("auto", "kvm", "tcg"):
        raise ValueError("must be auto, kvm or tcg")
    return str(v)


def _display(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 99:
        raise ValueError("must be a display number from 0 to 99 (TCP port 5900 to 5999)")
    return v


def _address(v: Any) -> str:
    try:
        ipaddress.ip_address(v)
    except ValueError:
        raise ValueError("must be an IP address like 127.0.0.1") from None
    return str(v)


def _passwords(v: Any) -> str:
    if v not in ("guest", "generate"):
        raise ValueError(
            'must be "guest" (each guest\'s vnc.password) or "generate" (one made at each start '
            "for a guest with none)"
        )
    return str(v)


def _size_or_none(v: Any) -> int | None:
    if isinstance(v, str):
        with contextlib.suppress(ValueError):
            return parse_size(v)
    return None


def _size(example: str) -> _Checker:
    def check(v: Any) -> int:
        size = _size_or_none(v)
        if size is None:
            raise ValueError(f"must be a size like {example}")
        return size

    return check


def _reserve(v: Any) -> int | None:
    size = _size_or_none(v)
    if size is None and v != "auto":
        raise ValueError('must be "auto" (max(1G, physical memory/8)) or a size like 2G')
    return size


def _arc_floor(v: Any) -> float | int:
    if isinstance(v, float) and 0 < v < 1:
        return v
    size = _size_or_none(v)
    if size is None:
        raise ValueError(
            "must be a fraction of physical memory between 0 and 1 like 0.2, or a size like 4G"
        )
    return size


def _memory_backend(v: Any) -> str:
    if v not in ("auto", "illumos", "linux", "none"):
        raise ValueError("must be auto, illumos, linux or none")
    return str(v)


def _shrink_timeout(v: Any) -> int:
    # The start method waits for the ARC, then starts QEMU, within its SMF timeout of 300 s.
    if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 240:
        raise ValueError("must be whole seconds from 1 to 240")
    return v


def _bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise ValueError("must be true or false")
    return v


def _port(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 65535:
        raise ValueError("must be a TCP port from 1 to 65535, or 0 for any free one")
    return v


def _token(v: Any) -> str:
    if not isinstance(v, str) or not re.fullmatch(r"[A-Za-z0-9._~+/=-]{16,256}", v):
        raise ValueError(
            "must be 16 to 256 letters, digits or ._~+/=- (make one: openssl rand -hex 32)"
        )
    return v


def _ratio(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v < 1:
        raise ValueError("must be a fraction of the guest's RAM from 0 to below 1, like 0.01")
    return float(v)


_Checker = Callable[[Any], Any]
_SCHEMA: dict[str, dict[str, tuple[str, _Checker]]] = {
    "bundles": {"roots": ("bundle_roots", _roots), "iso_dirs": ("iso_dirs", _abs_dirs)},
    "run": {"dir": ("run_dir", _abs_path)},
    "qemu": {
        "binary": ("qemu_binary", _command),
        "img": ("qemu_img", _command),
        "accelerator": ("accelerator", _accel),
    },
    "display": {
        "first": ("display_first", _display),
        "last": ("display_last", _display),
        "listen": ("vnc_listen", _address),
        "passwords": ("display_passwords", _passwords),
        "tls": ("display_tls", _bool),
        "tls_dir": ("display_tls_dir", _abs_path),
        "allow_unauthenticated": ("display_allow_unauthenticated", _bool),
    },
    "smf": {"manifest_dir": ("manifest_dir", _abs_path)},
    "web": {
        "users": ("web_users", _abs_path),
        "enabled": ("web_enabled", _bool),
        "listen": ("web_listen", _address),
        "port": ("web_port", _port),
        "cert": ("web_cert", _abs_path),
        "key": ("web_key", _abs_path),
        "metrics_token": ("web_metrics_token", _token),
    },
    "memory": {
        "reserve": ("memory_reserve", _reserve),
        "arc_floor": ("memory_arc_floor", _arc_floor),
        "backend": ("memory_backend", _memory_backend),
        "shrink_timeout": ("memory_shrink_timeout", _shrink_timeout),
        "shrink_slack": ("memory_shrink_slack", _size("64M")),
        "overhead_fixed": ("memory_overhead_fixed", _size("256M")),
        "overhead_per_vcpu": ("memory_overhead_per_vcpu", _size("16M")),
        "overhead_ratio": ("memory_overhead_ratio", _ratio),
    },
}


def _unknown(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    return (
        f"unknown key; did you mean {close[0]!r}?"
        if close
        else f"unknown key; known: {', '.join(known)}"
    )


def parse(doc: dict[str, Any], source: Path | None) -> HostSettings:
    where = str(source) if source else "configuration"
    problems: list[str] = []
    values: dict[str, Any] = {}
    for section, body in doc.items():
        if section not in _SCHEMA:
            problems.append(f"{where}: [{section}]: {_unknown(section, list(_SCHEMA))}")
            continue
        if not isinstance(body, dict):
            problems.append(f"{where}: {section}: must be a table ([{section}])")
            continue
        keys = _SCHEMA[section]
        for key, value in body.items():
            if key not in keys:
                problems.append(f"{where}: {section}.{key}: {_unknown(key, list(keys))}")
                continue
            attr, check = keys[key]
            try:
                values[attr] = check(value)
            except ValueError as exc:
                problems.append(f"{where}: {section}.{key}: {exc}")
    cfg = HostSettings(**values, source=source)
    if not problems and (cfg.web_cert is None) != (cfg.web_key is None):
        problems.append(
            f"{where}: web.cert and web.key: give both, or neither for a self-signed pair"
        )
    if not problems and cfg.display_first > cfg.display_last:
        problems.append(f"{where}: display.first: must not be above display.last")
    if problems:
        raise ConfigError(problems)
    return cfg


def load(path: Path | None = None) -> HostSettings:
    """The host configuration from path, $VMBUNDLE_CONFIG or the default file."""
    if path is None:
        path, named = config_path.chosen()
        if not named and not path.exists():
            return HostSettings()
    try:
        with path.open("rb") as f:
            doc = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError([f"{path}: no such configuration file"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: not valid TOML: {exc}"]) from None
    return parse(doc, path)
