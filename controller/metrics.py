"""`GET /metrics`: Prometheus text exposition format 0.0.4. Rendering is pure.

Families are written whole (HELP, TYPE, then every sample), label values escaped
as the format asks (backslash, double quote, newline).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import attrs

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Labels = Mapping[str, str]


@attrs.frozen
class Family:
    name: str
    kind: str  # gauge | counter
    help: str
    samples: Sequence[tuple[Labels, float]]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _value(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def render(families: Sequence[Family]) -> str:
    lines: list[str] = []
    for f in families:
        lines.append(f"# HELP {f.name} {f.help}")
        lines.append(f"# TYPE {f.name} {f.kind}")
        for labels, v in f.samples:
            text = ",".join(f'{k}="{_escape(str(x))}"' for k, x in sorted(labels.items()))
            lines.append(f"{f.name}{{{text}}} {_value(v)}" if text else f"{f.name} {_value(v)}")
    return "\n".join(lines) + "\n"
