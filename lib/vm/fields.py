"""The kinds of value a vm.json field can hold.

Each kind knows how to check a JSON value strictly (a string is never taken for a
number), how to write it back, how to read it from `vmbundle set key=value`, and
its JSON Schema. The model declares its fields with these kinds, so the loader,
the writer, `set` and `vmbundle schema` all follow one declaration.
"""

from __future__ import annotations

import re
from typing import Any, Protocol

import attrs

from vmbundle.errors import SMF_EXIT_ERR_CONFIG, VmbundleError
from vmbundle.units import format_size, parse_size


class Invalid(VmbundleError):
    """A value that does not fit its kind; the message says what fits."""

    exit_code = SMF_EXIT_ERR_CONFIG


class Kind(Protocol):
    def parse(self, value: Any) -> Any: ...
    def dump(self, value: Any) -> Any: ...
    def from_text(self, text: str) -> Any: ...
    def schema(self) -> dict[str, Any]: ...


def _show(value: Any) -> str:
    import json

    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


class _TextIsJson:
    """For kinds whose JSON value is the value itself and whose text form is the JSON string."""

    def parse(self, value: Any) -> Any:
        raise NotImplementedError

    def dump(self, value: Any) -> Any:
        return value

    def from_text(self, text: str) -> Any:
        return self.parse(text)


@attrs.frozen
class Str(_TextIsJson):
    """A string, optionally matching a pattern; never with control characters."""

    pattern: str | None = None
    max_len: int = 255
    hint: str = "a string"

    def parse(self, value: Any) -> str:
        if not isinstance(value, str):
            raise Invalid(f"must be {self.hint}, got {_show(value)}")
        if _CONTROL_RE.search(value):
            raise Invalid(f"must not contain control characters, got {_show(value)}")
        if len(value) > self.max_len:
            raise Invalid(f"must be at most {self.max_len} characters, got {len(value)}")
        if self.pattern is not None and re.fullmatch(self.pattern, value) is None:
            raise Invalid(f"must be {self.hint}, got {_show(value)}")
        return value

    def schema(self) -> dict[str, Any]:
        s: dict[str, Any] = {"type": "string", "maxLength": self.max_len}
        if self.pattern is not None:
            s["pattern"] = f"^(?:{self.pattern})$"
        return s


@attrs.frozen
class Int:
    low: int
    high: int

    def parse(self, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise Invalid(
                f"must be a whole number from {self.low} to {self.high}, got {_show(value)}"
            )
        if not self.low <= value <= self.high:
            raise Invalid(f"must be from {self.low} to {self.high}, got {value}")
        return value

    def dump(self, value: Any) -> Any:
        return value

    def from_text(self, text: str) -> Any:
        try:
            return self.parse(int(text, 10))
        except ValueError:
            raise Invalid(
                f"must be a whole number from {self.low} to {self.high}, got {_show(text)}"
            ) from None

    def schema(self) -> dict[str, Any]:
        return {"type": "integer", "minimum": self.low, "maximum": self.high}


@attrs.frozen
class Bool:
    def parse(self, value: Any) -> bool:
        if not isinstance(value, bool):
            raise Invalid(f"must be true or false, got {_show(value)}")
        return value

    def dump(self, value: Any) -> Any:
        return value

    def from_text(self, text: str) -> Any:
        if text in ("true", "false"):
            return text == "true"
        raise Invalid(f"must be true or false, got {_show(text)}")

    def schema(self) -> dict[str, Any]:
        return {"type": "boolean"}


@attrs.frozen
class Choice(_TextIsJson):
    values: tuple[str, ...]

    def parse(self, value: Any) -> str:
        if not isinstance(value, str) or value not in self.values:
            raise Invalid(f"must be one of {'|'.join(self.values)}, got {_show(value)}")
        return value

    def schema(self) -> dict[str, Any]:
        return {"type": "string", "enum": list(self.values)}


@attrs.frozen
class Size:
    """A size written like "20G" (binary units K M G T), held as bytes."""

    low: int
    high: int
    multiple: int = 1 << 10

    def parse(self, value: Any) -> int:
        try:
            if not isinstance(value, str):
                raise ValueError
            n = parse_size(value)
        except ValueError:
            raise Invalid(f"must be a size like 20G, got {_show(value)}") from None
        if not self.low <= n <= self.high:
            raise Invalid(
                f"must be from {format_size(self.low)} to {format_size(self.high)}, got {value}"
            )
        if n % self.multiple:
            raise Invalid(f"must be a whole number of {format_size(self.multiple)}, got {value}")
        return n

    def dump(self, value: Any) -> Any:
        return format_size(value)

    def from_text(self, text: str) -> Any:
        return self.parse(text)

    def schema(self) -> dict[str, Any]:
        return {"type": "string", "pattern": "^[1-9][0-9]*[KMGT]$"}


@attrs.frozen
class Nullable:
    inner: Kind

    def parse(self, value: Any) -> Any:
        return None if value is None else self.inner.parse(value)

    def dump(self, value: Any) -> Any:
        return None if value is None else self.inner.dump(value)

    def from_text(self, text: str) -> Any:
        return None if text in ("", "null") else self.inner.from_text(text)

    def schema(self) -> dict[str, Any]:
        return {"anyOf": [self.inner.schema(), {"type": "null"}]}


@attrs.frozen
class Obj:
    """A nested JSON object described by an attrs model class (vmbundle.vm.codec walks it)."""

    cls: type


@attrs.frozen
class ListOf:
    """A JSON array of objects described by an attrs model class (vmbundle.vm.codec walks it)."""

    cls: type
    max_items: int


FieldKind = Kind | Obj | ListOf


REQUIRED = object()


def spec(kind: FieldKind, doc: str, *, default: Any = REQUIRED, factory: Any = None) -> Any:
    """An attrs field that carries its JSON kind and documentation."""
    meta = {"kind": kind, "doc": doc}
    if factory is not None:
        return attrs.field(factory=factory, metadata=meta)
    if default is REQUIRED:
        return attrs.field(metadata=meta)
    return attrs.field(default=default, metadata=meta)


def kind_of(field: attrs.Attribute[Any]) -> FieldKind:
    kind: FieldKind = field.metadata["kind"]
    return kind


def is_required(field: attrs.Attribute[Any]) -> bool:
    return field.default is attrs.NOTHING
