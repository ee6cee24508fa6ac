"""Operations that only read a bundle: show, validate, and the QEMU command line."""

from __future__ import annotations

import attrs

from vmbundle.errors import ConfigError
from vmbundle.guest import display, prepare
from vmbundle.settings import HostSettings
from vmbundle.vm import bundle
from vmbundle.vm.bundle import Bundle


def load(settings: HostSettings, guest: str) -> Bundle:
    """The guest's bundle, checked; ConfigError lists every problem."""
    return bundle.load(bundle.locate(settings, guest), settings)


def problems(settings: HostSettings, guest: str) -> tuple[str, list[str]]:
    """(the guest's name, every problem that keeps it from running; none: valid)."""
    path = bundle.locate(settings, guest)
    try:
        b = bundle.load(path, settings)
        prepare.check_runnable(b, settings)
    except ConfigError as exc:
        return path.name, list(exc.problems)
    return b.name, []


@attrs.frozen
class CommandLine:
    argv: list[str]
    unchosen_macs: list[int]
    """Indexes of the NICs whose MAC the first start generates: shown with a placeholder."""
    name: str


def command_line(settings: HostSettings, guest: str, number: int | None) -> CommandLine:
    """The exact QEMU command line a start runs, with display number (default:
    the next free one)."""
    b = load(settings, guest)
    if number is None and b.config.vnc.enabled:
        taken = display.held(settings.run_dir)
        free = [
            n for n in range(settings.display_first, settings.display_last + 1) if n not in taken
        ]
        number = free[0] if free else settings.display_first
    unchosen = [i for i, nic in enumerate(b.config.nics) if nic.mac is None]
    argv = prepare.command_line(Bundle(b.path, prepare.with_macs(b.config)), settings, number)
    return CommandLine(argv, unchosen, b.name)
