"""The start method's quick path: the running controller prepares the start in
one request (POST /guests/NAME/start, vmbundle.guest.handoff), and this process
only execs QEMU, waits until QMP says the guest runs, and writes the boot
record. It imports next to nothing (no attrs, no http.client, not the host
configuration's parser): the controller has done the rest, down to reading the
instance's config/bundle, which it reads once for all the starts asking at once.

No controller, one that did not answer (it is restarting), or one that answers
that this start is the method's own: None, and the method boots the guest
itself (vmbundle.method.start), as it does on a host without a controller, so
a guest never depends on the controller to start.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vmbundle.adapters import controller_api, qemu
from vmbundle.atomic import write_atomic
from vmbundle.errors import VmbundleError
from vmbundle.guest import running
from vmbundle.guest.rundir import RunPaths
from vmbundle.service.controller import ControllerPaths

Say = Callable[[str], None]


def start(fmri: str, name: str, run_dir: Path, say: Say) -> int | None:
    """The method's exit code, or None when the method must boot the guest itself."""
    api = ControllerPaths.under(run_dir).api_socket
    asked = {"fmri": fmri, "pid": os.getpid()}
    try:
        answer = controller_api.post_quick(
            api, f"/guests/{name}/start", asked, timeout=running.BOOT_SECONDS
        )
    except controller_api.ControllerDown:
        return None
    except controller_api.Refused as exc:
        code = exc.answer.get("exit")
        if exc.status == 422 and isinstance(code, int):
            say(str(exc))
            return code
        if exc.status != 409:  # 409: the method's own start, as the controller said
            say(
                f"{name}: the vmbundle controller refused to prepare the start ({exc}); "
                "starting without it"
            )
        return None
    except VmbundleError as exc:
        say(f"{name}: {exc}; starting without it")
        return None
    for line in answer["lines"]:
        say(line)
    run = RunPaths(Path(answer["run"]))
    try:
        pid = _run_qemu(answer, run, name)
    except BaseException:
        _give_back(name, json.loads(answer["record"])["bundle"], say)
        raise
    display = answer["display"]
    where = f"VNC display :{display}" if display is not None else "no VNC display"
    say(f"{name}: running, QEMU pid {pid}, {where}")
    return 0


def _run_qemu(answer: dict[str, Any], run: RunPaths, name: str) -> int:
    until = time.monotonic() + running.BOOT_SECONDS
    proc = qemu.spawn(answer["argv"])
    try:
        running.wait_running(proc, run, name, until)
        # The record as the controller made it (BootRecord.to_json), with the two
        # fields only this process knows: boot_record itself would import the codec.
        record = json.loads(answer["record"])
        record.update(qemu_pid=proc.pid, started=time.time())
        text = json.dumps(record, indent=2) + "\n"
        write_atomic(run.state, text.encode(), mode=0o600, durable=False)
    except BaseException:
        qemu.end(proc)
        raise
    return proc.pid


def _give_back(name: str, bundle_path: str, say: Say) -> None:
    """What the controller took for this start, given back as the method's own
    path would (the failure path may import what it needs)."""
    from vmbundle import settings
    from vmbundle.guest import boot

    boot.give_back(settings.load(None), name, Path(bundle_path), say)
