"""The web console's users (vmbundle.users) and `vmbundle user`: scrypt hashes,
roles, the users file and its damage, the command's input checks."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from support.host import VMBUNDLE

from vmbundle import users
from vmbundle.errors import ConfigError, UsageError, VmbundleError

# A cheap cost for the tests that make many hashes; the real one is checked once.
FAST = {"n": 1 << 10, "r": 8, "p": 1}


def test_a_hash_verifies_its_password_only() -> None:
    digest = users.hash_password("correct horse")
    assert digest.startswith(f"scrypt${users.SCRYPT_N}$8$1$")
    assert users.verify(digest, "correct horse")
    assert not users.verify(digest, "correct horsf")
    assert not users.verify(digest, "")
    # Salted: the same password never hashes alike.
    assert users.hash_password("correct horse", **FAST) != users.hash_password(
        "correct horse", **FAST
    )


def test_a_damaged_or_foreign_hash_never_verifies() -> None:
    good = users.hash_password("password1", **FAST)
    for bad in (
        "",
        "password1",
        good.replace("scrypt", "bcrypt"),
        good[:-8],
        "scrypt$0$8$1$AA==$AA==",
    ):
        assert not users.verify(bad, "password1")


def test_roles_allow_what_the_issue_says() -> None:
    admin, operator, viewer = (users.User("u", r, "") for r in ("admin", "operator", "viewer"))
    for action in ("list", "thumbnail", "serial"):
        assert admin.may(action) and operator.may(action) and viewer.may(action)
    for action in ("console", "start", "stop", "reset", "poweroff", "type"):
        assert admin.may(action) and operator.may(action) and not viewer.may(action)
    for action in ("metrics", "users", "create"):
        assert admin.may(action) and not operator.may(action)


def test_add_remove_and_the_file(tmp_path: Path) -> None:
    path = tmp_path / "etc" / "users.json"
    users.add(path, "alice", "admin", "s3cret-pass")
    users.add(path, "bob", "viewer", "another-pass")
    assert os.stat(path).st_mode & 0o777 == 0o600
    found = users.load(path)
    assert {u.name: u.role for u in found.values()} == {"alice": "admin", "bob": "viewer"}
    assert users.verify(found["alice"].password_hash, "s3cret-pass")
    assert "s3cret-pass" not in path.read_text()
    with pytest.raises(VmbundleError, match="user alice: exists already"):
        users.add(path, "alice", "viewer", "whatever-pass")
    users.add(path, "alice", "operator", "new-password", replace=True)
    assert users.load(path)["alice"].role == "operator"
    users.remove(path, "bob")
    assert set(users.load(path)) == {"alice"}
    with pytest.raises(users.NoSuchUser):
        users.remove(path, "bob")


def test_bad_input_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    users.add(path, "alice", "admin", "s3cret-pass")
    before = path.read_bytes()
    for name, role, password in (
        ("Alice", "admin", "s3cret-pass"),
        ("../x", "admin", "s3cret-pass"),
        ("carol", "root", "s3cret-pass"),
        ("carol", "admin", "short"),
    ):
        with pytest.raises(UsageError):
            users.add(path, name, role, password)
    assert path.read_bytes() == before


def test_a_damaged_users_file_names_the_entry(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        users.load(path)
    path.write_text(json.dumps({"users": {"alice": {"role": "god", "password_hash": "x"}}}))
    with pytest.raises(
        ConfigError, match=r"users\.alice\.role: must be one of admin, operator, viewer"
    ):
        users.load(path)
    path.write_text(json.dumps({"users": {"alice": {"role": "admin", "password_hash": "x"}}}))
    with pytest.raises(ConfigError, match=r"users\.alice\.password_hash: not a scrypt hash"):
        users.load(path)
    assert users.load(tmp_path / "none.json") == {}


def _vmbundle(config: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [VMBUNDLE, "--config", str(config), "user", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_user_command(tmp_path: Path) -> None:
    config = tmp_path / "vmbundle.toml"
    config.write_text("")
    path = tmp_path / "users.json"  # beside the configuration, by default
    assert "no users in" in _vmbundle(config, "list").stdout
    done = _vmbundle(config, "add", "alice", "--role", "operator", stdin="s3cret-pass\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"user alice (operator) saved in {path}\n"
    assert users.verify(users.load(path)["alice"].password_hash, "s3cret-pass")
    assert (
        _vmbundle(config, "list", "--json").stdout.strip()
        == '[{"name": "alice", "role": "operator"}]'
    )
    before = path.read_bytes()
    for args, stdin, line in (
        (
            ("add", "bob", "--role", "operator"),
            "",
            "user bob: no password on standard input; nothing changed",
        ),
        (
            ("add", "bob", "--role", "root"),
            "s3cret-pass\n",
            "--role 'root': must be one of admin, operator, viewer",
        ),
        (
            ("add", "Bob", "--role", "viewer"),
            "s3cret-pass\n",
            "user 'Bob': not a user name (a-z, 0-9, _ . -, first a letter or _, at most 32)",
        ),
        (
            ("add", "bob", "--role", "viewer"),
            "short\n",
            "user bob: the password must be 8 to 1024 characters",
        ),
        (("remove", "nobody"), "", f"user nobody: no such user in {path}"),
    ):
        proc = _vmbundle(config, *args, stdin=stdin)
        assert proc.returncode != 0 and proc.stderr.splitlines() == [line], proc.stderr
    assert path.read_bytes() == before
    other = tmp_path / "elsewhere" / "people.json"
    config.write_text(f'[web]\nusers = "{other}"\n')
    assert (
        _vmbundle(config, "add", "carol", "--role", "viewer", stdin="s3cret-pass\n").returncode == 0
    )
    assert set(users.load(other)) == {"carol"}
    assert (
        _vmbundle(config, "remove", "carol").stdout == f"user carol (viewer) removed from {other}\n"
    )
