"""The host configuration file: defaults, every key, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from vmbundle import config_path, settings
from vmbundle.errors import ConfigError
from vmbundle.memory.policy import GiB, MiB, OverheadModel


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "vmbundle.toml"
    p.write_text(text)
    return p


def test_every_key_is_read(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        """
[bundles]
roots = ["tank/vms", "/srv/vms"]
iso_dirs = ["/tank/iso"]
[run]
dir = "/tmp/vmb-run"
[qemu]
binary = "/opt/qemu/bin/qemu-system-x86_64"
img = "qemu-img"
accelerator = "tcg"
[display]
first = 10
last = 20
listen = "0.0.0.0"
[smf]
manifest_dir = "/opt/site/manifests"
""",
    )
    cfg = settings.load(p)
    assert cfg.bundle_roots == ("tank/vms", "/srv/vms")
    assert cfg.iso_dirs == (Path("/tank/iso"),)
    assert cfg.run_dir == Path("/tmp/vmb-run")
    assert (cfg.accelerator, cfg.display_first, cfg.display_last, cfg.vnc_listen) == (
        "tcg",
        10,
        20,
        "0.0.0.0",
    )
    assert cfg.manifest_dir == Path("/opt/site/manifests")


def test_manifest_dir_defaults_to_the_site_manifests(tmp_path: Path) -> None:
    cfg = settings.load(write(tmp_path, ""))
    assert cfg.manifest_dir == Path("/var/svc/manifest/site/vmbundle")


def test_every_memory_key_is_read(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        """
[memory]
reserve = "2G"
arc_floor = 0.25
backend = "illumos"
shrink_timeout = 60
shrink_slack = "128M"
overhead_fixed = "192M"
overhead_per_vcpu = "8M"
overhead_ratio = 0.02
""",
    )
    cfg = settings.load(p)
    assert (cfg.memory_reserve, cfg.memory_arc_floor, cfg.memory_backend) == (
        2 * GiB,
        0.25,
        "illumos",
    )
    assert (cfg.memory_shrink_timeout, cfg.memory_shrink_slack) == (60, 128 * MiB)
    assert cfg.overhead_model() == OverheadModel(fixed=192 * MiB, per_vcpu=8 * MiB, ratio=0.02)


def test_memory_defaults(tmp_path: Path) -> None:
    cfg = settings.load(write(tmp_path, ""))
    assert cfg.memory_reserve is None  # auto: max(1G, physical memory / 8)
    assert cfg.memory_arc_floor == 0.2
    assert (cfg.memory_backend, cfg.memory_shrink_timeout) == ("auto", 120)
    assert cfg.memory_shrink_slack == 64 * MiB
    assert cfg.overhead_model() == OverheadModel()
    assert OverheadModel() == OverheadModel(fixed=256 * MiB, per_vcpu=16 * MiB, ratio=0.01)


@pytest.mark.parametrize(
    ("text", "reserve", "arc_floor", "ratio"),
    [
        ('reserve = "auto"\narc_floor = "4G"\noverhead_ratio = 0\n', None, 4 * GiB, 0.0),
        ('reserve = "512M"\narc_floor = 0.5\noverhead_ratio = 0.0\n', 512 * MiB, 0.5, 0.0),
    ],
)
def test_memory_reserve_and_floor_forms(
    tmp_path: Path, text: str, reserve: int | None, arc_floor: float | int, ratio: float
) -> None:
    cfg = settings.load(write(tmp_path, "[memory]\n" + text))
    assert (cfg.memory_reserve, cfg.memory_arc_floor, cfg.memory_overhead_ratio) == (
        reserve,
        arc_floor,
        ratio,
    )
    assert type(cfg.memory_arc_floor) is type(arc_floor)  # a fraction stays a float


def test_environment_variable_names_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VMBUNDLE_CONFIG", str(write(tmp_path, '[run]\ndir = "/tmp/x"\n')))
    assert settings.load().run_dir == Path("/tmp/x")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[qemu]\naccel = 'kvm'\n", "qemu.accel: unknown key; did you mean 'accelerator'?"),
        ("[qemu]\naccelerator = 'xen'\n", "qemu.accelerator: must be auto, kvm or tcg"),
        ("[display]\nfirst = 100\n", "display.first: must be a display number from 0 to 99"),
        (
            "[display]\nlisten = 'localhost'\n",
            "display.listen: must be an IP address like 127.0.0.1",
        ),
        ("[display]\nfirst = 9\nlast = 3\n", "display.first: must not be above display.last"),
        ("[bundles]\niso_dirs = ['iso']\n", "bundles.iso_dirs: must be a list of absolute paths"),
        ("[runn]\ndir = '/x'\n", "[runn]: unknown key; did you mean 'run'?"),
        (
            "[smf]\nmanifest_dirs = '/x'\n",
            "smf.manifest_dirs: unknown key; did you mean 'manifest_dir'?",
        ),
        ("[smf]\nmanifest_dir = 'site'\n", "smf.manifest_dir: must be an absolute path"),
        ("[run\n", "not valid TOML"),
        ("[memory]\nreserv = '2G'\n", "memory.reserv: unknown key; did you mean 'reserve'?"),
        (
            "[memory]\nreserve = 'lots'\n",
            'memory.reserve: must be "auto" (max(1G, physical memory/8)) or a size like 2G',
        ),
        ("[memory]\nreserve = 2\n", 'memory.reserve: must be "auto"'),
        (
            "[memory]\narc_floor = 1.5\n",
            "memory.arc_floor: must be a fraction of physical memory between 0 and 1 like 0.2, or a size like 4G",
        ),
        ("[memory]\narc_floor = 0.0\n", "memory.arc_floor: must be a fraction"),
        ("[memory]\narc_floor = 1\n", "memory.arc_floor: must be a fraction"),
        ("[memory]\nbackend = 'zfs'\n", "memory.backend: must be auto, illumos, linux or none"),
        (
            "[memory]\nshrink_timeout = 0\n",
            "memory.shrink_timeout: must be whole seconds from 1 to 240",
        ),
        ("[memory]\nshrink_timeout = 600\n", "memory.shrink_timeout: must be whole seconds"),
        ("[memory]\nshrink_timeout = 2.5\n", "memory.shrink_timeout: must be whole seconds"),
        ("[memory]\nshrink_slack = 64\n", "memory.shrink_slack: must be a size like 64M"),
        ("[memory]\noverhead_fixed = '1.5G'\n", "memory.overhead_fixed: must be a size like 256M"),
        (
            "[memory]\noverhead_per_vcpu = '0'\n",
            "memory.overhead_per_vcpu: must be a size like 16M",
        ),
        (
            "[memory]\noverhead_ratio = 1.0\n",
            "memory.overhead_ratio: must be a fraction of the guest's RAM from 0 to below 1, like 0.01",
        ),
        ("[memory]\noverhead_ratio = true\n", "memory.overhead_ratio: must be a fraction"),
        ("[memory]\noverhead = '1G'\n", "memory.overhead: unknown key; did you mean"),
        ("[memroy]\nreserve = '1G'\n", "[memroy]: unknown key; did you mean 'memory'?"),
    ],
)
def test_bad_keys_and_values_are_named(tmp_path: Path, text: str, message: str) -> None:
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        settings.load(p)
    assert message in str(info.value)
    assert str(info.value).startswith(str(p))
    assert len(info.value.problems) == 1


def test_missing_named_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such configuration file"):
        settings.load(tmp_path / "nope.toml")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "/var/run/vmbundle"),
        ('[run]\ndir = "/tmp/elsewhere"\n', "/tmp/elsewhere"),
        ('[qemu]\nbinary = "qemu-kvm"\n', "/var/run/vmbundle"),
        ('[run]\ndir = "relative"\n', None),
        ("[run]\ndir = 3\n", None),
        ("run = 3\n", None),
        ("[run\n", None),
    ],
)
def test_the_quick_path_reads_the_run_directory_as_the_settings_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, expected: str | None
) -> None:
    """config_path.run_dir, which the start method's quick path uses instead of
    settings.load, gives the same directory, or None (the full load then says
    what is wrong) wherever settings.load refuses the file."""
    path = tmp_path / "vmbundle.toml"
    path.write_text(text)
    monkeypatch.setenv("VMBUNDLE_CONFIG", str(path))
    found = config_path.run_dir()
    assert found == (Path(expected) if expected else None)
    if expected is None:
        with pytest.raises(ConfigError):
            settings.load(None)
    else:
        assert settings.load(None).run_dir == found


def test_the_quick_path_takes_a_named_file_that_is_missing_as_unreadable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VMBUNDLE_CONFIG", str(tmp_path / "missing.toml"))
    assert config_path.run_dir() is None
