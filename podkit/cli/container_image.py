"""`commit`, `diff` and `export`: a container's changes as an image, a list, or a tar."""

from __future__ import annotations

import os
import sys

from podkit import errors
from podkit.cli._fastargs import BOOLEAN_OPTIONAL
from podkit.cli.container_ops import container_ops as _ops

TYPE_CHECKING = False  # not typing's: it stays out of the CLI's start-up (podkit/cli/main.py)
if TYPE_CHECKING:
    import argparse

    from podkit.cli.main import Subparsers
    from podkit.client import Client

_KINDS = {0: "C", 1: "A", 2: "D"}


def register(sub: Subparsers) -> None:
    p = sub.add_parser("commit", help="create an image from a container's changes")
    p.add_argument("container")
    p.add_argument("image", nargs="?", help="the new image's name (none: a dangling image)")
    p.add_argument("-m", "--message", default="", help="commit message")
    p.add_argument("-a", "--author", default="", help='author (e.g. "Jane <jane@example.com>")')
    p.add_argument(
        "-c", "--change", action="append", default=[], help="a Dockerfile instruction for the config"
    )
    p.add_argument(
        "-p",
        "--pause",
        default=True,
        action=BOOLEAN_OPTIONAL,
        help="pause the container while committing (default true)",
    )
    p.set_defaults(func=cmd_commit, engine_exit=125)

    p = sub.add_parser("diff", help="list the changes to a container's file system")
    p.add_argument("container")
    p.set_defaults(func=cmd_diff, engine_exit=125)

    p = sub.add_parser("export", help="write a container's file system as a tar")
    p.add_argument("container")
    p.add_argument("-o", "--output", help="write to this file (default: stdout)")
    p.set_defaults(func=cmd_export, engine_exit=125)


def cmd_commit(args: argparse.Namespace, client: Client) -> int:
    out = _ops(client).commit(
        args.container,
        args.image,
        message=args.message,
        author=args.author,
        changes=args.change,
        pause=args.pause,
    )
    print(out["id"])
    return 0


def cmd_diff(args: argparse.Namespace, client: Client) -> int:
    for c in _ops(client).diff(args.container):
        print(f"{_KINDS.get(int(c['Kind']), '?')} {c['Path']}")
    return 0


def cmd_export(args: argparse.Namespace, client: Client) -> int:
    if not args.output:
        if sys.stdout.isatty():
            raise errors.InvalidArgument("refusing to write a tar to a terminal: use -o FILE or redirect")
        _ops(client).export(args.container, sys.stdout.buffer)
        sys.stdout.flush()
        return 0
    tmp = args.output + ".part"
    try:
        with open(tmp, "wb") as f:
            _ops(client).export(args.container, f)
        os.replace(tmp, args.output)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return 0
