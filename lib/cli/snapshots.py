"""snapshot, snapshots, rollback, snapshot-destroy, clone, send, recv: print what
vmbundle.ops.snapshots and vmbundle.ops.replication did."""

from __future__ import annotations

import argparse
import json
import os
import sys

import attrs

from vmbundle.cli.common import host_settings
from vmbundle.errors import UsageError
from vmbundle.ops import replication, snapshots


def cmd_snapshot(args: argparse.Namespace) -> int:
    taken = snapshots.take(
        host_settings(args),
        args.guest,
        args.snapshot,
        consistent=args.consistent,
        memory=args.memory,
    )
    notes = ["with the guest's memory: a rollback to it resumes the guest"] if taken.memory else []
    if taken.paused is not None:
        notes.append(f"the guest was paused for {taken.paused * 1000:.0f} ms")
    print(taken.snapshot + (f" ({'; '.join(notes)})" if notes else ""))
    return 0


def cmd_snapshots(args: argparse.Namespace) -> int:
    found = snapshots.listing(host_settings(args), args.guest)
    if args.json:
        print(json.dumps([{**attrs.asdict(s), "snapshot": s.short} for s in found], indent=2))
        return 0
    width = max([len(s.short) for s in found] + [len("SNAPSHOT")])
    print(f"{'SNAPSHOT':<{width}}  {'USED':>6}  TAKEN")
    for s in found:
        print(f"{s.short:<{width}}  {s.used:>6}  {s.creation}")
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    full = snapshots.rollback(
        host_settings(args), args.guest, args.snapshot, discard_newer=args.discard_newer
    )
    print(f"{args.guest}: rolled back to {full}")
    return 0


def cmd_snapshot_destroy(args: argparse.Namespace) -> int:
    print(f"destroyed {snapshots.destroy(host_settings(args), args.guest, args.snapshot)}")
    return 0


def cmd_clone(args: argparse.Namespace) -> int:
    done = snapshots.clone(host_settings(args), args.source, args.new_name)
    print(
        f"{done.name}: cloned into {done.path} ({done.dataset}), imported as {done.fmri}, disabled"
    )
    return 0


def cmd_send(args: argparse.Namespace) -> int:
    if os.isatty(sys.stdout.fileno()):
        raise UsageError(
            f"{args.guest}: a ZFS stream does not belong on a terminal; send it somewhere: "
            f"vmbundle send {args.guest} | ssh HOST vmbundle recv"
        )
    sys.stdout.flush()
    sent = replication.send(
        host_settings(args),
        args.guest,
        sys.stdout.fileno(),
        from_snapshot=args.from_snapshot,
        to_snapshot=args.to_snapshot,
    )
    what = f"incremental from {sent.incremental_from}" if sent.incremental_from else "full"
    paused = f"; the guest was paused for {sent.paused * 1000:.0f} ms" if sent.paused else ""
    print(f"sent {sent.snapshot} ({what}){paused}", file=sys.stderr)
    return 0


def cmd_recv(args: argparse.Namespace) -> int:
    if os.isatty(sys.stdin.fileno()):
        raise UsageError(
            "vmbundle recv reads a ZFS stream on stdin: vmbundle send NAME | vmbundle recv"
        )
    received = replication.receive(
        host_settings(args), args.root, sys.stdin.fileno(), force=args.force
    )
    print(f"received {received}; the controller imports it (disabled) once it is whole")
    return 0
