"""`maskloop set-password`: who may sign in to the app when it is shared with a team (seg_core.services.signin)."""

from __future__ import annotations

import argparse
import getpass
import sys

from seg_core.errors import SegError
from seg_core.services import signin


def add_set_password(sub) -> None:
    p = sub.add_parser("set-password", help="set (or --remove) a person's password for signing in to the app")
    p.add_argument("--user", help="the name to sign in with (default: your login name)")
    p.add_argument("--password-stdin", action="store_true",
                   help="read the password from the first line of standard input (for scripts) instead of asking")
    p.add_argument("--remove", action="store_true", help="remove this name's password: it can no longer sign in")
    p.add_argument("--workspace", help="workspace folder (default: $MASKLOOP_WORKSPACE or ./workspace)")
    p.set_defaults(func=cmd_set_password)


def _default_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError) as exc:
        raise SegError("Your login name cannot be found on this machine: give a name with --user.") from exc


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        return line[:-1] if line.endswith("\n") else line
    if not sys.stdin.isatty():
        raise SegError("Standard input is not a terminal, so the password cannot be asked for: pipe it in with "
                       "--password-stdin.")
    first = getpass.getpass("New password: ")
    signin.check_password(first)
    if getpass.getpass("Same password again: ") != first:
        raise SegError("The two passwords differ; nothing was changed.")
    return first


def cmd_set_password(args: argparse.Namespace) -> int:
    store = signin.PasswordStore(signin.passwords_file(args.workspace))
    name = signin.check_name(args.user or _default_user())
    if args.remove:
        if not store.remove(name):
            print(f"'{name}' has no password in {store.path}; nothing was changed")
            return 1
        print(f"removed the password of '{name}' from {store.path}")
        return 0
    existed = name in store.users()
    store.set(name, _read_password(args.password_stdin).rstrip("\r"))
    print(f"{'changed' if existed else 'set'} the password of '{name}' in {store.path} "
          f"({len(store.users())} name(s) can sign in)")
    return 0
