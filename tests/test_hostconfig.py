"""The host configuration file: defaults, every key, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from vmbundle import hostconfig
from vmbundle.errors import ConfigError


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
    cfg = hostconfig.load(p)
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
    cfg = hostconfig.load(write(tmp_path, ""))
    assert cfg.manifest_dir == Path("/var/svc/manifest/site/vmbundle")


def test_environment_variable_names_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VMBUNDLE_CONFIG", str(write(tmp_path, '[run]\ndir = "/tmp/x"\n')))
    assert hostconfig.load().run_dir == Path("/tmp/x")


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
        ("[smf]\nmanifest_dirs = '/x'\n", "smf.manifest_dirs: unknown key; did you mean 'manifest_dir'?"),
        ("[smf]\nmanifest_dir = 'site'\n", "smf.manifest_dir: must be an absolute path"),
        ("[run\n", "not valid TOML"),
    ],
)
def test_bad_keys_and_values_are_named(tmp_path: Path, text: str, message: str) -> None:
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        hostconfig.load(p)
    assert message in str(info.value)
    assert str(info.value).startswith(str(p))


def test_missing_named_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such configuration file"):
        hostconfig.load(tmp_path / "nope.toml")
