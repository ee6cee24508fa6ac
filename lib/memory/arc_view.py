"""One view of the ARC for a long-lived process (the controller), shared by the
starts it prepares at once: a read younger than MAX_AGE, with the ledger as it
was then, is answered from the view, so a boot storm reads the kstats once or
twice rather than once a start. Setting the maximum goes to the kernel and
drops the view.

The kernel's maximum matters only while the ledger has no baseline: admission
then takes it as the baseline (vmbundle.memory.admission._change). So while the
ledger has none, the view is used only if the ledger's mark (epoch, applied,
fault), read before the kstats, is still the same: no ARC maximum was asked for
or set since.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from vmbundle.memory import ledger as memory_ledger
from vmbundle.memory.arc import ArcBackend, ArcState
from vmbundle.memory.ledger import Fault

# For the arithmetic of admissions (physical memory, the ARC's bounds), which
# moves only when vmbundle moves it. The ARC's size moves by itself: whether a
# start must wait for it is asked with read_applied, never of an older view.
MAX_AGE = 0.5

Mark = tuple[int, int, Fault | None]


class SharedArcView:
    """An ArcBackend answering reads from one recent view."""

    def __init__(self, backend: ArcBackend, run_dir: Path, max_age: float = MAX_AGE) -> None:
        self.name = backend.name
        self._backend = backend
        self._run_dir = run_dir
        self._max_age = max_age
        # In this process only: threads asking at once share one read.
        self._lock = threading.Lock()
        # (when its read began, the ledger's mark then, the ARC)
        self._view: tuple[float, Mark, ArcState] | None = None

    def _ledger(self) -> tuple[Mark, bool]:
        now = memory_ledger.read(self._run_dir)
        return (now.epoch, now.applied, now.fault), now.baseline is not None

    def read(self) -> ArcState:
        mark, has_baseline = self._ledger()
        with self._lock:
            view = self._view
            if (
                view is not None
                and (has_baseline or view[1] == mark)
                and time.monotonic() - view[0] < self._max_age
            ):
                return view[2]
            return self._read_now()

    def read_applied(self, epoch: int) -> ArcState:
        """The ARC as read after the ledger recorded epoch, or a newer one, as
        set in the kernel: one read serves every start that epoch covers. The
        ledger's mark is read before the kstats, and an epoch is recorded only
        once its setting is done, so such a read saw the new maximum."""
        with self._lock:
            view = self._view
            if view is not None:
                _, (_, applied, _), state = view
                if applied >= epoch:
                    return state
            return self._read_now()

    def _read_now(self) -> ArcState:
        mark, _ = self._ledger()
        began = time.monotonic()
        state = self._backend.read()
        self._view = (began, mark, state)
        return state

    @property
    def kernel(self) -> ArcBackend:
        """The backend itself, for a caller that must see the ARC as it is now."""
        return self._backend

    def set_max(self, c_max: int) -> None:
        try:
            self._backend.set_max(c_max)
        finally:
            with self._lock:
                self._view = None
