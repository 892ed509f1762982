"""`podkit`: argument parsing, the shared flags and error-to-exit-code mapping.

Each command area lives in its own module with a ``register(subparsers)``
function; handlers are ``fn(args, client) -> int | None``. Modules import only the
standard library at import time: the CLI must start fast.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from podkit import errors

# Command modules, in the order their commands appear in --help.
AREAS = [
    "system",
    "images",
    "distribution",
    "containers",
    "volumes",
    "networks",
    "pods",
]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="podkit",
        description="podkit: containers and pods on one Linux host.",
    )
    p.add_argument("-H", "--host", default=None,
                   help="daemon socket, unix:///path (env PODKIT_HOST)")
    p.add_argument("-n", "--namespace", default=None,
                   help="namespace to work in (env PODKIT_NAMESPACE, default 'default')")
    p.add_argument("-v", "--version", action="store_true", help="print the client version")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for area in AREAS:
        try:
            mod = __import__(f"podkit.cli.{area}", fromlist=["register"])
        except ModuleNotFoundError as e:
            if e.name != f"podkit.cli.{area}":
                raise
            continue
        mod.register(sub)
    return p


def add_format(p: argparse.ArgumentParser, quiet: bool = True) -> None:
    """The flags every listing/inspect command shares."""
    p.add_argument("--format", choices=["table", "json"], default="table",
                   help="output format")
    if quiet:
        p.add_argument("-q", "--quiet", action="store_true", help="only print ids")


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from podkit._version import __version__

        print(f"podkit version {__version__}")
        return
    if not getattr(args, "func", None):
        parser.print_help()
        sys.exit(0 if args.command is None else 1)
    sys.exit(run(args))


def run(args: Any) -> int:
    from podkit.client import Client

    client = Client(host=args.host, namespace=args.namespace, timeout=None)
    # Commands that create or run containers exit 125 on podkit's own errors, as
    # docker does; the rest exit 1.
    engine_exit = getattr(args, "engine_exit", 1)
    try:
        rc = args.func(args, client)
        return int(rc or 0)
    except errors.PodkitError as e:
        sys.stderr.write(f"Error: {e.message}\n")
        if isinstance(e, errors.CannotExecute | errors.CommandNotFound):
            return e.exit_code
        return engine_exit
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # stdout closed early (e.g. `podkit images | head`): not an error.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    main()
