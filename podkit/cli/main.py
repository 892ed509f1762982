"""`podkit`: argument parsing, the shared flags and error-to-exit-code mapping.

Each command area lives in its own module with a ``register(subparsers)``
function; handlers are ``fn(args, client) -> int | None``. Modules import only the
standard library at import time: the CLI must start fast.
"""

from __future__ import annotations

import os
import sys

from podkit import errors

# typing.TYPE_CHECKING without importing typing: typing (with the re, enum, contextlib
# it pulls in first) is ~10 ms of every call's start-up, and no CLI module needs it at
# run time (annotations are strings, `from __future__ import annotations`). mypy takes
# any TYPE_CHECKING as true; tests/test_cli_startup.py checks that typing stays out.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable
    from typing import Any, Protocol

    from podkit.client import Client

    class Subparsers(Protocol):
        """What each area's register() adds its commands to: the real subparsers action,
        or _OnlyCommand standing in for it."""

        def add_parser(self, name: str, *args: Any, **kwargs: Any) -> argparse.ArgumentParser: ...


# Command modules, in the order their commands appear in --help.
AREAS = [
    "system",
    "images",
    "distribution",
    "containers",
    "build",
    "volumes",
    "networks",
    "pods",
]


# Which area registers each top-level command. `podkit run` then builds the parser
# of `run` alone: building every command's parser costs ~25 ms of each call's start-up.
# tests/test_cli_startup.py checks this table against the full parser.
COMMANDS = {
    **dict.fromkeys(["completion", "events", "info", "system", "version"], "system"),
    **dict.fromkeys(["image", "images", "import", "load", "rmi", "save", "tag"], "images"),
    **dict.fromkeys(["login", "logout", "manifest", "pull", "push"], "distribution"),
    **dict.fromkeys(
        [
            "attach",
            "commit",
            "container",
            "cp",
            "create",
            "diff",
            "exec",
            "export",
            "inspect",
            "kill",
            "logs",
            "pause",
            "port",
            "ps",
            "rename",
            "restart",
            "rm",
            "run",
            "start",
            "stats",
            "stop",
            "top",
            "unpause",
            "update",
            "wait",
        ],
        "containers",
    ),
    "build": "build",
    "volume": "volumes",
    "network": "networks",
    **dict.fromkeys(["play", "pod"], "pods"),
}
# Commands that are groups of subcommands (`container run`): built one subcommand at a
# time too, through subcommands().
_GROUPS = frozenset({"container", "image", "system", "network", "volume", "pod", "manifest", "play"})
# Global options that take a value (the command is the first word after them).
_VALUE_OPTS = ("-H", "--host", "-n", "--namespace")


class _Skip:
    """Stands in for the parsers of commands that were not invoked: takes any call.
    (What register() calls most is spelled out: __getattr__ is a slow path, and `run`'s
    parser is built next to three skipped copies of its ~100 flags: create's, and the
    `container` group's two.)"""

    def __getattr__(self, name: str) -> _Skip:
        return self

    def __call__(self, *args: Any, **kwargs: Any) -> _Skip:
        return self

    def add_argument(self, *args: Any, **kwargs: Any) -> _Skip:
        return self

    def set_defaults(self, **kwargs: Any) -> None:
        pass


class _OnlyCommand:
    """A subparsers action that builds only the parser of ``command``."""

    def __init__(self, sub: Subparsers, command: str) -> None:
        self._sub = sub
        self._command = command
        self.matched = False

    def add_parser(self, name: str, **kwargs: Any) -> Any:
        if name == self._command or self._command in kwargs.get("aliases", ()):
            self.matched = True
            return self._sub.add_parser(name, **kwargs)
        return _Skip()

    def __getattr__(self, name: str) -> object:
        return getattr(self._sub, name)


def _invoked_command(argv: list[str]) -> str | None:
    """The command word of ``argv`` if it can be found without a parser, else None."""
    return _invoked(argv)[0]


def _invoked(argv: list[str]) -> tuple[str | None, str | None]:
    """The command word of ``argv`` and the word after it (a group's subcommand, as
    `run` in `container run`), each None where it cannot be found without a parser."""
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in _VALUE_OPTS:
            i += 2
            continue
        if a.startswith(("--host=", "--namespace=")) or (a[:2] in ("-H", "-n") and len(a) > 2):
            i += 1
            continue
        if a.startswith("-") or a not in COMMANDS:
            return None, None  # --help, --version, or something argparse should judge
        nxt = argv[i + 1] if i + 1 < len(argv) else ""
        return a, (nxt if nxt and not nxt.startswith("-") else None)
    return None, None


class _Building:
    """The subcommand the parser being built is for (None: all of them)."""

    sub: str | None = None
    groups: list[_OnlyCommand] = []


def subcommands(p: argparse.ArgumentParser, **kwargs: Any) -> Subparsers:
    """A command group's subparsers (`container`, `image`, `system`...). For `podkit
    container run` only `run`'s parser is built, as for top-level commands."""
    action = p.add_subparsers(**kwargs)
    if _Building.sub is None:
        return action
    only = _OnlyCommand(action, _Building.sub)
    _Building.groups.append(only)
    return only


def build_parser(command: str | None = None, sub: str | None = None) -> argparse.ArgumentParser:
    """The whole parser, or (``command`` given) one with only that command's parser;
    ``sub``: of a group's, only that subcommand's (all of them when the group has none
    of that name, so that argparse lists them)."""
    from podkit.cli._argparser import Parser

    p: argparse.ArgumentParser = build(command, sub, Parser)
    return p


def build(command: str | None, sub: str | None, make: Callable[..., Any]) -> Any:
    """build_parser's parser with ``make`` as the root parser's class: podkit's argparse
    parser, or podkit/cli/_fastargs.py's Recorder (whose add_parser makes Recorders)."""
    if command in _GROUPS and sub is not None:
        _Building.sub, _Building.groups = sub, []
        try:
            p = _build(command, make)
        finally:
            _Building.sub = None
        if any(g.matched for g in _Building.groups):
            return p
    return _build(command, make)


def _build(command: str | None, make: Callable[..., Any]) -> Any:
    p = make(
        prog="podkit",
        description="podkit: containers and pods on one Linux host.",
    )
    p.add_argument("-H", "--host", default=None, help="daemon socket, unix:///path (env PODKIT_HOST)")
    p.add_argument(
        "-n",
        "--namespace",
        default=None,
        help="namespace to work in (env PODKIT_NAMESPACE, default 'default')",
    )
    p.add_argument("-v", "--version", action="store_true", help="print the client version")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    areas = [COMMANDS[command]] if command in COMMANDS else AREAS
    for area in areas:
        try:
            mod = __import__(f"podkit.cli.{area}", fromlist=["register"])
        except ModuleNotFoundError as e:
            if e.name != f"podkit.cli.{area}":
                raise
            continue
        # _OnlyCommand is a stand-in for the subparsers action (add_parser is all they use)
        mod.register(_OnlyCommand(sub, command) if command in COMMANDS else sub)
    return p


def handler(module: str, name: str) -> Callable[[argparse.Namespace, Client], int | None]:
    """The handler ``name`` of ``podkit.cli.<module>``, imported when the command runs:
    registering a command does not import what only running it needs."""

    def run(args: argparse.Namespace, client: Client) -> int | None:
        fn: Callable[[argparse.Namespace, Client], int | None] = getattr(
            __import__(f"podkit.cli.{module}", fromlist=[name]), name
        )
        return fn(args, client)

    return run


def add_format(p: argparse.ArgumentParser, quiet: bool = True) -> None:
    """The flags every listing/inspect command shares."""
    p.add_argument(
        "--format", default="table", help="table, json, or a Go template such as 'table {{.ID}}\\t{{.Name}}'"
    )
    if quiet:
        p.add_argument("-q", "--quiet", action="store_true", help="only print ids")


def entry() -> None:
    """The `podkit` program: main(), then out without the interpreter's teardown.

    Finalizing the interpreter (every module's objects freed, the GC run over them)
    is ~4 ms of each call for nothing a CLI needs: once stdout and stderr are
    flushed, os._exit. When something is left that the normal exit would run or
    wait for (an atexit hook, a thread), or a flush fails (stdout was closed), the
    normal exit does it, with its usual messages and exit code."""
    try:
        main()
        code = 0
    except SystemExit as e:
        if e.code is not None and not isinstance(e.code, int):
            raise  # a message to print: the interpreter does that, exit 1
        code = e.code or 0
    import atexit

    if atexit._ncallbacks() or ("threading" in sys.modules and sys.modules["threading"].active_count() > 1):
        sys.exit(code)
    try:
        for f in (sys.stdout, sys.stderr):
            if f is not None:
                f.flush()
    except BaseException:
        sys.exit(code)
    os._exit(code)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    command, sub = _invoked(argv)
    args: Any = None
    if command is not None:
        # argparse only where the fast parser declines (help, errors, the uncommon)
        from podkit.cli._fastargs import Recorder, parse

        args = parse(build(command, sub, Recorder), argv)
        if args is not None and not getattr(args, "func", None):
            args = None  # argparse's path prints the help
    if args is None:
        parser = build_parser(command, sub)
        args = parser.parse_args(argv)
    if args.version:
        from podkit._version import __version__

        print(f"podkit version {__version__}")
        return
    if not getattr(args, "func", None):
        parser.print_help()
        sys.exit(0 if args.command is None else 1)
    sys.exit(run(args))


def run(args: argparse.Namespace) -> int:
    from podkit.client import Client
    from podkit.client._transport import ConnectionLost

    client: Client = Client(host=args.host, namespace=args.namespace, timeout=None)
    # Commands that create or run containers exit 125 on podkit's own errors, as
    # docker does; the rest exit 1.
    engine_exit = getattr(args, "engine_exit", 1)
    try:
        rc = args.func(args, client)
        return int(rc or 0)
    except ConnectionLost as e:
        # the daemon died or restarted mid-request: an engine failure for every command
        sys.stderr.write(f"Error: {e.message}\n")
        return 125
    except errors.PodkitError as e:
        sys.stderr.write(f"Error: {e.message}\n")
        if isinstance(e, errors.CannotExecute | errors.CommandNotFound | errors.NoSpace):
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
    entry()
