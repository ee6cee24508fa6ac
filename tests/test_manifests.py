"""The SMF manifests: valid against the illumos DTD as rendered, and `vmbundle smf
install` writing and importing them into the devhost's SMF (illumos.md sections 1-3)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
from smf_support import SmfHost, smf_host
from support.host import VMBUNDLE

from vmbundle.service import manifests
from vmbundle.service.manifests import Installation, ManifestError

DTD = Path(__file__).resolve().parents[2] / "shared" / "illumos" / "service_bundle.dtd.1"
DTD_SYSTEM_ID = "/usr/share/lib/xml/dtd/service_bundle.dtd.1"
VM = "svc:/system/vmbundle/vm"
CONTROLLER = "svc:/system/vmbundle/controller:default"
BIN = Path("/opt/vmbundle/bin")
ODD_CONFIG = Path("/etc/vm bundle/a&b<c>'\"%.toml")


def xmllint(path: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """`xmllint --dtdvalid` as illumos.md gives it, with a catalog that maps the
    DOCTYPE's /usr/share path to the copy, so nothing is left to warn about."""
    if shutil.which("xmllint") is None:
        pytest.skip("xmllint is not installed")
    catalog = tmp_path / "catalog.xml"
    catalog.write_text(
        '<?xml version="1.0"?>\n'
        '<catalog xmlns="urn:oasis:names:tc:entity:xmlns:xml:catalog">\n'
        f'  <system systemId="{DTD_SYSTEM_ID}" uri="{DTD.as_uri()}"/>\n'
        "</catalog>\n"
    )
    return subprocess.run(
        ["xmllint", "--noout", "--dtdvalid", str(DTD), str(path)],
        capture_output=True,
        text=True,
        env={**os.environ, "XML_CATALOG_FILES": str(catalog)},
    )


def rendered(tmp_path: Path, name: str, config: Path | None) -> Path:
    inst = Installation(BIN / "vmbundle-method", BIN / "vmbundle-controller", config)
    path = tmp_path / name
    path.write_text(manifests.manifest(name, inst))
    return path


@pytest.mark.parametrize("config", [None, ODD_CONFIG], ids=["default-config", "odd-config"])
@pytest.mark.parametrize("name", manifests.MANIFESTS)
def test_rendered_manifests_are_valid_against_the_dtd(
    tmp_path: Path, name: str, config: Path | None
) -> None:
    proc = xmllint(rendered(tmp_path, name, config), tmp_path)
    assert (proc.returncode, proc.stderr) == (0, "")


def test_a_broken_manifest_fails_the_same_check(tmp_path: Path) -> None:
    path = rendered(tmp_path, "vm.xml", None)
    path.write_text(path.read_text().replace(' timeout_seconds="660"', ""))
    proc = xmllint(path, tmp_path)
    assert proc.returncode != 0
    assert "timeout_seconds" in proc.stderr


def test_values_are_escaped_and_come_back_whole(tmp_path: Path) -> None:
    inst = Installation(
        Path("/opt/v b/100%/vmbundle-method"), BIN / "vmbundle-controller", ODD_CONFIG
    )
    root = ET.fromstring(manifests.manifest("vm.xml", inst))
    envvar = root.find("service/method_context/method_environment/envvar")
    assert envvar is not None
    assert (envvar.get("name"), envvar.get("value")) == ("VMBUNDLE_CONFIG", str(ODD_CONFIG))
    start = root.find("service/exec_method[@name='start']")
    assert start is not None
    # One shell word for /bin/sh, and % doubled for svc.startd's token expansion.
    assert start.get("exec") == "'/opt/v b/100%%/vmbundle-method' start"


@pytest.mark.parametrize("config", [None, Path("/etc/vmbundle/vmbundle.toml")])
def test_the_default_configuration_needs_no_method_context(config: Path | None) -> None:
    inst = Installation(BIN / "vmbundle-method", BIN / "vmbundle-controller", config)
    for name in manifests.MANIFESTS:
        text = manifests.manifest(name, inst)
        assert "method_context" not in text
        assert "@" not in text


def test_the_vm_service_has_no_default_instance_and_no_config_group() -> None:
    inst = Installation(BIN / "vmbundle-method", BIN / "vmbundle-controller")
    service = ET.fromstring(manifests.manifest("vm.xml", inst)).find("service")
    assert service is not None
    assert service.find("create_default_instance") is None
    assert service.find("instance") is None
    assert service.find("property_group[@name='config']") is None


def test_a_placeholder_without_a_value_is_refused() -> None:
    with pytest.raises(ManifestError, match="no value for CONTROLLER, OTHER"):
        manifests.render('<a x="@CONTROLLER@"/>\n  @OTHER@\n', {"METHOD": "m"})


def test_a_value_is_not_searched_for_placeholders() -> None:
    assert manifests.render("@A@ @B@", {"A": "@B@", "B": "b"}) == "@B@ b"


def test_a_control_character_in_a_value_is_refused() -> None:
    inst = Installation(BIN / "vmbundle-method", BIN / "vmbundle-controller", Path("/etc/a\nb"))
    with pytest.raises(ManifestError, match="control characters"):
        manifests.manifest("vm.xml", inst)


def test_commands_are_beside_the_interpreter() -> None:
    method, controller = manifests.installed_commands()
    assert method == Path(sys.executable).absolute().parent / "vmbundle-method"
    assert controller.name == "vmbundle-controller"


# --- vmbundle smf install against the devhost's SMF ---------------------------------------


@pytest.fixture(name="smf")
def _smf() -> Iterator[SmfHost]:
    with smf_host() as host:
        yield host


def vmbundle(
    config: Path, *args: str, smf: SmfHost | None = None
) -> subprocess.CompletedProcess[str]:
    """The real command, with the devhost's svc* tools first on PATH when given."""
    env = smf.env if smf is not None else dict(os.environ)
    return subprocess.run(
        [VMBUNDLE, *args],
        capture_output=True,
        text=True,
        env={**env, "VMBUNDLE_CONFIG": str(config)},
        timeout=120,
    )


def host_config(tmp_path: Path) -> tuple[Path, Path]:
    manifest_dir = tmp_path / "site" / "vmbundle"
    config = tmp_path / "vmbundle.toml"
    config.write_text(f'[smf]\nmanifest_dir = "{manifest_dir}"\n')
    return config, manifest_dir


def svc(smf: SmfHost, *argv: str, check: bool = True) -> str:
    return smf.run(*argv, check=check).stdout.strip()


def installable() -> list[str]:
    """The manifests `smf install` writes: the controller's once its command is
    installed (a manifest naming a missing command would fail at its first start)."""
    _, controller = manifests.installed_commands()
    return [n for n in manifests.MANIFESTS if n != "controller.xml" or controller.exists()]


def test_install_writes_and_imports_both_services(smf: SmfHost, tmp_path: Path) -> None:
    config, manifest_dir = host_config(tmp_path)
    names = installable()
    for attempt in (1, 2):  # the second install imports unchanged manifests again
        proc = vmbundle(config, "smf", "install", smf=smf)
        assert proc.returncode == 0, f"install {attempt}: {proc.stderr}"
        for name in names:
            assert f"wrote {manifest_dir / name}" in proc.stdout
            assert f"imported {manifest_dir / name}" in proc.stdout
            assert (manifest_dir / name).stat().st_mode & 0o777 == 0o644
        if "controller.xml" in names:
            # Enabled: received bundles are imported from the first boot on.
            assert svc(smf, "svcprop", "-p", "general/enabled", CONTROLLER) == "true"
        else:
            assert not (manifest_dir / "controller.xml").exists()
            assert smf.run("svcs", "-H", CONTROLLER, check=False).returncode != 0
        assert svc(smf, "svcprop", "-p", "stop/timeout_seconds", VM) == "660"
        method = Path(sys.executable).absolute().parent / "vmbundle-method"
        assert svc(smf, "svcprop", "-p", "start/exec", VM) == f"{method}\\ start"
        assert svc(smf, "svcprop", "-p", "startd/duration", VM) == "contract"
        for fmri in (VM, CONTROLLER) if "controller.xml" in names else (VM,):
            env = svc(smf, "svcprop", "-p", "method_context/environment", fmri)
            assert env == f"VMBUNDLE_CONFIG={config}"
        no_instances = smf.run("svcs", "-H", f"{VM}:*", check=False)
        assert (no_instances.returncode, no_instances.stdout) == (1, "")
        assert "doesn't match any instances" in no_instances.stderr


def test_install_no_import_only_writes(smf: SmfHost, tmp_path: Path) -> None:
    config, _ = host_config(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    proc = vmbundle(config, "smf", "install", "--dir", str(elsewhere), "--no-import", smf=smf)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in elsewhere.iterdir()) == sorted(installable())
    assert "imported" not in proc.stdout
    assert smf.run("svcs", "-H", CONTROLLER, check=False).returncode != 0


def test_install_with_a_missing_configuration_fails_in_one_line(tmp_path: Path) -> None:
    proc = vmbundle(tmp_path / "nope.toml", "smf", "install", "--dir", str(tmp_path / "m"))
    assert proc.returncode != 0
    assert proc.stderr.strip() == f"{tmp_path / 'nope.toml'}: no such configuration file"
    assert not (tmp_path / "m").exists()
