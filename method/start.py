"""The start method: bundle, display, run directory, QEMU in the contract, and
success only once QMP reports the guest running."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import attrs

from vmbundle import settings
from vmbundle.adapters import smf
from vmbundle.guest import boot, boot_record, prepare
from vmbundle.guest.boot_record import BootRecord
from vmbundle.memory import admission
from vmbundle.qemu.profile import probe
from vmbundle.service import instance
from vmbundle.vm import bundle


def start(fmri: str, bundle_read: smf.PropertyRead, say: Callable[[str], None]) -> int:
    name = smf.instance_name(fmri)
    host = settings.load(None)
    path = instance.bundle_path(fmri, name, bundle_read.value())
    b = bundle.load(path, host)
    admission.reserve(host, name, b.config, say)
    try:
        started = prepare.prepare(b, host)
        try:
            proc = boot.start_qemu(started)
            try:
                boot.wait_running(proc, started)
            except BaseException:
                boot.stop_process(proc)
                raise
        except BaseException:
            prepare.finish(name, started.run, host)
            raise
    except BaseException:
        admission.release(host, name, say)
        raise
    cfg = started.bundle.config
    boot_record.write(
        started.run,
        BootRecord(
            bundle=str(path),
            config=attrs.evolve(cfg, boot_once=None),
            profile=probe(host.qemu_binary, host.run_dir).name,
            qemu_pid=proc.pid,
            started=time.time(),
            fmri=fmri,
            display=started.display,
        ),
    )
    if cfg.boot_once is not None:
        # boot_once means this start only: the next one boots in the usual order.
        bundle.save(Path(path), attrs.evolve(cfg, boot_once=None))
    where = f"VNC display :{started.display}" if started.display is not None else "no VNC display"
    say(f"{name}: running, QEMU pid {proc.pid}, {where}")
    return 0
