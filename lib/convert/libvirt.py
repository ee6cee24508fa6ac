"""vm.json <-> libvirt domain XML (https://libvirt.org/formatdomain.html).

What maps: name, uuid, description, memory, vCPUs, machine, CPU model, each disk
(file, format, bus, cache), CD-ROM (ISO or empty) and NIC (MAC, model, user /
bridge / tap as libvirt's user, bridge and ethernet interfaces), the boot order
(per-device <boot order>, one higher than boot_index: libvirt counts from 1), the
VNC display and its password, and on_poweroff / on_reboot / on_crash (libvirt's
destroy is vmbundle's disable). Device ids travel as user aliases ("ua-disk0").

What vmbundle gives every guest anyway (a serial console, ACPI, the controllers
its disks need, a PS/2 keyboard and mouse, VGA, the host's QEMU) is read without
a word; everything else an import meets is a warning line.
"""

from __future__ import annotations

import json
import re
import uuid as uuid_mod
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import attrs

from vmbundle.convert import (
    UNKNOWN_SIZE,
    ConversionError,
    DiskSource,
    Exported,
    Imported,
    field_default,
    safe_xml,
)
from vmbundle.convert import devices as all_devices
from vmbundle.convert.tracked import Node
from vmbundle.vm.model import (
    CACHE_MODES,
    CDROM_BUSES,
    DISK_BUSES,
    NIC_MODELS,
    Cdrom,
    Disk,
    KiB,
    MiB,
    Nic,
    NicBackend,
    VmConfig,
    Vnc,
)

FORMAT = "libvirt"
ALIAS_PREFIX = "ua-"  # libvirt keeps only user aliases, which must start so
DEVICE_ID_RE = re.compile(r"[a-z][a-z0-9_-]{0,30}")
MACHINE_RE = re.compile(r"pc|q35|pc-i440fx-[0-9.]+|pc-q35-[0-9.]+")

# vm.json's policy -> libvirt's lifecycle action, and back.
_ACTIONS = {"disable": "destroy", "restart": "restart", "preserve": "preserve"}
_POLICIES = {v: k for k, v in _ACTIONS.items()}
_POLICY_FIELDS = {
    "on_poweroff": ("disable", "restart"),
    "on_reboot": ("restart", "disable"),
    "on_crash": ("restart", "disable", "preserve"),
}
_TARGET_PREFIX = {"virtio": "vd", "scsi": "sd", "sata": "sd", "ide": "hd"}
# Size units libvirt accepts (formatdomain.html#memory-allocation).
_UNITS = {
    "b": 1, "bytes": 1,
    "k": KiB, "kib": KiB, "kb": 1000,
    "m": MiB, "mib": MiB, "mb": 1000**2,
    "g": 1 << 30, "gib": 1 << 30, "gb": 1000**3,
    "t": 1 << 40, "tib": 1 << 40, "tb": 1000**4,
}  # fmt: skip


# --- export -----------------------------------------------------------------------


def export(cfg: VmConfig, bundle: Path, domain_type: str) -> Exported:
    """cfg as a libvirt domain of domain_type ("kvm" or "qemu"), its files named by
    absolute paths in the bundle; a warning for each field libvirt has no place for."""
    warnings: list[str] = []

    def left_out(field: str, value: object) -> None:
        warnings.append(f"{cfg.name}: libvirt has no field for {field}={value}; left out")

    dom = ET.Element("domain", type=domain_type)
    ET.SubElement(dom, "name").text = cfg.name
    ET.SubElement(dom, "uuid").text = cfg.uuid
    if cfg.description:
        ET.SubElement(dom, "description").text = cfg.description
    ET.SubElement(dom, "memory", unit="KiB").text = str(cfg.ram // KiB)
    ET.SubElement(dom, "currentMemory", unit="KiB").text = str(cfg.ram // KiB)
    ET.SubElement(dom, "vcpu", placement="static").text = str(cfg.vcpus)
    os_el = ET.SubElement(dom, "os")
    ET.SubElement(os_el, "type", arch="x86_64", machine=cfg.machine).text = "hvm"
    features = ET.SubElement(dom, "features")
    ET.SubElement(features, "acpi")
    ET.SubElement(features, "apic")
    if cfg.cpu == "host":
        ET.SubElement(dom, "cpu", mode="host-passthrough", check="none")
    else:
        cpu = ET.SubElement(dom, "cpu", mode="custom", match="exact", check="none")
        ET.SubElement(cpu, "model", fallback="forbid").text = cfg.cpu
    for policy in _POLICY_FIELDS:
        ET.SubElement(dom, policy).text = _ACTIONS[getattr(cfg, policy)]
    devices = ET.SubElement(dom, "devices")
    letters: dict[str, int] = {}

    def target_dev(bus: str) -> str:
        prefix = _TARGET_PREFIX[bus]
        n = letters.get(prefix, 0)
        letters[prefix] = n + 1
        return prefix + _drive_letters(n)

    for disk in cfg.disks:
        el = ET.SubElement(devices, "disk", type="file", device="disk")
        ET.SubElement(el, "driver", name="qemu", type=disk.format, cache=disk.cache)
        ET.SubElement(el, "source", file=str(bundle / disk.file))
        ET.SubElement(el, "target", dev=target_dev(disk.bus), bus=disk.bus)
        _boot_and_alias(el, disk.boot_index, disk.id)
    for cd in cfg.cdroms:
        el = ET.SubElement(devices, "disk", type="file", device="cdrom")
        ET.SubElement(el, "driver", name="qemu", type="raw")
        if cd.iso is not None:
            iso = cd.iso if cd.iso.startswith("/") else str(bundle / cd.iso)
            ET.SubElement(el, "source", file=iso)
        ET.SubElement(el, "target", dev=target_dev(cd.bus), bus=cd.bus)
        ET.SubElement(el, "readonly")
        _boot_and_alias(el, cd.boot_index, cd.id)
    if any(d.bus == "scsi" for d in cfg.disks) or any(c.bus == "scsi" for c in cfg.cdroms):
        # vmbundle's SCSI disks sit on virtio-scsi; libvirt's default would be an LSI HBA.
        ET.SubElement(devices, "controller", type="scsi", index="0", model="virtio-scsi")
    for i, nic in enumerate(cfg.nics):
        b = nic.backend
        if b.type == "vnic":
            # An illumos VNIC has no libvirt counterpart; the NIC stays, on user networking.
            left_out(f"nics[{i}].backend", f"vnic:{b.name}")
            el = ET.SubElement(devices, "interface", type="user")
        elif b.type == "user":
            el = ET.SubElement(devices, "interface", type="user")
        elif b.type == "bridge":
            el = ET.SubElement(devices, "interface", type="bridge")
            ET.SubElement(el, "source", bridge=str(b.name))
        else:
            el = ET.SubElement(devices, "interface", type="ethernet")
            ET.SubElement(el, "target", dev=str(b.name), managed="no")
        if nic.mac is not None:
            ET.SubElement(el, "mac", address=nic.mac)
        ET.SubElement(el, "model", type=nic.model)
        _boot_and_alias(el, nic.boot_index, nic.id)
    serial = ET.SubElement(devices, "serial", type="pty")
    ET.SubElement(serial, "target", port="0")
    console = ET.SubElement(devices, "console", type="pty")
    ET.SubElement(console, "target", type="serial", port="0")
    if cfg.vnc.enabled:
        graphics = ET.SubElement(devices, "graphics", type="vnc", port="-1", autoport="yes")
        if cfg.vnc.password is not None:
            graphics.set("passwd", cfg.vnc.password)
    video = ET.SubElement(devices, "video")
    ET.SubElement(video, "model", type="vga")

    if cfg.boot_once is not None:
        left_out("boot_once", cfg.boot_once)
    for name in ("stop_timeout", "autostart", "max_vcpus", "max_ram", "unplug_timeout"):
        value = getattr(cfg, name)
        if value != field_default(VmConfig, name):
            left_out(name, json.dumps(value))
    ET.indent(dom)
    return Exported(ET.tostring(dom, encoding="unicode") + "\n", tuple(warnings))


def _drive_letters(n: int) -> str:
    """0 -> a, 25 -> z, 26 -> aa: the suffix of a target like vdaa."""
    out = ""
    n += 1
    while n:
        n, r = divmod(n - 1, 26)
        out = chr(ord("a") + r) + out
    return out


def _boot_and_alias(el: ET.Element, boot_index: int | None, device_id: str) -> None:
    if boot_index is not None:
        ET.SubElement(el, "boot", order=str(boot_index + 1))
    ET.SubElement(el, "alias", name=ALIAS_PREFIX + device_id)


# --- import -----------------------------------------------------------------------


class _Reader:
    """One import: the guest's name for every line, and the warnings so far."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.warnings: list[str] = []

    def fail(self, where: str, problem: str) -> ConversionError:
        return ConversionError(f"{self.name}: {FORMAT} {where}: {problem}")

    def left_out(self, what: str, why: str = "") -> None:
        self.warnings.append(
            f"{self.name}: vmbundle has no field for {FORMAT} {what}{why}; left out"
        )

    def choice(self, node: Node, attr: str, allowed: tuple[str, ...], default: str) -> str:
        value = node.attr(attr)
        if value is None:
            return default
        if value not in allowed:
            raise self.fail(
                f"{node.path}/@{attr}",
                f"{value!r} is not one vmbundle has; change it to one of {', '.join(allowed)}",
            )
        return value


def parse(data: bytes, name: str, new_uuid: Callable[[], str] | None = None) -> Imported:
    """The guest a libvirt domain XML document describes, named name."""
    r = _Reader(name)
    try:
        root = safe_xml.parse(data)
    except safe_xml.UnsafeXml as exc:
        raise ConversionError(f"{name}: {FORMAT} XML refused: {exc}; remove the DOCTYPE") from None
    except ValueError as exc:
        raise ConversionError(
            f"{name}: not well-formed XML ({exc}); give a domain as virsh dumpxml writes it"
        ) from None
    if root.tag != "domain":
        raise r.fail(
            root.tag, "the document is not a <domain>; give a domain as virsh dumpxml writes it"
        )
    dom = Node(root, "")
    kind = dom.attr("type")
    if kind not in ("kvm", "qemu"):
        raise r.fail(
            "@type", f"{kind!r} is not a QEMU guest; only type kvm or qemu can be imported"
        )
    dom.accept("name")  # the bundle takes the name given to the import
    uuid = _text(dom, "uuid")
    if uuid is not None:
        uuid = uuid.lower()
        if (
            re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", uuid)
            is None
        ):
            raise r.fail("uuid", f"{uuid!r} is not a UUID; correct it or remove it")
    description = _text(dom, "description") or ""
    ram = _memory(r, dom)
    vcpus = _vcpus(r, dom)
    machine, boot_devs = _os(r, dom)
    features = dom.child("features")
    if features is not None:
        features.accept("acpi", "apic", "pae")  # every vmbundle guest has them
    cpu = _cpu(r, dom)

    devices = dom.child("devices") or Node(ET.Element("devices"), "devices")
    # The host's own QEMU runs the guest; what the devices need, vmbundle adds.
    devices.accept("emulator", "controller")
    disks, cdroms, sources = _disks(r, devices)
    nics = _nics(r, devices)
    vnc = _graphics(r, devices)
    _consoles_and_inputs(r, devices)
    cfg = VmConfig(
        schema_version=1,
        name=name,
        uuid=uuid or (new_uuid() if new_uuid else str(uuid_mod.uuid4())),
        ram=ram,
        vcpus=vcpus,
        description=description,
        machine=machine,
        cpu=cpu,
        disks=tuple(disks),
        cdroms=tuple(cdroms),
        nics=tuple(nics),
        vnc=vnc,
        on_poweroff=_policy(r, dom, "on_poweroff"),
        on_reboot=_policy(r, dom, "on_reboot"),
        on_crash=_policy(r, dom, "on_crash"),
    )
    if boot_devs:
        cfg = _boot_by_class(r, cfg, boot_devs)
    for what in dom.leftovers():
        r.left_out(what)
    return Imported(cfg, tuple(sources), tuple(r.warnings))


def _text(node: Node, tag: str) -> str | None:
    child = node.child(tag)
    return child.text() if child is not None else None


def _size(r: _Reader, node: Node) -> int:
    unit = (node.attr("unit") or "KiB").lower()
    if unit not in _UNITS or not node.text().isdigit():
        raise r.fail(
            node.path,
            f"{node.text()!r} {unit} is not a size; write it like <{node.tag} unit='KiB'>262144</{node.tag}>",
        )
    return int(node.text()) * _UNITS[unit]


def _memory(r: _Reader, dom: Node) -> int:
    mem = dom.child("memory")
    if mem is None:
        raise r.fail("memory", "is missing; add <memory unit='MiB'>...</memory>")
    ram = _size(r, mem)
    if ram % MiB:
        rounded = -(-ram // MiB) * MiB
        r.warnings.append(
            f"{r.name}: {FORMAT} memory {ram} bytes is not whole MiB; rounded up to {rounded >> 20}M"
        )
        ram = rounded
    current = dom.child("currentMemory")
    if current is not None and _size(r, current) != ram:
        r.left_out("currentMemory", " (a balloon target below memory)")
    return ram


def _vcpus(r: _Reader, dom: Node) -> int:
    vcpu = dom.child("vcpu")
    if vcpu is None:
        return 1  # libvirt's own default
    if vcpu.attr("placement") not in (None, "static"):
        r.left_out(f"vcpu/@placement={vcpu.attr('placement')}")
    if not vcpu.text().isdigit() or int(vcpu.text()) < 1:
        raise r.fail(
            "vcpu", f"{vcpu.text()!r} is not a number of CPUs; write it like <vcpu>2</vcpu>"
        )
    return int(vcpu.text())


def _os(r: _Reader, dom: Node) -> tuple[str, list[str]]:
    os_node = dom.child("os")
    if os_node is None:
        return "pc", []
    machine = "pc"
    type_node = os_node.child("type")
    if type_node is not None:
        if type_node.text() != "hvm":
            raise r.fail(
                "os/type",
                f"{type_node.text()!r} is not a full virtual machine; only hvm can be imported",
            )
        arch = type_node.attr("arch")
        if arch not in (None, "x86_64", "i686"):
            raise r.fail(
                "os/type/@arch",
                f"{arch!r}: vmbundle runs x86_64 guests; only x86_64 can be imported",
            )
        given = type_node.attr("machine")
        if given is not None:
            if MACHINE_RE.fullmatch(given) is None:
                raise r.fail(
                    "os/type/@machine",
                    f"{given!r} is not a machine vmbundle has; change it to pc or q35",
                )
            machine = given
    boot = []
    for b in os_node.children("boot"):
        dev = b.attr("dev")
        if dev not in ("hd", "cdrom", "network", "fd"):
            raise r.fail(
                f"{b.path}/@dev", f"{dev!r} is not a boot device; use hd, cdrom or network"
            )
        boot.append(str(dev))
    return machine, boot


def _cpu(r: _Reader, dom: Node) -> str:
    cpu = dom.child("cpu")
    if cpu is None:
        return "qemu64"  # what QEMU gives a guest without a CPU model, as libvirt leaves it
    cpu.accept_attrs("check", "match", "migratable")
    mode = cpu.attr("mode") or "custom"
    if mode == "host-passthrough":
        return "host"
    if mode == "host-model":
        r.warnings.append(
            f"{r.name}: {FORMAT} cpu mode host-model has no vmbundle field; used cpu=host, the host's own CPU"
        )
        return "host"
    if mode != "custom":
        raise r.fail(
            "cpu/@mode",
            f"{mode!r} is not a CPU mode vmbundle has; use custom, host-model or host-passthrough",
        )
    model = cpu.child("model")
    if model is None:
        return "qemu64"
    model.accept_attrs("fallback")
    name = model.text()
    if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", name) is None:
        raise r.fail("cpu/model", f"{name!r} is not a CPU model name; use one like qemu64")
    return name


def _policy(r: _Reader, dom: Node, field: str) -> str:
    node = dom.child(field)
    if node is None:
        return str(field_default(VmConfig, field))
    action = node.text()
    policy = _POLICIES.get(action)
    allowed = _POLICY_FIELDS[field]
    if policy not in allowed:
        choices = ", ".join(_ACTIONS[p] for p in allowed)
        raise r.fail(
            field, f"{action!r} is not an action vmbundle has; change it to one of {choices}"
        )
    return str(policy)


def _device_id(r: _Reader, el: Node, prefix: str, taken: set[str], n: int) -> str:
    alias = el.child("alias")
    name = alias.attr("name") if alias is not None else None
    if name and name.startswith(ALIAS_PREFIX):
        wanted = name[len(ALIAS_PREFIX) :]
        if DEVICE_ID_RE.fullmatch(wanted) and wanted not in taken:
            taken.add(wanted)
            return wanted
    candidate = f"{prefix}{n}"
    while candidate in taken:
        n += 1
        candidate = f"{prefix}{n}"
    taken.add(candidate)
    return candidate


def _boot_order(r: _Reader, el: Node) -> int | None:
    boot = el.child("boot")
    if boot is None:
        return None
    order = boot.attr("order") or ""
    if not order.isdigit() or not 1 <= int(order) <= 100:
        raise r.fail(
            f"{boot.path}/@order", f"{order!r}: vmbundle keeps boot orders 1 to 100; renumber them"
        )
    boot.accept_attrs("loadparm")
    return int(order) - 1


def _disks(r: _Reader, devices: Node) -> tuple[list[Disk], list[Cdrom], list[DiskSource]]:
    disks: list[Disk] = []
    cdroms: list[Cdrom] = []
    sources: list[DiskSource] = []
    taken: set[str] = set()
    for el in devices.children("disk"):
        device = el.attr("device") or "disk"
        kind = el.attr("type") or "file"
        if device not in ("disk", "cdrom"):
            r.left_out(el.path, f" (a {device})")
            continue
        if kind not in ("file", "block"):
            raise r.fail(
                f"{el.path}/@type",
                f"a {kind} disk cannot be copied into a bundle; copy it to a file and name that",
            )
        source = el.child("source")
        path = None
        if source is not None:
            path = source.attr("file" if kind == "file" else "dev")
            source.accept_attrs("index")
        el.accept("address")  # vmbundle places its devices itself
        target = el.child("target")
        bus = "virtio" if device == "disk" else "ide"
        if target is not None:
            target.accept_attrs("dev")
            buses = DISK_BUSES if device == "disk" else CDROM_BUSES
            bus = r.choice(target, "bus", buses, bus)
        driver = el.child("driver")
        fmt = None
        cache = "writeback"
        if driver is not None:
            driver.accept_attrs("name")
            fmt = driver.attr("type")
            given = driver.attr("cache")
            if given not in (None, "default"):
                cache = r.choice(driver, "cache", CACHE_MODES, cache)
        boot_index = _boot_order(r, el)
        if device == "cdrom":
            el.accept("readonly")
            cd_id = _device_id(r, el, "cd", taken, len(cdroms))
            cdroms.append(Cdrom(id=cd_id, iso=path, bus=bus, boot_index=boot_index))
            continue
        if path is None:
            raise r.fail(
                el.path, "a disk without a source has no image to copy; add <source file='...'/>"
            )
        disk_id = _device_id(r, el, "disk", taken, len(disks))
        disks.append(
            Disk(
                id=disk_id,
                file=f"{disk_id}.qcow2",
                size=UNKNOWN_SIZE,
                format="qcow2",
                bus=bus,
                cache=cache,
                boot_index=boot_index,
            )
        )
        sources.append(DiskSource(disk_id, path, fmt))
    return disks, cdroms, sources


def _nics(r: _Reader, devices: Node) -> list[Nic]:
    nics: list[Nic] = []
    taken: set[str] = set()
    for el in devices.children("interface"):
        kind = el.attr("type")
        where = el.path
        if kind == "user":
            backend = NicBackend("user")
        elif kind == "bridge":
            source = el.child("source")
            bridge = source.attr("bridge") if source is not None else None
            if not bridge:
                raise r.fail(
                    where, "a bridge interface names its bridge; add <source bridge='br0'/>"
                )
            backend = NicBackend("bridge", bridge)
        elif kind == "ethernet":
            target = el.child("target")
            dev = target.attr("dev") if target is not None else None
            if target is not None:
                target.accept_attrs("managed")
            if not dev:
                raise r.fail(
                    where, "an ethernet interface names its tap device; add <target dev='tap0'/>"
                )
            backend = NicBackend("tap", dev)
        elif kind in ("network", "direct"):
            # The NIC and its MAC stay; what it was plugged into has no vmbundle form.
            source = el.child("source")
            what = " ".join(f"{k}={v}" for k, v in (source.el.attrib.items() if source else ()))
            if source is not None:
                source.accept_attrs(*source.el.attrib)
            r.warnings.append(
                f"{r.name}: vmbundle has no field for {FORMAT} {where} (type={kind} {what}); "
                "left out, the NIC uses the user-mode network (set its backend with vmbundle set)"
            )
            backend = NicBackend("user")
        else:
            raise r.fail(
                f"{where}/@type",
                f"{kind!r} is not a network vmbundle has; use user, bridge or ethernet",
            )
        mac_node = el.child("mac")
        mac = mac_node.attr("address") if mac_node is not None else None
        if mac is not None:
            mac = mac.lower()
            if re.fullmatch(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}", mac) is None:
                raise r.fail(
                    f"{where}/mac", f"{mac!r} is not a MAC address; write it like 52:54:00:12:34:56"
                )
        model_node = el.child("model")
        model = r.choice(model_node, "type", NIC_MODELS, "virtio") if model_node else "virtio"
        el.accept("address")
        nic_id = _device_id(r, el, "net", taken, len(nics))
        nics.append(
            Nic(id=nic_id, model=model, mac=mac, backend=backend, boot_index=_boot_order(r, el))
        )
    return nics


def _graphics(r: _Reader, devices: Node) -> Vnc:
    shown = devices.children("graphics")
    vnc = [g for g in shown if g.attr("type") == "vnc"]
    for g in shown:
        if g.attr("type") != "vnc":
            r.left_out(g.path, f" (type={g.attr('type')}); vmbundle gives the guest a VNC display")
    devices.accept("video")  # every vmbundle guest has a standard VGA
    if not vnc:
        return Vnc(enabled=bool(shown))
    g = vnc[0]
    # Display numbers, ports and addresses are the host's to give (vmbundle's display range).
    g.accept_attrs("port", "autoport", "listen", "websocket")
    g.accept("listen")
    password = g.attr("passwd")
    if password is not None and re.fullmatch(r"[!-~]{1,8}", password) is None:
        raise r.fail(
            f"{g.path}/@passwd", "a VNC password is 1 to 8 printable characters; shorten it"
        )
    return Vnc(enabled=True, password=password)


def _consoles_and_inputs(r: _Reader, devices: Node) -> None:
    # vmbundle gives every guest one serial console (its socket in the run directory).
    serials = devices.children("serial")
    for extra in serials[1:]:
        r.left_out(extra.path, " (a second serial port)")
    if serials:
        devices.accept("serial")
    devices.accept("console")
    for inp in devices.children("input"):
        if inp.attr("bus") in (None, "ps2") and inp.attr("type") in ("mouse", "keyboard"):
            continue  # the PS/2 keyboard and mouse every PC has
        r.left_out(inp.path, f" (type={inp.attr('type')} bus={inp.attr('bus')})")
        inp.accept_attrs(*inp.el.attrib)


def _boot_by_class(r: _Reader, cfg: VmConfig, boot_devs: list[str]) -> VmConfig:
    """<os><boot dev=...> (by class, as virt-install writes it) as boot indexes: each
    class's devices in document order, the classes in the given order."""
    if any(d.boot_index is not None for d in all_devices(cfg)):
        raise ConversionError(
            f"{r.name}: {FORMAT} os/boot and per-device <boot order> are both given; keep one"
        )
    order: list[str] = []
    for dev in boot_devs:
        if dev == "hd":
            order += [d.id for d in cfg.disks]
        elif dev == "cdrom":
            order += [c.id for c in cfg.cdroms]
        elif dev == "network":
            order += [n.id for n in cfg.nics]
        else:
            r.left_out("os/boot dev=fd", " (vmbundle has no floppy)")
    rank = {dev_id: i for i, dev_id in enumerate(dict.fromkeys(order))}
    return attrs.evolve(
        cfg,
        disks=tuple(attrs.evolve(d, boot_index=rank.get(d.id)) for d in cfg.disks),
        cdroms=tuple(attrs.evolve(c, boot_index=rank.get(c.id)) for c in cfg.cdroms),
        nics=tuple(attrs.evolve(n, boot_index=rank.get(n.id)) for n in cfg.nics),
    )
