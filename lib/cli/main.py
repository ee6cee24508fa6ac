"""`vmbundle`: the operator's command. Each subcommand lives in a small module and
is imported only when it runs, so the command starts quickly."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from vmbundle.errors import HostFault, VmbundleError

# subcommand -> (module in vmbundle.cli, function)
_COMMANDS = {
    "create": ("create", "cmd_create"),
    "destroy": ("create", "cmd_destroy"),
    "show": ("inspect", "cmd_show"),
    "validate": ("inspect", "cmd_validate"),
    "schema": ("inspect", "cmd_schema"),
    "qemu-argv": ("inspect", "cmd_qemu_argv"),
    "set": ("edit", "cmd_set"),
    "disk": ("disks", "cmd_disk"),
    "iso": ("edit", "cmd_iso"),
    "nic": ("nics", "cmd_nic"),
    "run": ("run", "cmd_run"),
    "import": ("service", "cmd_import"),
    "forget": ("service", "cmd_forget"),
    "start": ("service", "cmd_start"),
    "stop": ("service", "cmd_stop"),
    "promote": ("service", "cmd_promote"),
    "restart": ("service", "cmd_restart"),
    "list": ("listing", "cmd_list"),
    "status": ("listing", "cmd_status"),
    "smf": ("smf", "cmd_smf"),
    "memory": ("memory", "cmd_memory"),
    "screenshot": ("controller", "cmd_screenshot"),
    "qmp": ("controller", "cmd_qmp"),
    "events": ("controller", "cmd_events"),
    "user": ("users", "cmd_user"),
    "snapshot": ("snapshots", "cmd_snapshot"),
    "snapshots": ("snapshots", "cmd_snapshots"),
    "rollback": ("snapshots", "cmd_rollback"),
    "snapshot-destroy": ("snapshots", "cmd_snapshot_destroy"),
    "clone": ("snapshots", "cmd_clone"),
    "send": ("snapshots", "cmd_send"),
    "recv": ("snapshots", "cmd_recv"),
    "export": ("interchange", "cmd_export"),
    "import-config": ("interchange", "cmd_import_config"),
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="vmbundle", description="Guests as ZFS bundles and SMF instances."
    )
    p.add_argument(
        "--config",
        help="host configuration file (default $VMBUNDLE_CONFIG or /etc/vmbundle/vmbundle.toml)",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    c = sub.add_parser("create", help="make a new bundle: vm.json and its disks")
    c.add_argument("name")
    c.add_argument("--root", help="bundle root (a configured root, a dataset or a directory)")
    c.add_argument("--ram", required=True, help="memory, like 2G")
    c.add_argument("--vcpus", required=True, type=int)
    c.add_argument(
        "--disk",
        action="append",
        default=[],
        metavar="SIZE[,bus=B][,format=F][,cache=C]",
        help="add a disk (repeatable)",
    )
    c.add_argument(
        "--iso",
        action="append",
        default=[],
        metavar="PATH",
        help="add a CD-ROM with this ISO (repeatable)",
    )
    c.add_argument("--cdrom", action="store_true", help="add an empty CD-ROM drive")
    c.add_argument(
        "--nic",
        action="append",
        default=[],
        metavar="user|vnic:L|tap:L|bridge:L[,model=M]",
        help="add a NIC (repeatable)",
    )
    c.add_argument(
        "--boot", metavar="ID,ID...", help="boot order by device id (default: disks, then CD-ROMs)"
    )
    c.add_argument(
        "--boot-once", metavar="ID", help="boot this device first on the next start only"
    )
    c.add_argument("--machine", default="pc")
    c.add_argument("--cpu", default="qemu64")
    c.add_argument("--description", default="")
    c.add_argument("--no-vnc", action="store_true", help="no VNC display")
    c.add_argument(
        "--import",
        dest="import_",
        action="store_true",
        help="also make its SMF instance (disabled)",
    )

    d = sub.add_parser("destroy", help="delete a stopped guest's bundle and disks")
    d.add_argument("guest")
    d.add_argument("--yes", action="store_true", help="really delete it")

    s = sub.add_parser("show", help="a guest's configuration")
    s.add_argument("guest")
    s.add_argument("--json", action="store_true")

    v = sub.add_parser("validate", help="check a bundle; exit 1 with one line per problem")
    v.add_argument("guest")

    sub.add_parser("schema", help="print the JSON Schema of vm.json")

    q = sub.add_parser("qemu-argv", help="print the exact QEMU command line for a guest")
    q.add_argument("guest")
    q.add_argument(
        "--display", type=int, help="VNC display number to show (default: the next free one)"
    )

    st = sub.add_parser("set", help="change vm.json keys, like ram=4G or disks.disk0.cache=none")
    st.add_argument("guest")
    st.add_argument("assignments", nargs="+", metavar="KEY=VALUE")

    dk = sub.add_parser("disk", help="add, remove or resize a disk (live when the guest runs)")
    dsub = dk.add_subparsers(dest="disk_command", required=True, metavar="add|remove|resize")
    da = dsub.add_parser("add", help="add a disk (a new image, or a copy of --from IMAGE)")
    da.add_argument("guest")
    da.add_argument("size", nargs="?", help="size, like 20G (default with --from: the image's)")
    da.add_argument(
        "--from", dest="source", metavar="IMAGE", help="convert this image into the bundle"
    )
    da.add_argument("--bus", default="virtio")
    da.add_argument("--format", default="qcow2")
    da.add_argument("--cache", default="writeback")
    drm = dsub.add_parser("remove", help="take a disk out; its image stays unless --delete")
    drm.add_argument("guest")
    drm.add_argument(
        "disk", help="disk id, like disk1 (with --delete also an image left by a remove)"
    )
    drm.add_argument(
        "--delete", action="store_true", help="delete the image too, once no QEMU has it open"
    )
    dr = dsub.add_parser("resize", help="grow a disk (live when the guest runs)")
    dr.add_argument("guest")
    dr.add_argument("disk", help="disk id, like disk0")
    dr.add_argument("size", help="new size, like 40G")
    dr.add_argument(
        "--allow-shrink", action="store_true", help="allow a smaller size (loses data at the end)"
    )

    nc = sub.add_parser("nic", help="add or remove a network card (live when the guest runs)")
    nsub = nc.add_subparsers(dest="nic_command", required=True, metavar="add|remove")
    na = nsub.add_parser("add", help="add a NIC; its MAC is chosen now and kept")
    na.add_argument("guest")
    na.add_argument(
        "backend",
        nargs="?",
        default="user",
        metavar="user|vnic:L|tap:L|bridge:L",
        help="where its traffic goes (default: user)",
    )
    na.add_argument("--model", default="virtio", help="virtio (default) or e1000")
    na.add_argument("--mac", help="a MAC like 52:54:00:12:34:56 (default: a new one)")
    nr = nsub.add_parser("remove", help="take a NIC out")
    nr.add_argument("guest")
    nr.add_argument("nic", help="NIC id, like net1")

    i = sub.add_parser("iso", help="put an ISO in a CD-ROM drive, or take it out")
    isub = i.add_subparsers(dest="iso_command", required=True, metavar="attach|detach")
    ia = isub.add_parser("attach")
    ia.add_argument("guest")
    ia.add_argument("iso")
    ia.add_argument("--drive", help="CD-ROM id (default: the first; one is added if there is none)")
    idt = isub.add_parser("detach")
    idt.add_argument("guest")
    idt.add_argument("--drive", help="CD-ROM id (default: the first)")

    r = sub.add_parser("run", help="boot a guest in the foreground (debugging, demos)")
    r.add_argument("guest")

    im = sub.add_parser("import", help="make a bundle's SMF instance (disabled)")
    im.add_argument("guest", help="a guest name in the bundle roots, or a bundle's path")
    im.add_argument("--json", action="store_true")
    fg = sub.add_parser("forget", help="remove a stopped guest's SMF instance, keep its bundle")
    fg.add_argument("guest")
    for name, what in (
        ("start", "enable the guest's SMF instance"),
        ("stop", "disable the guest's SMF instance (ACPI power-off, then quit)"),
        ("restart", "restart the guest's SMF instance"),
    ):
        sp = sub.add_parser(name, help=what)
        sp.add_argument("guest")
        sp.add_argument("--wait", action="store_true", help="wait until it is online or disabled")
        if name == "start":
            sp.add_argument(
                "--take-over",
                action="store_true",
                help="run it here although another host owns it and never released it "
                "(after that host died): bumps the owner record's generation",
            )
        if name == "stop":
            sp.add_argument(
                "--force",
                action="store_true",
                help="quit QEMU at once instead of pressing the power button (a power cut)",
            )
    pr = sub.add_parser(
        "promote", help="make this host the home of a replica received from another host"
    )
    pr.add_argument("guest")
    pr.add_argument(
        "--take-over",
        action="store_true",
        help="also when the other host never released it (it died): bumps the generation",
    )
    ls = sub.add_parser("list", help="every guest: SMF state, display, RAM, vCPUs, bundle")
    ls.add_argument("--json", action="store_true")
    ls.add_argument(
        "--problems",
        action="store_true",
        help="only the bundles in the roots that cannot be imported now, and why",
    )
    stt = sub.add_parser(
        "status", help="a guest's SMF state and reason, run state, display, pending changes"
    )
    stt.add_argument("guest")
    stt.add_argument("--json", action="store_true")
    stt.add_argument(
        "--show-password",
        action="store_true",
        help="print the running guest's display password only (root: it is 0600)",
    )

    mm = sub.add_parser(
        "memory", help="physical memory, the ARC and each guest's charge; what a guest would do"
    )
    mm.add_argument("memory_command", nargs="?", choices=["reconcile"], help="settle the ledger")
    mm.add_argument("--size", help="what a guest with this much RAM would do, like 4G")
    mm.add_argument("--vcpus", type=int, default=1, help="its vCPUs (with --size)")
    mm.add_argument("--json", action="store_true")

    # These three ask the running controller, which holds the guests' QMP sessions.
    sc = sub.add_parser("screenshot", help="save a running guest's screen as PNG")
    sc.add_argument("guest")
    sc.add_argument("-o", "--output", required=True, help="the PNG file to write, or - for stdout")
    sc.add_argument("--width", type=int, help="downscale to this many pixels wide")
    qm = sub.add_parser("qmp", help="one QMP command through the controller's session")
    qm.add_argument("guest")
    qm.add_argument("qmp_command", metavar="command", help="a QMP command, like query-status")
    qm.add_argument("arguments", nargs="?", help="its arguments, a JSON object")
    qm.add_argument("--timeout", type=float, default=10.0, help="seconds to wait (default 10)")
    ev = sub.add_parser("events", help="follow the controller's events, one JSON line each")
    ev.add_argument("guest", nargs="?", help="only this guest's")

    sn = sub.add_parser("snapshot", help="one ZFS snapshot of the whole guest: disks and vm.json")
    sn.add_argument("guest")
    sn.add_argument("snapshot", nargs="?", help="its name (default vmbundle-<UTC time>)")
    sn.add_argument(
        "--consistent",
        action="store_true",
        help="pause a running guest for the instant of the snapshot (QMP stop, cont)",
    )
    sn.add_argument(
        "--memory",
        action="store_true",
        help="also save the running guest's memory into the snapshot, so a rollback "
        "resumes it where it was",
    )
    sl = sub.add_parser("snapshots", help="the guest's snapshots, oldest first")
    sl.add_argument("guest")
    sl.add_argument("--json", action="store_true")
    rb = sub.add_parser("rollback", help="put a stopped guest back as its snapshot has it")
    rb.add_argument("guest")
    rb.add_argument("snapshot")
    rb.add_argument(
        "--discard-newer", action="store_true", help="destroy the snapshots taken after it"
    )
    sd = sub.add_parser("snapshot-destroy", help="destroy one of the guest's snapshots")
    sd.add_argument("guest")
    sd.add_argument("snapshot")
    cl = sub.add_parser("clone", help="a new guest from a snapshot, imported disabled")
    cl.add_argument("source", metavar="NAME@SNAP")
    cl.add_argument("new_name", metavar="NEWNAME")

    se = sub.add_parser("send", help="the guest as a ZFS stream on stdout, full or incremental")
    se.add_argument("guest")
    se.add_argument("--from", dest="from_snapshot", help="incremental from this snapshot")
    se.add_argument(
        "--to", dest="to_snapshot", help="send this snapshot (default: take a consistent one)"
    )
    rv = sub.add_parser("recv", help="read a guest's ZFS stream from stdin into a bundle root")
    rv.add_argument("root", nargs="?", help="a ZFS bundle root (default: the first configured)")
    rv.add_argument(
        "--force", action="store_true", help="roll the replica back to its last snapshot first"
    )

    ex = sub.add_parser("export", help="print the guest as libvirt domain XML or vmadm JSON")
    ex.add_argument("guest")
    ex.add_argument("--format", required=True, choices=["libvirt", "vmadm"])
    ic = sub.add_parser("import-config", help="a new bundle from libvirt domain XML or vmadm JSON")
    ic.add_argument("file", help="the document (virsh dumpxml, vmadm get)")
    ic.add_argument("--format", required=True, choices=["libvirt", "vmadm"])
    ic.add_argument("--name", required=True, help="the new guest's name")
    ic.add_argument("--root", help="bundle root (default: the first configured)")

    us = sub.add_parser("user", help="the web console's users: add, list, remove")
    usub = us.add_subparsers(dest="user_command", required=True, metavar="add|list|remove")
    ua = usub.add_parser("add", help="add a user; the password is read from the terminal or stdin")
    ua.add_argument("name")
    ua.add_argument("--role", required=True, help="admin, operator or viewer")
    ua.add_argument("--replace", action="store_true", help="set a new role and password")
    ul = usub.add_parser("list", help="the users and their roles")
    ul.add_argument("--json", action="store_true")
    ur = usub.add_parser("remove", help="remove a user")
    ur.add_argument("name")

    sm = sub.add_parser("smf", help="the SMF manifests")
    smsub = sm.add_subparsers(dest="smf_command", required=True, metavar="install")
    si = smsub.add_parser(
        "install", help="write the manifests for this installation and import them"
    )
    si.add_argument(
        "--dir", help="where to write them (default: [smf] manifest_dir of the host configuration)"
    )
    si.add_argument("--no-import", action="store_true", help="write them only")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    module, func = _COMMANDS[args.command]
    try:
        handler = getattr(importlib.import_module(f"vmbundle.cli.{module}"), func)
        code: int = handler(args)
    except VmbundleError as exc:
        print(str(exc), file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        # A fault of the world the core did not name a guest for: still one line.
        fault = HostFault("vmbundle", exc, unchanged=False)
        print(str(fault), file=sys.stderr)
        return fault.exit_code
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
