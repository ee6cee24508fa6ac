"""The bundle roots, watched: any change wakes the reconcile loop.

watchdog uses inotify on Linux; illumos has no backend of its own in watchdog
(sys.platform sunos5 falls back to polling), so there it polls on purpose. Each
bundle is a ZFS dataset of its own, and a watch on the root sees only its
mountpoint directory come and go, not what happens inside the mounted bundle: so
each bundle directory gets a watch too (a received bundle's files, a copy into a
plain directory). The periodic full scan is the safety net for anything missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.polling import PollingObserver

POLL_SECONDS = 2.0


class _Wake(FileSystemEventHandler):
    def __init__(self, loop: asyncio.AbstractEventLoop, wake: Callable[[], None]) -> None:
        self._loop = loop
        self._wake = wake

    def on_any_event(self, event: FileSystemEvent) -> None:
        # Called in the observer's thread.
        if event.event_type not in ("opened", "closed_no_write"):
            self._loop.call_soon_threadsafe(self._wake)


class RootWatcher:
    def __init__(self, loop: asyncio.AbstractEventLoop, wake: Callable[[], None]) -> None:
        self._handler = _Wake(loop, wake)
        if sys.platform.startswith("sunos"):
            self._observer: Any = PollingObserver(timeout=POLL_SECONDS)
        else:
            self._observer = Observer()
        self._watches: dict[Path, Any] = {}

    def start(self) -> None:
        self._observer.start()

    def stop(self) -> None:
        self._observer.stop()
        self._observer.join(timeout=5)

    def follow(self, paths: Iterable[Path]) -> None:
        """Watch exactly these directories (the roots and the bundles in them)."""
        wanted = {p for p in paths if p.is_dir()}
        for path in list(self._watches):
            if path not in wanted or not path.is_dir():
                with contextlib.suppress(KeyError, OSError):
                    self._observer.unschedule(self._watches.pop(path))
        for path in wanted - set(self._watches):
            # A directory gone again already is seen by the next pass.
            with contextlib.suppress(OSError):
                self._watches[path] = self._observer.schedule(
                    self._handler, str(path), recursive=False
                )

    @property
    def watched(self) -> int:
        return len(self._watches)
