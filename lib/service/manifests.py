"""The SMF manifests of this installation, from the templates in vmbundle.manifests.

A template names what only the installation knows as `@NAME@`: the absolute paths
of the method and controller commands, and the host configuration the methods must
read when it is not the default file. Rendering is pure: text in, text out.
"""

from __future__ import annotations

import re
import shlex
import sys
from importlib import resources
from pathlib import Path
from xml.sax.saxutils import escape

import attrs

from vmbundle import settings
from vmbundle.errors import VmbundleError

# The vm service first: the controller, once enabled, expects it to exist.
MANIFESTS = ("vm.xml", "controller.xml")

# A placeholder alone on its line stands for whole elements, indented as it is, or
# for nothing (the line goes); anywhere else it stands for text.
_PLACEHOLDER = re.compile(
    r"^(?P<indent>[ \t]*)@(?P<line>[A-Z][A-Z_]*)@[ \t]*\n|@(?P<inline>[A-Z][A-Z_]*)@", re.MULTILINE
)
_ATTR_ENTITIES = {'"': "&quot;", "'": "&apos;"}


class ManifestError(VmbundleError):
    """A template that cannot be filled in, or a value that cannot go into it."""


@attrs.frozen
class Installation:
    """What the manifests point at: command paths, and the host configuration
    file when it is not the default one (None: the default)."""

    method: Path
    controller: Path
    config: Path | None = None


def installed_commands() -> tuple[Path, Path]:
    """vmbundle-method and vmbundle-controller as pip installed them: console
    scripts go beside the interpreter (`bin/` of the venv or the prefix). The
    interpreter path is not resolved, since a venv's python is a symlink out of it."""
    bin_dir = Path(sys.executable).absolute().parent
    return bin_dir / "vmbundle-method", bin_dir / "vmbundle-controller"


def template(name: str) -> str:
    """A template as shipped in the vmbundle.manifests package."""
    return resources.files("vmbundle.manifests").joinpath(name).read_text(encoding="utf-8")


def _checked(value: str, what: str) -> str:
    # An XML attribute turns a newline into a space, so it could not come back intact.
    if any(ord(c) < 0x20 for c in value):
        raise ManifestError(f"{what} {value!r}: control characters cannot go into a manifest")
    return value


def _attr(value: str) -> str:
    return escape(value, _ATTR_ENTITIES)


def _exec_word(path: Path, what: str) -> str:
    """One word of an exec string: svc.startd runs it with `/bin/sh -c "exec ..."`
    after expanding %-tokens, so quote for the shell and double the %."""
    text = _checked(str(path), what)
    if not path.is_absolute():
        raise ManifestError(f"{what} {text!r}: must be an absolute path")
    return shlex.quote(text).replace("%", "%%")


def _method_context(config: Path | None) -> str:
    if config is None or config == settings.DEFAULT_PATH:
        return ""
    value = _checked(str(config), "host configuration")
    if not config.is_absolute():
        raise ManifestError(f"host configuration {value!r}: must be an absolute path")
    envvar = f'<envvar name="VMBUNDLE_CONFIG" value="{_attr(value)}"/>'
    return "\n".join(
        [
            "<method_context>",
            "  <method_environment>",
            f"    {envvar}",
            "  </method_environment>",
            "</method_context>",
        ]
    )


def values(inst: Installation) -> dict[str, str]:
    """Placeholder -> XML text to put in its place."""
    return {
        "METHOD": _attr(_exec_word(inst.method, "method command")),
        "CONTROLLER": _attr(_exec_word(inst.controller, "controller command")),
        "METHOD_CONTEXT": _method_context(inst.config),
    }


def render(text: str, fills: dict[str, str]) -> str:
    """Fill every `@NAME@` of a template; any name without a value is an error.
    One pass over the template, so a value that happens to hold `@X@` is left be."""
    unknown: set[str] = set()

    def fill(m: re.Match[str]) -> str:
        name = m.group("line") or m.group("inline")
        if name not in fills:
            unknown.add(name)
            return m.group(0)
        if m.group("inline"):
            return fills[name]
        return "".join(f"{m.group('indent')}{line}\n" for line in fills[name].splitlines())

    out = _PLACEHOLDER.sub(fill, text)
    if unknown:
        raise ManifestError(f"manifest template: no value for {', '.join(sorted(unknown))}")
    return out


def manifest(name: str, inst: Installation) -> str:
    """The manifest `name` (a key of MANIFESTS) for this installation."""
    return render(template(name), values(inst))
