"""The `maskloop` command: subcommands that mirror seg_core functions (cli/data.py, cli/model.py, cli/access.py)."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from typing import Callable, Sequence

from seg_core import environment
from seg_core.cli import access, data, model
from seg_core.errors import SegError, storage_error

# The subcommands in the order `maskloop --help` lists them; each is built beside its action.
COMMANDS = (data.add_init, data.add_import, data.add_delete, data.add_export, data.add_check, data.add_info,
            data.add_split, data.add_demo, data.add_projects,
            model.add_train, model.add_runs, model.add_predict, model.add_evaluate, model.add_export_model,
            model.add_weights,
            access.add_set_password)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="maskloop",
                                     description="Maskloop: image segmentation projects from the command line.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in COMMANDS:
        add(sub)
    return parser


@contextlib.contextmanager
def native_logs_silenced():
    """TensorFlow's C++ libraries write log lines (oneDNN, cudart_stub, cuInit...) straight to file descriptor 2,
    before any Python setting can reach them. Point that descriptor at /dev/null while a command runs; our own
    messages go to the real standard error through a copy of it. MASKLOOP_DEBUG=1 shows everything."""
    if environment.get(environment.DEBUG):
        yield
        return
    sys.stderr.flush()
    try:
        ours = sys.stderr.fileno() == 2
    except (AttributeError, OSError, ValueError):
        ours = False  # e.g. a test's captured stderr: nothing of ours goes to descriptor 2
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    python_stderr = sys.stderr
    if ours:
        sys.stderr = open(os.dup(saved), "w", buffering=1, encoding=python_stderr.encoding, errors="backslashreplace")
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        if ours:
            sys.stderr.close()
            sys.stderr = python_stderr
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    with native_logs_silenced():
        return _run(func, args)


def _run(func: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    try:
        return func(args)
    except SegError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # no traceback reaches the user unless they ask for it
        storage = storage_error(exc, "the command stopped there")
        if storage is not None:   # a full or read-only disk reached past the functions that say what stopped
            print(f"error: {storage}", file=sys.stderr)
            return 2
        if environment.get(environment.DEBUG):
            raise
        print(f"error: unexpected failure ({type(exc).__name__}: {exc}). "
              "Run again with MASKLOOP_DEBUG=1 to see the details.", file=sys.stderr)
        return 1
