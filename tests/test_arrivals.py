"""vmbundle.ops.arrivals: which bundles in the roots can be imported, and why not.

classify() on plain facts; survey() on plain directory roots and on a real zfs-fuse
pool, with bundles made by the real `vmbundle create` and real qemu-img images;
`vmbundle list --problems` through the real command on a host without SMF.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.host import TestHost, test_host
from support.zfs_pool import Pool

from vmbundle import settings as host_config
from vmbundle.ops import arrivals
from vmbundle.ops.arrivals import Checked, Facts, Instances, Receive
from vmbundle.settings import HostSettings

VM = "svc:/system/vmbundle/vm"
LATER = time.time() + 3600.0  # long after any file here changed: nothing settles


# --- classify, without I/O ------------------------------------------------------------

names = st.sampled_from(["web01", "db01", "x"])
facts = st.builds(
    Facts,
    name=names,
    path=names.map(lambda n: Path("/r") / n),
    real=st.sampled_from(["/r/web01", "/r/db01", "/r/x", "/elsewhere/web01"]),
    zfs=st.none()
    | st.builds(
        Receive, dataset=st.just("tank/vms/x"), mounted=st.booleans(), unfinished=st.booleans()
    ),
    has_config=st.booleans(),
    changed=st.none() | st.floats(min_value=0, max_value=100),
)
instance_maps = st.dictionaries(
    names.map(lambda n: f"{VM}:{n}"),
    st.sampled_from(["/r/web01", "/r/db01", "/r/x", "/elsewhere/web01"]),
    max_size=3,
)
# The validator's answer: which fields it faults, and the name vm.json gives. Its
# lines name the guest as vm.json does (the directory's name when vm.json has none).
checks = st.none() | st.tuples(
    st.lists(st.sampled_from(["ram: too much", "name: is not the bundle's"]), max_size=2),
    st.none() | names,
)


@given(facts, instance_maps, st.floats(min_value=0, max_value=200), checks)
def test_classify_gives_one_verdict_and_never_imports_twice(
    f: Facts,
    instances: dict[str, str],
    now: float,
    check: tuple[list[str], str | None] | None,
) -> None:
    checked = None
    if check is not None:
        label = check[1] or f.name
        checked = Checked(tuple(f"{label}: {fault}" for fault in check[0]), check[1])
    known = Instances.of(instances)
    got = arrivals.classify(f, known, now, checked)
    if got is None:
        # Only validation could tell, and it has not run.
        assert checked is None
        assert arrivals.classify(f, known, now, Checked((), None)) is not None
        return
    assert got.verdict in arrivals.VERDICTS
    assert (got.verdict == "imported") == (f.real in known.by_real)
    assert (got.fmri is not None) == (got.verdict == "imported")
    assert bool(got.lines) == (got.verdict in arrivals.PROBLEMS)
    assert all(line.startswith(f"{f.name}: ") for line in got.lines)
    if got.verdict == "importable":
        assert checked is not None and not checked.problems
        assert f.zfs is None or (f.zfs.mounted and not f.zfs.unfinished)
        assert f.name not in known.by_name


def _facts(**changes: object) -> Facts:
    base = Facts("web01", Path("/r/web01"), "/r/web01", None, True, 10.0)
    return attrs.evolve(base, **changes)  # type: ignore[arg-type]


def test_a_plain_directory_settles_for_two_seconds() -> None:
    none = Instances.of({})
    got = arrivals.classify(_facts(), none, 11.5, None)
    assert got is not None and got.verdict == "settling"
    assert arrivals.classify(_facts(), none, 12.0, None) is None  # validation's turn
    # A dataset is whole once received: it never settles.
    zfs = Receive("tank/vms/web01", True, False)
    assert arrivals.classify(_facts(zfs=zfs), none, 10.0, None) is None


def test_a_misnamed_bundle_gets_the_set_fix_and_other_problems_stay_invalid() -> None:
    name_line = "db01: name: is 'db01' but the bundle is named 'web01'; set name to 'web01'"
    none = Instances.of({})
    got = arrivals.classify(_facts(), none, LATER, Checked((name_line,), "db01"))
    assert got is not None and got.verdict == "misnamed"
    assert got.lines == (
        "web01: vm.json names the guest 'db01', not 'web01' as its directory; "
        "vmbundle set /r/web01 name=web01",
    )
    both = Checked((name_line, "db01: ram: too much; lower it"), "db01")
    got = arrivals.classify(_facts(), none, LATER, both)
    assert got is not None and got.verdict == "invalid"
    # Told by the directory's name, which is what the operator sees in the root.
    assert got.lines[1] == "web01: ram: too much; lower it"


# --- survey on plain directories ------------------------------------------------------


@pytest.fixture
def host(tmp_path: Path) -> Iterator[TestHost]:
    with test_host(tmp_path) as h:
        yield h


def _settings(host: TestHost, **changes: object) -> HostSettings:
    return attrs.evolve(host_config.load(host.config), **changes)  # type: ignore[arg-type]


def _create(host: TestHost, name: str, *more: str, root: str | None = None) -> None:
    where = ["--root", root] if root else []
    if root and root.startswith("/"):
        Path(root).mkdir(exist_ok=True)
    host.vmbundle("create", name, "--ram", "64M", "--vcpus", "1", "--disk", "64M", *where, *more)


def _verdicts(survey: arrivals.Survey) -> dict[str, tuple[str, tuple[str, ...]]]:
    return {a.name: (a.verdict, a.lines) for a in survey.arrivals}


def test_a_directory_root_sees_each_verdict(host: TestHost) -> None:
    for name in ("good", "named", "broken", "taken", "mine"):
        _create(host, name)
    doc = json.loads((host.root / "named" / "vm.json").read_text())
    (host.root / "named" / "vm.json").write_text(json.dumps({**doc, "name": "other"}))
    (host.root / "broken" / "disk0.qcow2").unlink()
    (host.root / "notabundle").mkdir()  # quiet and no vm.json: not a bundle at all
    instances = {
        f"{VM}:mine": str(host.root / "mine"),
        f"{VM}:taken": "/elsewhere/taken",
    }
    seen = arrivals.survey(_settings(host), instances, now=LATER)
    assert seen.roots == (arrivals.RootSeen(str(host.root), host.root, True, None),)
    assert seen.root_of(host.root / "good") == seen.roots[0]
    assert seen.root_of(host.root.parent) is None
    got = _verdicts(seen)
    assert got == {
        "good": ("importable", ()),
        "named": (
            "misnamed",
            (
                f"named: vm.json names the guest 'other', not 'named' as its directory; "
                f"vmbundle set {host.root / 'named'} name=named",
            ),
        ),
        "broken": (
            "invalid",
            ("broken: disks[0].file: 'disk0.qcow2' does not exist in the bundle",),
        ),
        "taken": (
            "taken",
            (
                f"taken: the name is taken by {VM}:taken (/elsewhere/taken); forget that guest "
                "(vmbundle forget taken), or give this bundle another name: rename the "
                f"directory and vmbundle set {host.root / 'taken'} name=NEW",
            ),
        ),
        "mine": ("imported", ()),
    }
    assert next(a for a in seen.arrivals if a.name == "mine").fmri == f"{VM}:mine"
    # The validator's own lines, as `vmbundle validate` prints them.
    proc = host.vmbundle("validate", "broken", check=False)
    assert proc.stderr.splitlines() == list(got["broken"][1])


def test_the_set_fix_of_a_misnamed_bundle_works(host: TestHost) -> None:
    _create(host, "web01")
    doc = json.loads((host.root / "web01" / "vm.json").read_text())
    (host.root / "web01" / "vm.json").write_text(json.dumps({**doc, "name": "web02"}))
    (fix,) = arrivals.survey(_settings(host), {}, now=LATER).arrivals[0].lines
    host.vmbundle(*fix.split("; ")[-1].split()[1:])
    assert _verdicts(arrivals.survey(_settings(host), {}, now=LATER)) == {
        "web01": ("importable", ())
    }


def test_a_fresh_copy_settles_then_is_importable(host: TestHost, tmp_path: Path) -> None:
    _create(host, "web01", root=str(tmp_path / "made"))
    shutil.copytree(tmp_path / "made" / "web01", host.root / "web01")
    # The newest change in the bundle: vm.json's rename touches the directory after
    # vm.json itself was written.
    copy = host.root / "web01"
    # In nanoseconds, as the survey reads it: st_mtime, a float made another way,
    # can be one ulp smaller, and the survey then sees the copy as not yet quiet.
    changed = max(p.stat().st_mtime_ns for p in (copy, *copy.iterdir())) / 1e9
    settings = _settings(host)
    (soon,) = arrivals.survey(settings, {}, now=changed + 1.0).arrivals
    assert soon.verdict == "settling"
    assert soon.lines[0].startswith(f"web01: {host.root / 'web01'} changed 1.0s ago")
    (later,) = arrivals.survey(settings, {}, now=changed + arrivals.SETTLE_SECONDS).arrivals
    assert later.verdict == "importable"


def test_a_directory_still_without_vm_json_settles_and_then_is_left_out(host: TestHost) -> None:
    (host.root / "web01").mkdir()
    (host.root / "web01" / "disk0.qcow2").write_bytes(b"")
    changed = (host.root / "web01" / "disk0.qcow2").stat().st_mtime
    seen = arrivals.survey(_settings(host), {}, now=changed + 0.5)
    assert [a.verdict for a in seen.arrivals] == ["settling"]
    assert arrivals.survey(_settings(host), {}, now=LATER).arrivals == ()


def test_a_missing_directory_root_is_unavailable(host: TestHost, tmp_path: Path) -> None:
    gone = tmp_path / "gone"
    seen = arrivals.survey(_settings(host, bundle_roots=(str(gone),)), {}, now=LATER)
    assert seen.roots == (arrivals.RootSeen(str(gone), gone, False, None),)
    assert seen.arrivals == ()


def _counting_qemu_img(tmp_path: Path) -> tuple[str, Path]:
    """A qemu-img that runs the real one and appends a line per run to a file."""
    count = tmp_path / "qemu-img-runs"
    wrapper = tmp_path / "qemu-img"
    real = shutil.which("qemu-img")
    assert real is not None
    wrapper.write_text(f'#!/bin/sh\necho "$*" >> {count}\nexec {real} "$@"\n')
    wrapper.chmod(0o755)
    return str(wrapper), count


def _runs(count: Path) -> int:
    return len(count.read_text().splitlines()) if count.exists() else 0


def test_the_cache_validates_again_only_after_a_change(host: TestHost, tmp_path: Path) -> None:
    _create(host, "web01")
    _create(host, "web02")
    wrapper, count = _counting_qemu_img(tmp_path)
    settings = _settings(host, qemu_img=wrapper)
    cache = arrivals.ValidationCache()
    first = arrivals.survey(settings, {}, cache, now=LATER)
    assert [a.verdict for a in first.arrivals] == ["importable", "importable"]
    assert _runs(count) == 2  # one image each
    assert arrivals.survey(settings, {}, cache, now=LATER) == first
    assert _runs(count) == 2
    vm_json = host.root / "web01" / "vm.json"
    vm_json.write_text(vm_json.read_text().replace('"ram": "64M"', '"ram": "128M"'))
    again = arrivals.survey(settings, {}, cache, now=LATER)
    assert _runs(count) == 3  # web01 only
    assert [a.verdict for a in again.arrivals] == ["importable", "importable"]
    # An imported bundle is never looked into.
    arrivals.survey(settings, {f"{VM}:web01": str(host.root / "web01")}, cache, now=LATER)
    vm_json.write_text("{")
    arrivals.survey(settings, {f"{VM}:web01": str(host.root / "web01")}, cache, now=LATER)
    assert _runs(count) == 3


def test_a_survey_of_200_imported_bundles_is_quick(host: TestHost) -> None:
    instances = {}
    for i in range(200):
        path = host.root / f"g{i:03d}"
        path.mkdir()
        (path / "vm.json").write_text("{}")
        instances[f"{VM}:g{i:03d}"] = str(path)
    settings = _settings(host)
    arrivals.survey(settings, instances)
    best = min(_timed(lambda: arrivals.survey(settings, instances)) for _ in range(5))
    print(f"survey of 200 imported bundles: {best * 1000:.1f} ms")
    assert best < 0.1


def _timed(work: object) -> float:
    assert callable(work)
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


# --- survey on a zfs-fuse pool --------------------------------------------------------


@pytest.fixture
def zfs_root(zfs_pool: Pool) -> Iterator[tuple[str, Path]]:
    """A fresh bundle root dataset and, beside it, a source dataset for bundles to send."""
    top = f"{zfs_pool.name}/a{secrets.token_hex(3)}"
    subprocess.run(["zfs", "create", top], check=True)
    subprocess.run(["zfs", "create", f"{top}/vms"], check=True)
    subprocess.run(["zfs", "create", f"{top}/src"], check=True)
    try:
        yield top, zfs_pool.mountpoint / top.split("/", 1)[1]
    finally:
        subprocess.run(["zfs", "destroy", "-r", top], capture_output=True)


def _sent_bundle(host: TestHost, top: str, with_data: bool = True) -> str:
    """web01 made in the source dataset, with a few MB in its disk, snapshot s1."""
    _create(host, "web01", root=f"{top}/src")
    src = f"{top}/src/web01"
    if with_data:
        disk = Path(
            subprocess.run(
                ["zfs", "get", "-H", "-o", "value", "mountpoint", src],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
        )
        (disk / "filler").write_bytes(os.urandom(6 << 20))
    subprocess.run(["zfs", "snapshot", f"{src}@s1"], check=True)
    return src


@pytest.mark.zfs
def test_a_received_bundle_is_importable(zfs_root: tuple[str, Path], tmp_path: Path) -> None:
    top, mnt = zfs_root
    with test_host(tmp_path, root=f"{top}/vms") as host:
        src = _sent_bundle(host, top)
        send = subprocess.Popen(["zfs", "send", f"{src}@s1"], stdout=subprocess.PIPE)
        subprocess.run(["zfs", "recv", f"{top}/vms/web01"], stdin=send.stdout, check=True)
        assert send.wait() == 0
        seen = arrivals.survey(_settings(host), {})
        assert seen.roots == (arrivals.RootSeen(f"{top}/vms", mnt / "vms", True, f"{top}/vms"),)
        assert _verdicts(seen) == {"web01": ("importable", ())}


@pytest.mark.zfs
def test_a_receive_cut_off_is_never_importable(zfs_root: tuple[str, Path], tmp_path: Path) -> None:
    """zfs-fuse shows the new dataset unmounted while the stream flows, and removes
    it when the stream breaks: receiving, then nothing."""
    top, mnt = zfs_root
    with test_host(tmp_path, root=f"{top}/vms") as host:
        src = _sent_bundle(host, top)
        stream = tmp_path / "stream"
        with stream.open("wb") as out:
            subprocess.run(["zfs", "send", f"{src}@s1"], stdout=out, check=True)
        half = stream.read_bytes()[: stream.stat().st_size // 2]
        recv = subprocess.Popen(
            ["zfs", "recv", f"{top}/vms/web01"],
            stdin=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            assert recv.stdin is not None
            recv.stdin.write(half)
            recv.stdin.flush()
            during = _wait_for(lambda: arrivals.survey(_settings(host), {}).arrivals)
            assert [(a.name, a.verdict) for a in during] == [("web01", "receiving")]
            assert (
                during[0]
                .lines[0]
                .startswith(
                    f"web01: dataset {top}/vms/web01: it is not mounted; wait for `zfs receive`"
                )
            )
            assert not (mnt / "vms" / "web01" / "vm.json").exists()
            recv.stdin.close()
            assert recv.wait(timeout=60) != 0
        finally:
            if recv.poll() is None:
                recv.kill()
                recv.wait()
        assert recv.stderr is not None and b"invalid backup stream" in recv.stderr.read()
        assert arrivals.survey(_settings(host), {}).arrivals == ()


@pytest.mark.zfs
def test_an_incremental_receive_cut_off_leaves_the_bundle_as_it_was(
    zfs_root: tuple[str, Path], tmp_path: Path
) -> None:
    """zfs-fuse keeps the received snapshot mounted while an incremental stream
    flows and after it breaks (no %recv child, no resume token on this zfs)."""
    top, mnt = zfs_root
    with test_host(tmp_path, root=f"{top}/vms") as host:
        src = _sent_bundle(host, top, with_data=False)
        send = subprocess.Popen(["zfs", "send", f"{src}@s1"], stdout=subprocess.PIPE)
        subprocess.run(["zfs", "recv", f"{top}/vms/web01"], stdin=send.stdout, check=True)
        assert send.wait() == 0
        before = (mnt / "vms" / "web01" / "vm.json").read_bytes()
        host.vmbundle("set", f"{mnt}/src/web01", "ram=128M")
        (mnt / "src" / "web01" / "filler").write_bytes(os.urandom(6 << 20))
        subprocess.run(["zfs", "snapshot", f"{src}@s2"], check=True)
        stream = subprocess.run(
            ["zfs", "send", "-i", "s1", f"{src}@s2"], capture_output=True, check=True
        ).stdout
        cut = subprocess.run(
            ["zfs", "recv", "-F", f"{top}/vms/web01"],
            input=stream[: len(stream) // 2],
            capture_output=True,
        )
        assert cut.returncode != 0
        assert (mnt / "vms" / "web01" / "vm.json").read_bytes() == before
        assert _verdicts(arrivals.survey(_settings(host), {})) == {"web01": ("importable", ())}


def _wait_for(probe: object, timeout: float = 30.0) -> tuple[arrivals.Arrival, ...]:
    assert callable(probe)
    deadline = time.monotonic() + timeout
    while True:
        found: tuple[arrivals.Arrival, ...] = probe()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


@pytest.mark.zfs
def test_a_plain_directory_in_a_zfs_root_settles(
    zfs_root: tuple[str, Path], tmp_path: Path
) -> None:
    top, mnt = zfs_root
    with test_host(tmp_path, root=f"{top}/vms") as host:
        _create(host, "web01", root=str(tmp_path / "made"))
        shutil.copytree(tmp_path / "made" / "web01", mnt / "vms" / "web01")
        changed = (mnt / "vms" / "web01" / "vm.json").stat().st_mtime
        settings = _settings(host)
        assert [a.verdict for a in arrivals.survey(settings, {}, now=changed).arrivals] == [
            "settling"
        ]
        assert [a.verdict for a in arrivals.survey(settings, {}, now=LATER).arrivals] == [
            "importable"
        ]


# --- vmbundle list --problems ---------------------------------------------------------


def test_list_problems_prints_each_problem_and_exits_0(host: TestHost) -> None:
    assert host.vmbundle("list", "--problems").stdout == "no problems\n"
    assert json.loads(host.vmbundle("list", "--problems", "--json").stdout) == []
    _create(host, "good")
    _create(host, "named")
    doc = json.loads((host.root / "named" / "vm.json").read_text())
    (host.root / "named" / "vm.json").write_text(json.dumps({**doc, "name": "other", "ram": "x"}))
    # Older than the settle time, so that the bundles are looked into.
    old = time.time() - 60
    for p in [*host.root.iterdir(), *host.root.glob("*/*")]:
        os.utime(p, (old, old))
    proc = host.vmbundle("list", "--problems")
    assert proc.returncode == 0
    assert proc.stdout.splitlines() == [
        'named: ram: must be a size like 20G, got "x"',
    ], proc.stdout
    rows = json.loads(host.vmbundle("list", "--problems", "--json").stdout)
    assert [(r["name"], r["verdict"], r["path"]) for r in rows] == [
        ("named", "invalid", str(host.root / "named"))
    ]
    assert rows[0]["lines"] == proc.stdout.splitlines()
