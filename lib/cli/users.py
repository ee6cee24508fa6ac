"""user add, user list, user remove: the web console's users (vmbundle.users)."""

from __future__ import annotations

import argparse
import getpass
import json
import sys

from vmbundle import users
from vmbundle.cli.common import host_settings
from vmbundle.errors import UsageError


def _password(name: str) -> str:
    """Asked twice on a terminal; otherwise the first line of standard input."""
    if sys.stdin.isatty():
        first = getpass.getpass(f"password for {name}: ")
        if getpass.getpass(f"password for {name} again: ") != first:
            raise UsageError(f"user {name}: the two passwords differ; nothing changed")
        return first
    line = sys.stdin.readline()
    if not line:
        raise UsageError(f"user {name}: no password on standard input; nothing changed")
    return line.rstrip("\r\n")


def cmd_user(args: argparse.Namespace) -> int:
    path = host_settings(args).users_file
    if args.user_command == "list":
        found = sorted(users.load(path).values(), key=lambda u: u.name)
        if args.json:
            print(json.dumps([{"name": u.name, "role": u.role} for u in found]))
        elif not found:
            print(f"no users in {path}; add one: vmbundle user add NAME --role admin")
        for u in found if not args.json else []:
            print(f"{u.name}\t{u.role}")
        return 0
    name = users.check_name(args.name)
    if args.user_command == "remove":
        gone = users.remove(path, name)
        print(f"user {gone.name} ({gone.role}) removed from {path}")
        return 0
    users.check_role(args.role)
    user = users.add(path, name, args.role, _password(name), replace=args.replace)
    print(f"user {user.name} ({user.role}) saved in {path}")
    return 0
