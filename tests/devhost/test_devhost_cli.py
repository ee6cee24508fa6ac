"""`devhost up|down|status|env`, run as the real command on a real zfs-fuse."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from dh_support import GIB, KernelHost, devhost, tear_down, up_args
from support.zfs_pool import Pool

from devhost import zfspool
from devhost.kernel import arc
from devhost.smf import notify
from devhost.smf.startd import daemon
from vmbundle import settings
from vmbundle.guest.rundir import RunPaths

pytestmark = pytest.mark.zfs


def _up(state: Path, physmem: str | None = "16G") -> subprocess.CompletedProcess[str]:
    return devhost("up", "--state", str(state), *up_args(physmem))


def _down(state: Path) -> subprocess.CompletedProcess[str]:
    return devhost("down", "--state", str(state))


# First in this file on purpose: it needs a machine where no zfs-fuse runs yet,
# before the session's test pool (which the other tests keep up) exists.
def test_up_starts_zfs_fuse_when_none_runs_and_down_stops_it(tmp_path: Path) -> None:
    if shutil.which("zfs-fuse") is None:
        pytest.skip("zfs-fuse is not installed")
    if zfspool.daemon_answers():
        pytest.skip("a zfs-fuse daemon already runs on this machine; cannot watch one start")
    state = tmp_path / "dh"
    try:
        _up(state)
        pid = zfspool.started_daemon_pid(state)
        assert pid is not None
        assert (state / zfspool.STATE_RECORD).read_text().strip() == str(pid)
        out = _down(state)
        assert f"stopped zfs-fuse (pid {pid})" in out.stdout
        assert not zfspool.daemon_answers()
        assert not Path(f"/proc/{pid}").exists()
    finally:
        tear_down(state)


def test_up_boots_kernel_tools_pool_and_config(tmp_path: Path, devhost_states: list[Path]) -> None:
    state = tmp_path / "dh"
    devhost_states.append(state)
    out = _up(state)
    assert f"devhost {state} is up" in out.stdout
    pool = zfspool.pool_for(state)
    assert pool.name.startswith("dh") and pool.name in zfspool.imported_pools()
    assert os.path.ismount(pool.vms) and os.path.ismount(pool.iso)
    # Out of zpool.cache, so a killed daemon's successor does not bring it back.
    cachefile = subprocess.run(
        ["zpool", "get", "cachefile", pool.name], capture_output=True, text=True
    )
    assert cachefile.stdout.split()[-2:] == ["none", "local"], cachefile.stdout
    assert pool.vms.is_relative_to(state) and pool.vdev.is_relative_to(state)
    for tool in ("svccfg", "svcadm", "svcs", "svcprop", "kstat", "mdb", "pagesize", "hostid"):
        assert os.access(state / "bin" / tool, os.X_OK), tool
    kernel = arc.read(state)
    assert kernel.physmem == 16 * GIB
    assert kernel.arc.c == kernel.arc.c_max == 13 * GIB
    config = settings.load(state / "vmbundle.toml")
    assert config.bundle_roots == (str(pool.vms),)
    assert config.iso_dirs == (pool.iso,)
    assert config.run_dir.is_dir()
    assert not RunPaths.for_guest(config.run_dir, "g" * 63).too_long()


def test_a_second_up_is_a_noop_that_says_so(tmp_path: Path, devhost_states: list[Path]) -> None:
    state = tmp_path / "dh"
    devhost_states.append(state)
    _up(state)
    booted = arc.read(state).boot_time
    again = _up(state)
    assert again.stdout == f"devhost {state} is already up; nothing to do\n"
    assert arc.read(state).boot_time == booted


def test_run_dir_and_restarter_socket_are_short_enough_when_the_state_dir_is_long(
    tmp_path: Path, devhost_states: list[Path]
) -> None:
    state = tmp_path / ("long-" + "x" * 60) / "dh"
    devhost_states.append(state)
    assert len(str(state / "smf" / "startd.sock")) >= 108
    out = devhost("up", "--state", str(state), "--pool-size", "256M")
    config = settings.load(state / "vmbundle.toml")
    assert config.run_dir != state / "run"
    assert not RunPaths.for_guest(config.run_dir, "g" * 63).too_long()
    assert (state / "run").resolve() == config.run_dir
    assert "too long" in out.stdout
    # The restarter listens on a short socket instead, and svcadm's nudges reach it.
    sock = notify.socket_path(state)
    assert len(str(sock)) < 108 and sock.is_socket()
    assert daemon.running_pid(state) is not None
    assert "cannot listen" not in (state / "smf" / "startd.log").read_text()
    _down(state)
    assert not config.run_dir.exists()
    assert not sock.exists() and not sock.parent.exists()


def test_env_prints_shell_quoted_exports(tmp_path: Path) -> None:
    state = tmp_path / "a dir with 'quotes'"
    out = devhost("env", "--state", str(state)).stdout
    shell = subprocess.run(
        [
            "bash",
            "-c",
            f'{out}\nprintf "%s\\n" "$VMBUNDLE_CONFIG" "${{PATH%%:*}}" "$DEVHOST_STATE"',
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert shell.stdout.splitlines() == [
        str(state / "vmbundle.toml"),
        str(state / "bin"),
        str(state),
    ]


def test_tools_on_the_env_path_answer_for_their_devhost(
    tmp_path: Path, devhost_states: list[Path]
) -> None:
    state = tmp_path / "dh"
    devhost_states.append(state)
    _up(state)
    env = devhost("env", "--state", str(state)).stdout
    shell = subprocess.run(
        ["bash", "-c", f"{env}\nkstat -p unix:0:system_pages:physmem; pagesize; command -v mdb"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert shell.stdout.splitlines() == [
        f"unix:0:system_pages:physmem\t{16 * GIB // 4096}",
        "4096",
        str(state / "bin" / "mdb"),
    ]


def test_status_reports_pool_physmem_and_arc(tmp_path: Path, devhost_states: list[Path]) -> None:
    state = tmp_path / "dh"
    devhost_states.append(state)
    _up(state)
    out = devhost("status", "--state", str(state)).stdout
    assert "up          yes" in out
    assert f"pool        {zfspool.pool_for(state).name} ONLINE" in out
    assert "physmem     16.0 GiB (4194304 pages)" in out
    assert "c_max 13.0 GiB" in out
    assert re.search(r"^instances   \d+( \((\d+ [a-z]+(, )?)+\))?$", out, re.M)
    _down(state)
    assert "up          no" in devhost("status", "--state", str(state)).stdout


def test_two_devhosts_run_side_by_side(tmp_path: Path, devhost_states: list[Path]) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    devhost_states += [a, b]
    _up(a)
    _up(b, physmem="8G")
    pa, pb = zfspool.pool_for(a), zfspool.pool_for(b)
    assert pa.name != pb.name
    assert {pa.name, pb.name} <= set(zfspool.imported_pools())
    assert arc.read(a).physmem == 16 * GIB and arc.read(b).physmem == 8 * GIB
    ka, kb = KernelHost(a), KernelHost(b)
    assert ka.address("c") != kb.address("c")
    ka.mdb(f"{ka.address('c')}/Z 0x40000000\n", write=True)
    assert ka.stat("c") == 1 * GIB and kb.stat("c") == arc.read(b).arc.c_max
    (pa.vms / "only-in-a").write_text("a")
    assert not (pb.vms / "only-in-a").exists()
    pid_a, pid_b = daemon.running_pid(a), daemon.running_pid(b)
    assert pid_a and pid_b and pid_a != pid_b
    _down(a)
    assert pb.name in zfspool.imported_pools() and pa.name not in zfspool.imported_pools()
    assert "up          yes" in devhost("status", "--state", str(b)).stdout


def test_up_after_down_imports_the_pool_and_reboots_the_kernel(
    tmp_path: Path, devhost_states: list[Path]
) -> None:
    state = tmp_path / "dh"
    devhost_states.append(state)
    _up(state)
    pool = zfspool.pool_for(state)
    (pool.vms / "kept").write_text("data")
    host = KernelHost(state)
    host.mdb(f"{host.address('c_max')}/Z 0x40000000\n", write=True)
    _down(state)
    assert pool.name not in zfspool.imported_pools()
    assert not os.path.ismount(pool.vms)
    _up(state)
    assert (pool.vms / "kept").read_text() == "data"
    assert host.stat("c_max") == 13 * GIB  # mdb's poke died with the old boot
    assert arc.read(state).physmem == 16 * GIB


def test_up_keeps_the_physmem_of_the_last_boot_unless_told(
    tmp_path: Path, devhost_states: list[Path]
) -> None:
    state = tmp_path / "dh"
    devhost_states.append(state)
    _up(state, physmem="4G")
    _down(state)
    _up(state, physmem=None)
    assert arc.read(state).physmem == 4 * GIB


def test_down_of_a_devhost_that_is_not_up_is_harmless(tmp_path: Path, zfs_daemon: Pool) -> None:
    out = devhost("down", "--state", str(tmp_path / "never"))
    assert "nothing to do" in out.stdout
    (tmp_path / "empty").mkdir()
    assert devhost("down", "--state", str(tmp_path / "empty")).returncode == 0


def test_down_leaves_a_daemon_that_others_still_use(
    tmp_path: Path, devhost_states: list[Path]
) -> None:
    state = tmp_path / "dh"
    devhost_states.append(state)
    _up(state)
    out = _down(state)
    assert "stopped zfs-fuse" not in out.stdout
    assert zfspool.daemon_answers()  # the session's test pool is still there


def test_up_no_smf_boots_kernel_tools_and_pool_without_a_restarter(
    tmp_path: Path, devhost_states: list[Path]
) -> None:
    state = tmp_path / "dh"
    devhost_states.append(state)
    out = devhost("up", "--state", str(state), *up_args(), "--no-smf")
    assert "restarter   none (--no-smf)" in out.stdout
    assert daemon.running_pid(state) is None
    assert arc.read(state).physmem == 16 * GIB
    assert zfspool.pool_for(state).name in zfspool.imported_pools()
    status = devhost("status", "--state", str(state)).stdout
    assert "up          yes" in status
    assert "restarter   none (--no-smf)" in status
    again = _up(state)
    assert again.stdout == f"devhost {state} is already up; nothing to do\n"
    out = _down(state)
    assert "restarter:" not in out.stdout
    assert "up          no" in devhost("status", "--state", str(state)).stdout


# --- SMF ----------------------------------------------------------------------------


def test_up_spawns_the_restarter_and_down_stops_it(
    tmp_path: Path, devhost_states: list[Path]
) -> None:
    state = tmp_path / "dh"
    devhost_states.append(state)
    _up(state)
    pid = daemon.running_pid(state)
    assert pid is not None
    assert f"restarter   pid {pid}" in devhost("status", "--state", str(state)).stdout
    _down(state)
    assert daemon.running_pid(state) is None
    assert not Path(f"/proc/{pid}").exists() or _is_zombie(pid)


def test_up_after_down_keeps_persistent_properties_and_drops_nonpersistent(
    tmp_path: Path, devhost_states: list[Path]
) -> None:
    from devhost.smf import repository
    from devhost.smf.fmri import Fmri

    state = tmp_path / "dh"
    devhost_states.append(state)
    _up(state)
    repo = repository.Repository(state)
    with repo.edit() as doc:
        inst = repository.add_instance(doc, Fmri("site/devhost-test", "one"))
        repository.set_prop(inst["pgs"], "config", "kept", "astring", ["yes"])
        repository.set_prop(
            inst["pgs"], "scratch", "dropped", "astring", ["yes"], nonpersistent=True
        )
    _down(state)
    _up(state)
    pgs = repo.read()["services"]["site/devhost-test"]["instances"]["one"]["pgs"]
    assert repository.get_values(pgs, "config", "kept") == ["yes"]
    assert repository.get_values(pgs, "scratch", "dropped") is None


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")
    except OSError:
        return True
