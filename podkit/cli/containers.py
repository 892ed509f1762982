"""Container commands: run, create, start, stop, kill, restart, rm, wait, pause, unpause,
attach, logs, exec, ps, inspect, stats, top, port, cp, rename, container prune."""

from __future__ import annotations

import os
import sys

from podkit import errors
from podkit.cli._fastargs import REMAINDER
from podkit.cli.container_create import CidFile, add_create_flags, create_body
from podkit.cli.container_ops import container_ops as _ops
from podkit.cli.main import handler
from podkit.cli.output import for_each, prints_help

TYPE_CHECKING = False  # not typing's: it stays out of the CLI's start-up (podkit/cli/main.py)
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable

    from podkit.cli.main import Subparsers
    from podkit.client import Client

_ENGINE = {"engine_exit": 125}


def _add_format(p: argparse.ArgumentParser, quiet: bool = True) -> None:
    from podkit.cli.main import add_format

    add_format(p, quiet)


def _add_ps_format(p: argparse.ArgumentParser) -> None:
    # Not add_format's fixed choices: `ps --format '{{.Names}}'` is how docker users script.
    p.add_argument(
        "--format",
        default="table",
        help="table, json, or a template such as '{{.ID}} {{.Names}} {{.Status}}'",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="only print ids")
    p.add_argument("-n", "--last", type=int, default=-1, help="the N last created (any state)")
    p.add_argument("-s", "--size", action="store_true", help="sizes: written, (virtual: with the image)")


def register(sub: Subparsers) -> None:
    from podkit.cli.main import subcommands

    _register_commands(sub, group=False)
    # docker's management commands: each of the above as `podkit container CMD` too,
    # the same parsers (ps as `container ls`), plus `container prune`
    p = sub.add_parser("container", help="manage containers")
    _register_commands(subcommands(p, dest="container_cmd", metavar="COMMAND"), group=True)
    p.set_defaults(func=prints_help(p))


def _register_commands(sub: Subparsers, group: bool) -> None:
    from podkit.cli import container_image

    _register_run(sub)
    _register_lifecycle(sub, group)
    _register_stdio(sub)
    _register_views(sub, group)
    container_image.register(sub)
    if group:
        p = sub.add_parser("prune", help="remove all stopped containers")
        p.add_argument("-f", "--force", action="store_true", help="do not ask (podkit never asks)")
        p.add_argument(
            "--filter",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="until=TIME, label=K[=V], label!=K",
        )
        p.set_defaults(func=handler("container_listing", "cmd_prune"))


def _register_run(sub: Subparsers) -> None:
    """`run` and `create`."""
    p = sub.add_parser("run", help="create and start a container", add_help=False)
    p.add_argument("--help", action="help", help="show this help")
    add_create_flags(p)
    p.add_argument("-d", "--detach", action="store_true", help="run in the background, print its id")
    p.add_argument("--detach-keys", help="keys that detach (default ctrl-p,ctrl-q)")
    p.add_argument(
        "-a",
        "--attach",
        action="append",
        default=[],
        help="attach only to STDIN, STDOUT or STDERR (repeatable)",
    )
    p.set_defaults(func=cmd_run, **_ENGINE)

    p = sub.add_parser("create", help="create a container", add_help=False)
    p.add_argument("--help", action="help", help="show this help")
    add_create_flags(p)
    p.set_defaults(func=cmd_create, **_ENGINE)


def _register_lifecycle(sub: Subparsers, group: bool = False) -> None:
    """Start, stop, kill, restart, rm, wait, pause, unpause, update, rename."""
    p = sub.add_parser("start", help="start containers")
    p.add_argument("-a", "--attach", action="store_true", help="attach stdout/stderr, exit with its code")
    p.add_argument("-i", "--interactive", action="store_true", help="attach stdin")
    p.add_argument("--detach-keys")
    p.add_argument("containers", nargs="+")
    p.set_defaults(func=cmd_start, **_ENGINE)

    p = sub.add_parser("stop", help="stop containers (stop signal, then SIGKILL)")
    _stop_flags(p)
    p.add_argument("containers", nargs="+")
    p.set_defaults(func=cmd_stop)

    p = sub.add_parser("kill", help="send a signal to containers")
    p.add_argument("-s", "--signal", default="KILL")
    p.add_argument("containers", nargs="+")
    p.set_defaults(func=cmd_kill)

    p = sub.add_parser("restart", help="restart containers")
    _stop_flags(p)
    p.add_argument("containers", nargs="+")
    p.set_defaults(func=cmd_restart)

    # docker 23+: `container remove` too
    p = sub.add_parser("rm", aliases=["remove"] if group else [], help="remove containers")
    p.add_argument("-f", "--force", action="store_true", help="kill running ones first")
    p.add_argument("-v", "--volumes", action="store_true", help="remove their anonymous volumes")
    p.add_argument("containers", nargs="+")
    p.set_defaults(func=cmd_rm)

    p = sub.add_parser("wait", help="wait for containers to stop; print their exit codes")
    p.add_argument("--condition", default="not-running", choices=["not-running", "next-exit", "removed"])
    p.add_argument("containers", nargs="+")
    p.set_defaults(func=cmd_wait)

    for name, fn, hlp in (
        ("pause", cmd_pause, "freeze containers"),
        ("unpause", cmd_unpause, "thaw containers"),
    ):
        p = sub.add_parser(name, help=hlp)
        p.add_argument("containers", nargs="+")
        p.set_defaults(func=fn)

    p = sub.add_parser("update", help="change resource limits or the restart policy of containers")
    p.add_argument("-m", "--memory")
    p.add_argument("--memory-swap", help="memory + swap (SIZE), -1 for unlimited")
    p.add_argument("--cpus")
    p.add_argument("--cpu-shares", type=int)
    p.add_argument("--cpu-period", type=int, help="CFS period (µs)")
    p.add_argument("--cpu-quota", type=int, help="CFS quota (µs per period)")
    p.add_argument("--cpuset-cpus", help="CPUs allowed (0-3,5)")
    p.add_argument("--cpuset-mems", help="memory nodes allowed (0-1)")
    p.add_argument("--pids-limit", type=int)
    p.add_argument("--restart", help="no | on-failure[:N] | always | unless-stopped")
    p.add_argument("containers", nargs="+")
    p.set_defaults(func=cmd_update)

    p = sub.add_parser("rename", help="rename a container")
    p.add_argument("container")
    p.add_argument("new_name")
    p.set_defaults(func=cmd_rename)


def _register_stdio(sub: Subparsers) -> None:
    """Attach, logs, exec."""
    p = sub.add_parser("attach", help="attach to a running container's stdio")
    p.add_argument("--detach-keys")
    p.add_argument("--no-stdin", action="store_true")
    p.add_argument("--logs", action="store_true", help="first replay what the container wrote so far")
    p.add_argument("container")
    p.set_defaults(func=cmd_attach)

    p = sub.add_parser("logs", help="show a container's logs")
    p.add_argument("-f", "--follow", action="store_true")
    p.add_argument("--since", help="unix time, RFC 3339 or duration (10m)")
    p.add_argument("--until")
    p.add_argument("-n", "--tail", default="all", help="last N lines")
    p.add_argument("-t", "--timestamps", action="store_true")
    p.add_argument("container")
    p.set_defaults(func=cmd_logs)

    p = sub.add_parser("exec", help="run a command in a running container")
    p.add_argument("-i", "--interactive", action="store_true")
    p.add_argument("-t", "--tty", action="store_true")
    p.add_argument("-d", "--detach", action="store_true")
    p.add_argument("-e", "--env", action="append", default=[])
    p.add_argument("-u", "--user")
    p.add_argument("-w", "--workdir")
    p.add_argument("--privileged", action="store_true")
    p.add_argument("--detach-keys")
    p.add_argument("container")
    p.add_argument("command", nargs=REMAINDER)
    p.set_defaults(func=cmd_exec, **_ENGINE)


def _add_inspect_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-f", "--format", default="json", help="json (default), or a template such as '{{.State.Status}}'"
    )
    p.add_argument("objects", nargs="+", metavar="OBJECT")


def _register_views(sub: Subparsers, group: bool) -> None:
    """Ps (`container ls`), inspect, stats, top, port, cp."""
    if group:
        p = sub.add_parser("ls", aliases=["list", "ps"], help="list containers")
    else:
        p = sub.add_parser("ps", help="list containers")
    p.add_argument("-a", "--all", action="store_true", help="include stopped ones")
    p.add_argument("-f", "--filter", action="append", default=[], help="KEY=VALUE (status, name, label, ...)")
    p.add_argument("--no-trunc", action="store_true")
    p.add_argument("-l", "--latest", action="store_true", help="only the latest created")
    _add_ps_format(p)
    p.set_defaults(func=handler("container_listing", "cmd_ps"))

    if group:
        p = sub.add_parser("inspect", help="show details of containers")
        _add_inspect_args(p)
        p.set_defaults(func=handler("container_inspect", "cmd_inspect"), type="container")
    else:
        p = sub.add_parser("inspect", help="show details of containers (or images)")
        _add_inspect_args(p)
        p.add_argument("--type", choices=["container", "image"], help="only look for this kind of object")
        p.set_defaults(func=handler("container_inspect", "cmd_inspect"))

    p = sub.add_parser("stats", help="resource usage of containers")
    p.add_argument("-a", "--all", action="store_true", help="every container, stopped ones too")
    p.add_argument("--no-stream", action="store_true")
    p.add_argument("--no-trunc", action="store_true", help="full container ids")
    p.add_argument(
        "--format", default="table", help="table, json, or a template such as '{{.Name}} {{.CPUPerc}}'"
    )
    p.add_argument("containers", nargs="*")
    p.set_defaults(func=handler("container_listing", "cmd_stats"))

    p = sub.add_parser("top", help="processes of a container")
    p.add_argument("container")
    p.add_argument("ps_args", nargs=REMAINDER)
    p.set_defaults(func=handler("container_listing", "cmd_top"))

    p = sub.add_parser("port", help="published ports of a container")
    p.add_argument("container")
    p.add_argument("private_port", nargs="?")
    p.set_defaults(func=handler("container_listing", "cmd_port"))

    p = sub.add_parser("cp", help="copy files between a container and the host (CTR:PATH, - for tar)")
    p.add_argument("-a", "--archive", action="store_true", help="keep the owners (uid/gid) of the source")
    p.add_argument("-L", "--follow-link", action="store_true", help="copy what a symlink SRC points to")
    p.add_argument("src")
    p.add_argument("dst")
    p.set_defaults(func=handler("cp", "cmd_cp"))


# ----------------------------------------------------------------------------- run


def _attach_and_start(
    client: Client,
    cid: str,
    *,
    tty: bool,
    stdin: bool,
    detach_keys: str | None,
    streams: frozenset[str] = frozenset(("stdout", "stderr")),
    sig_proxy: bool = True,
) -> int:
    from podkit.cli.stdio import interact

    # `run --rm` ends with the exit code: the daemon finishes the removal in the background.
    ws = _ops(client).attach_socket(cid, stdin=stdin, start=True, detach_keys=detach_keys, removed=False)

    def interrupt() -> None:  # docker's sig-proxy: Ctrl-C goes to the container
        try:
            _ops(client).kill(cid, "INT")
        except errors.PodkitError:
            raise KeyboardInterrupt from None

    code = interact(
        ws,
        tty=tty,
        stdin=stdin,
        detach_keys=detach_keys,
        on_interrupt=interrupt if sig_proxy and not tty else None,
        streams=streams,
    )
    return 0 if code == -1 else code


def cmd_run(args: argparse.Namespace, client: Client) -> int:
    if args.detach and args.rm and args.restart:
        raise errors.InvalidArgument("conflicting options: --restart and --rm")
    streams = _attach_streams(args.attach)
    if args.attach and args.detach:
        raise errors.InvalidArgument("conflicting options: -a and -d")
    body = create_body(args)
    if args.tty and not args.detach and args.interactive and not sys.stdin.isatty():
        raise errors.InvalidArgument("the input device is not a TTY (drop -t)")
    cid = _create(client, body, args.cidfile, attach=not args.detach)
    if args.detach:
        try:
            _ops(client).start(cid)
        except errors.PodkitError:
            # a run that cannot start leaves nothing behind
            try:
                _ops(client).remove(cid, force=True, volumes=True)
            except errors.PodkitError:
                pass  # the start's error is the one to report
            raise
        print(cid)
        return 0
    return _attach_and_start(
        client,
        cid,
        tty=args.tty,
        stdin=args.interactive and "stdin" in streams,
        detach_keys=args.detach_keys,
        streams=streams,
        sig_proxy=args.sig_proxy.lower() in ("true", "1"),
    )


def _attach_streams(given: list[str]) -> frozenset[str]:
    """``-a stdin|stdout|stderr`` (any case, repeatable); none given: stdout and stderr (and
    stdin with ``-i``), as docker attaches."""
    if not given:
        return frozenset(("stdin", "stdout", "stderr"))
    out = set()
    for g in given:
        if g.lower() not in ("stdin", "stdout", "stderr"):
            raise errors.InvalidArgument(
                f"invalid argument {g!r} for -a/--attach: valid streams are STDIN, STDOUT and STDERR"
            )
        out.add(g.lower())
    return frozenset(out)


def _prepare_attach() -> None:
    """Import what attaching needs while the daemon creates the container: the CLI
    would wait idle for the create, then spend ~1 ms of each `run` on these."""
    import podkit.cli.stdio
    import podkit.client._container_ops
    import podkit.client._ws  # noqa: F401


def _create(client: Client, body: dict[str, object], cidfile: str | None, attach: bool = False) -> str:
    cf = CidFile(cidfile)
    try:
        out = client._t.post("/containers", json_body=body, while_waiting=_prepare_attach if attach else None)
        cid = str(out["id"])
        for w in out.get("warnings") or []:  # docker's CLI prints the daemon's warnings so
            print(f"WARNING: {w}", file=sys.stderr)
    except BaseException:
        cf.discard()
        raise
    cf.write(cid)
    return cid


def cmd_create(args: argparse.Namespace, client: Client) -> int:
    print(_create(client, create_body(args), args.cidfile))
    return 0


def _each(args: argparse.Namespace, fn: Callable[[str], object], print_ref: bool = True) -> int:
    return for_each(args.containers, fn, echo=print_ref)


def cmd_start(args: argparse.Namespace, client: Client) -> int:
    if args.attach or args.interactive:
        if len(args.containers) != 1:
            raise errors.InvalidArgument("you cannot start and attach multiple containers at once")
        info = _ops(client).inspect(args.containers[0])
        tty = bool(info.get("config", {}).get("tty"))
        return _attach_and_start(
            client, info["id"], tty=tty, stdin=args.interactive, detach_keys=args.detach_keys
        )
    return _each(args, _ops(client).start)


def _stop_flags(p: argparse.ArgumentParser) -> None:
    # docker 28 spells it --timeout (--time still works)
    p.add_argument("-t", "--time", "--timeout", dest="time", type=int, help="seconds to wait before SIGKILL")
    p.add_argument("-s", "--signal", help="signal to stop with (default: the container's stop signal)")


def cmd_stop(args: argparse.Namespace, client: Client) -> int:
    return _each(args, lambda r: _ops(client).stop(r, timeout=args.time, signal=args.signal))


def cmd_kill(args: argparse.Namespace, client: Client) -> int:
    return _each(args, lambda r: _ops(client).kill(r, args.signal))


def cmd_restart(args: argparse.Namespace, client: Client) -> int:
    return _each(args, lambda r: _ops(client).restart(r, timeout=args.time, signal=args.signal))


def cmd_rm(args: argparse.Namespace, client: Client) -> int:
    return _each(args, lambda r: _ops(client).remove(r, force=args.force, volumes=args.volumes))


def cmd_wait(args: argparse.Namespace, client: Client) -> int:
    return _each(args, lambda r: print(_ops(client).wait(r, condition=args.condition)), print_ref=False)


def cmd_pause(args: argparse.Namespace, client: Client) -> int:
    return _each(args, _ops(client).pause)


def cmd_unpause(args: argparse.Namespace, client: Client) -> int:
    return _each(args, _ops(client).unpause)


def cmd_update(args: argparse.Namespace, client: Client) -> int:
    body = {
        k: v
        for k, v in (
            ("memory", args.memory),
            ("memory_swap", args.memory_swap),
            ("cpus", args.cpus),
            ("cpu_shares", args.cpu_shares),
            ("cpu_period", args.cpu_period),
            ("cpu_quota", args.cpu_quota),
            ("cpuset_cpus", args.cpuset_cpus),
            ("cpuset_mems", args.cpuset_mems),
            ("pids_limit", args.pids_limit),
            ("restart", args.restart),
        )
        if v is not None
    }
    if not body:
        raise errors.InvalidArgument(
            "nothing to update: give --memory, --memory-swap, --cpus, --cpu-shares, --cpu-period, "
            "--cpu-quota, --cpuset-cpus, --cpuset-mems, --pids-limit or --restart"
        )
    return _each(args, lambda r: _ops(client).update(r, **body))


def cmd_rename(args: argparse.Namespace, client: Client) -> int:
    _ops(client).rename(args.container, args.new_name)
    return 0


def cmd_attach(args: argparse.Namespace, client: Client) -> int:
    from podkit.cli.stdio import interact

    info = _ops(client).inspect(args.container)
    if info["state"] not in ("running", "paused"):
        raise errors.Conflict("you cannot attach to a stopped container, start it first")
    cfg = info.get("config") or {}
    stdin = bool(cfg.get("open_stdin")) and not args.no_stdin
    ws = _ops(client).attach_socket(info["id"], stdin=stdin, logs=args.logs, detach_keys=args.detach_keys)
    code = interact(ws, tty=bool(cfg.get("tty")), stdin=stdin, detach_keys=args.detach_keys)
    return 0 if code == -1 else code


def cmd_logs(args: argparse.Namespace, client: Client) -> int:
    tail = None if args.tail in ("all", "", None) else int(args.tail)
    params = {"follow": args.follow, "since": args.since, "until": args.until, "tail": tail}
    for e in client._t.stream("GET", f"/containers/{args.container}/logs", params=params):
        out = sys.stderr if e["stream"] == "stderr" else sys.stdout
        out.write((e["ts"] + " " if args.timestamps else "") + e["data"])
        if args.follow:
            out.flush()
    return 0


def cmd_exec(args: argparse.Namespace, client: Client) -> int:
    from podkit.cli.stdio import interact

    cmd = list(args.command)
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    if not cmd:
        raise errors.InvalidArgument("exec needs a command")
    env = []
    for e in args.env:
        if "=" not in e:
            if e in os.environ:
                env.append(f"{e}={os.environ[e]}")
            continue
        env.append(e)
    from podkit.cli.stdio import term_size

    eid = _ops(client).exec_create(
        args.container,
        cmd,
        env=env,
        user=args.user,
        workdir=args.workdir,
        tty=args.tty,
        stdin=args.interactive,
        privileged=args.privileged,
        console_size=term_size() if args.tty else None,
    )
    if args.detach:
        client._t.post(f"/exec/{eid}/start", params={"detach": True})
        return 0
    ws = _ops(client).exec_socket(eid)
    code = interact(ws, tty=args.tty, stdin=args.interactive, detach_keys=args.detach_keys)
    return 0 if code == -1 else code
