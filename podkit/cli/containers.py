"""Container commands: run, create, start, stop, kill, restart, rm, wait, pause, unpause,
attach, logs, exec, ps, inspect, stats, top, port, cp, rename, container prune."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from podkit import errors
from podkit.cli.output import ago, for_each, human_size, print_inspected, print_json, render_template, table

if TYPE_CHECKING:
    from podkit.cli.main import Subparsers
    from podkit.client import Client
    from podkit.client._container_ops import ContainerOps

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


def _ops(client: Client) -> ContainerOps:
    """The SDK's plain container calls (no data classes to import: the CLI starts faster)."""
    from podkit.client._container_ops import ContainerOps

    return ContainerOps(client._t)


def add_create_flags(p: argparse.ArgumentParser) -> None:
    a = p.add_argument
    a("--name", help="a name for the container")
    a("-e", "--env", action="append", default=[], help="set an environment variable KEY=VALUE")
    a("--env-file", action="append", default=[], help="read environment variables from a file")
    a("-v", "--volume", action="append", default=[], help="bind HOST:CTR[:ro] or volume NAME:CTR")
    a("--tmpfs", action="append", default=[], help="mount a tmpfs: PATH[:OPTIONS]")
    a("--read-only", action="store_true", help="mount the root file system read-only")
    a("-u", "--user", help="USER[:GROUP] (names or ids)")
    a("-w", "--workdir", help="working directory inside the container")
    a("-h", "--hostname", help="container host name")
    a("-l", "--label", action="append", default=[], help="set a label KEY=VALUE")
    a("--cap-add", action="append", default=[], help="add a capability")
    a("--cap-drop", action="append", default=[], help="drop a capability")
    a("--privileged", action="store_true", help="all capabilities and devices, no confinement")
    a(
        "--security-opt",
        action="append",
        default=[],
        help="seccomp=unconfined|PROFILE.json, no-new-privileges[=false]",
    )
    a("--device", action="append", default=[], help="add a host device HOST[:CTR[:rwm]]")
    a("-m", "--memory", help="memory limit (e.g. 64m)")
    a("--memory-swap", help="memory + swap limit (-1 unlimited)")
    a("--cpus", help="number of CPUs (e.g. 0.5)")
    a("--cpu-shares", type=int, help="relative CPU weight")
    a("--pids-limit", type=int, help="maximum number of processes")
    a("--ulimit", action="append", default=[], help="NAME=SOFT[:HARD], e.g. nofile=1024:2048")
    a("--init", action="store_true", help="run catatonit as PID 1 to reap zombies and forward signals")
    a("--restart", help="no | on-failure[:N] | always | unless-stopped")
    a("--rm", action="store_true", help="remove the container when it exits")
    a("-p", "--publish", action="append", default=[], help="publish a port [IP:]HOST:CTR[/PROTO]")
    a("--network", "--net", help="bridge (default) | host | none | container:ID | NETWORK")
    a("--dns", action="append", default=[], help="a DNS server")
    a("--add-host", action="append", default=[], help="an /etc/hosts entry HOST:IP")
    a("--stop-signal", help="signal that stops the container (default: image's, else SIGTERM)")
    a("--stop-timeout", type=int, help="seconds before stop sends SIGKILL (default 10)")
    a("--entrypoint", help="override the image's entrypoint")
    a("-i", "--interactive", action="store_true", help="keep stdin open")
    a("-t", "--tty", action="store_true", help="allocate a pseudo-terminal")
    a("--pod", help="run the container in this pod")
    a("--shm-size", help="size of /dev/shm")
    a("--log-size-max", help="rotate the log file at this size")
    a("image", help="image reference")
    a("command", nargs=argparse.REMAINDER, help="command and arguments")


def _body(args: argparse.Namespace) -> dict[str, Any]:
    env: list[str] = []
    for e in args.env:
        if "=" not in e:  # docker: take the value from the client's environment
            if e in os.environ:
                env.append(f"{e}={os.environ[e]}")
            continue
        env.append(e)
    body: dict[str, Any] = {
        "image": args.image,
        "name": args.name,
        "env": env,
        "env_file": args.env_file,
        "volumes": args.volume,
        "tmpfs": args.tmpfs,
        "read_only": args.read_only,
        "user": args.user,
        "workdir": args.workdir,
        "hostname": args.hostname,
        "labels": args.label,
        "cap_add": args.cap_add,
        "cap_drop": args.cap_drop,
        "privileged": args.privileged,
        "security_opt": args.security_opt,
        "devices": args.device,
        "memory": args.memory,
        "memory_swap": args.memory_swap,
        "cpus": args.cpus,
        "cpu_shares": args.cpu_shares,
        "pids_limit": args.pids_limit,
        "ulimits": args.ulimit,
        "init": args.init,
        "restart": args.restart,
        "auto_remove": args.rm,
        "ports": args.publish,
        "network": args.network,
        "dns": args.dns,
        "add_hosts": args.add_host,
        "stop_signal": args.stop_signal,
        "stop_timeout": args.stop_timeout,
        "tty": args.tty,
        "open_stdin": args.interactive,
        "shm_size": args.shm_size,
        "log_size_max": args.log_size_max,
    }
    if args.entrypoint is not None:
        body["entrypoint"] = [args.entrypoint] if args.entrypoint else ""
    cmd = list(args.command)
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    if cmd:
        body["cmd"] = cmd
    if args.pod:
        body["pod"] = args.pod
    from podkit.userfiles import inline_files

    # env files and seccomp profiles are read here, not by the daemon (as docker's CLI does)
    return inline_files({k: v for k, v in body.items() if v not in (None, [], False)})


def register(sub: Subparsers) -> None:
    p = sub.add_parser("run", help="create and start a container", add_help=False)
    p.add_argument("--help", action="help", help="show this help")
    add_create_flags(p)
    p.add_argument("-d", "--detach", action="store_true", help="run in the background, print its id")
    p.add_argument("--detach-keys", help="keys that detach (default ctrl-p,ctrl-q)")
    p.set_defaults(func=cmd_run, **_ENGINE)

    p = sub.add_parser("create", help="create a container", add_help=False)
    p.add_argument("--help", action="help", help="show this help")
    add_create_flags(p)
    p.set_defaults(func=cmd_create, **_ENGINE)

    p = sub.add_parser("start", help="start containers")
    p.add_argument("-a", "--attach", action="store_true", help="attach stdout/stderr, exit with its code")
    p.add_argument("-i", "--interactive", action="store_true", help="attach stdin")
    p.add_argument("--detach-keys")
    p.add_argument("containers", nargs="+")
    p.set_defaults(func=cmd_start, **_ENGINE)

    p = sub.add_parser("stop", help="stop containers (stop signal, then SIGKILL)")
    p.add_argument("-t", "--time", type=int, help="seconds to wait before SIGKILL")
    p.add_argument("containers", nargs="+")
    p.set_defaults(func=cmd_stop)

    p = sub.add_parser("kill", help="send a signal to containers")
    p.add_argument("-s", "--signal", default="KILL")
    p.add_argument("containers", nargs="+")
    p.set_defaults(func=cmd_kill)

    p = sub.add_parser("restart", help="restart containers")
    p.add_argument("-t", "--time", type=int, help="seconds to wait before SIGKILL")
    p.add_argument("containers", nargs="+")
    p.set_defaults(func=cmd_restart)

    p = sub.add_parser("rm", help="remove containers")
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
    p.add_argument("--cpus")
    p.add_argument("--cpu-shares", type=int)
    p.add_argument("--pids-limit", type=int)
    p.add_argument("--restart", help="no | on-failure[:N] | always | unless-stopped")
    p.add_argument("containers", nargs="+")
    p.set_defaults(func=cmd_update)

    p = sub.add_parser("rename", help="rename a container")
    p.add_argument("container")
    p.add_argument("new_name")
    p.set_defaults(func=cmd_rename)

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
    p.add_argument("command", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_exec, **_ENGINE)

    p = sub.add_parser("ps", help="list containers")
    p.add_argument("-a", "--all", action="store_true", help="include stopped ones")
    p.add_argument("-f", "--filter", action="append", default=[], help="KEY=VALUE (status, name, label, ...)")
    p.add_argument("--no-trunc", action="store_true")
    p.add_argument("-l", "--latest", action="store_true", help="only the latest created")
    _add_ps_format(p)
    p.set_defaults(func=cmd_ps)

    p = sub.add_parser("inspect", help="show details of containers (or images)")
    _inspect_args(p)
    p.add_argument("--type", choices=["container", "image"], help="only look for this kind of object")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("stats", help="resource usage of containers")
    p.add_argument("--no-stream", action="store_true")
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.add_argument("containers", nargs="*")
    p.set_defaults(func=cmd_stats)

    p = sub.add_parser("top", help="processes of a container")
    p.add_argument("container")
    p.add_argument("ps_args", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_top)

    p = sub.add_parser("port", help="published ports of a container")
    p.add_argument("container")
    p.add_argument("private_port", nargs="?")
    p.set_defaults(func=cmd_port)

    p = sub.add_parser("cp", help="copy files between a container and the host (CTR:PATH, - for tar)")
    p.add_argument("src")
    p.add_argument("dst")
    p.set_defaults(func=cmd_cp)

    p = sub.add_parser("container", help="manage containers")
    csub = p.add_subparsers(dest="container_cmd", metavar="COMMAND")
    pp = csub.add_parser("prune", help="remove all stopped containers")
    pp.add_argument("-f", "--force", action="store_true", help="do not ask (podkit never asks)")
    pp.set_defaults(func=cmd_prune)
    pi = csub.add_parser("inspect", help="show details of containers")
    _inspect_args(pi)
    pi.set_defaults(func=cmd_inspect, type="container")
    for name in ("ls", "list"):
        pl = csub.add_parser(name, help="list containers")
        pl.add_argument("-a", "--all", action="store_true")
        pl.add_argument("-f", "--filter", action="append", default=[])
        pl.add_argument("--no-trunc", action="store_true")
        pl.add_argument("-l", "--latest", action="store_true")
        _add_ps_format(pl)
        pl.set_defaults(func=cmd_ps)


# ----------------------------------------------------------------------------- run


def _attach_and_start(client: Client, cid: str, *, tty: bool, stdin: bool, detach_keys: str | None) -> int:
    from podkit.cli.stdio import interact

    ws = _ops(client).attach_socket(cid, stdin=stdin, start=True, detach_keys=detach_keys)

    def interrupt() -> None:  # docker's sig-proxy: Ctrl-C goes to the container
        try:
            _ops(client).kill(cid, "INT")
        except errors.PodkitError:
            raise KeyboardInterrupt from None

    code = interact(
        ws, tty=tty, stdin=stdin, detach_keys=detach_keys, on_interrupt=None if tty else interrupt
    )
    return 0 if code == -1 else code


def cmd_run(args: argparse.Namespace, client: Client) -> int:
    if args.detach and args.rm and args.restart:
        raise errors.InvalidArgument("conflicting options: --restart and --rm")
    body = _body(args)
    if args.tty and not args.detach and args.interactive and not sys.stdin.isatty():
        raise errors.InvalidArgument("the input device is not a TTY (drop -t)")
    cid = client._t.post("/containers", json_body=body)["id"]
    if args.detach:
        try:
            _ops(client).start(cid)
        except errors.PodkitError:
            # a run that cannot start leaves nothing behind
            with contextlib.suppress(errors.PodkitError):
                _ops(client).remove(cid, force=True, volumes=True)
            raise
        print(cid)
        return 0
    return _attach_and_start(client, cid, tty=args.tty, stdin=args.interactive, detach_keys=args.detach_keys)


def cmd_create(args: argparse.Namespace, client: Client) -> int:
    print(client._t.post("/containers", json_body=_body(args))["id"])
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


def cmd_stop(args: argparse.Namespace, client: Client) -> int:
    return _each(args, lambda r: _ops(client).stop(r, timeout=args.time))


def cmd_kill(args: argparse.Namespace, client: Client) -> int:
    return _each(args, lambda r: _ops(client).kill(r, args.signal))


def cmd_restart(args: argparse.Namespace, client: Client) -> int:
    return _each(args, lambda r: _ops(client).restart(r, timeout=args.time))


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
            ("cpus", args.cpus),
            ("cpu_shares", args.cpu_shares),
            ("pids_limit", args.pids_limit),
            ("restart", args.restart),
        )
        if v is not None
    }
    if not body:
        raise errors.InvalidArgument(
            "nothing to update: give --memory, --cpus, --cpu-shares, --pids-limit or --restart"
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


# ---------------------------------------------------------------------- listing


def _filters(items: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for f in items:
        k, eq, v = f.partition("=")
        if not eq:
            raise errors.InvalidArgument(f"invalid filter {f!r}: want KEY=VALUE")
        out.setdefault(k, []).append(v)
    return out


def _ports_text(ports: list[dict[str, Any]]) -> str:
    out = []
    for p in ports:
        hp = p.get("host_port") or p.get("hostPort")
        cp = p.get("container_port") or p.get("containerPort")
        proto = p.get("protocol", "tcp")
        ip = p.get("host_ip") or p.get("hostIP") or "0.0.0.0"
        out.append(f"{ip}:{hp}->{cp}/{proto}" if hp else f"{cp}/{proto}")
    return ", ".join(out)


def cmd_ps(args: argparse.Namespace, client: Client) -> int:
    rows = client._t.get(
        "/containers", params={"all": args.all or args.latest, "filters": _filters(args.filter) or None}
    )
    if args.latest:
        rows = rows[:1]
    if args.quiet:
        for r in rows:
            print(r["id"] if args.no_trunc else r["id"][:12])
        return 0
    if args.format == "json":
        print_json(rows)
        return 0

    def cmdline(r: dict[str, Any]) -> str:
        c = " ".join(r.get("command") or [])
        c = json.dumps(c)
        return c if args.no_trunc or len(c) <= 22 else c[:19] + '…"'

    # A running pod member publishes the pod's ports (podman's PORTS column shows them);
    # one request for all pods, and only when a member is listed.
    pod_ports: dict[str, list[dict[str, Any]]] = {}
    if any(r.get("pod_id") and r.get("state") == "running" for r in rows):
        with contextlib.suppress(errors.PodkitError):
            pod_ports = {p["id"]: p.get("ports") or [] for p in client._t.get("/pods")}

    def ports(r: dict[str, Any]) -> str:
        own = r.get("ports") or []
        if not own and r.get("pod_id") and r.get("state") == "running":
            own = pod_ports.get(r["pod_id"], [])
        return _ports_text(own)

    if args.format not in ("table", None):
        for r in rows:
            # The field names of `docker ps --format`.
            fields = {
                "ID": r["id"] if args.no_trunc else r["id"][:12],
                "Image": r["image"].removeprefix("docker.io/library/"),
                "Command": cmdline(r),
                "CreatedAt": _iso(r.get("created")),
                "RunningFor": ago(r.get("created")),
                "Ports": ports(r),
                "State": r.get("state", ""),
                "Status": r.get("status", ""),
                "Names": r["name"],
                "Labels": ",".join(f"{k}={v}" for k, v in (r.get("labels") or {}).items()),
                "Pod": (r.get("pod_id") or "")[:12],
            }
            print(render_template(args.format, fields))
        return 0

    table(
        (
            [
                r["id"] if args.no_trunc else r["id"][:12],
                r["image"].removeprefix("docker.io/library/"),
                cmdline(r),
                ago(r["created"]),
                r["status"],
                ports(r),
                r["name"],
            ]
            for r in rows
        ),
        ["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"],
    )
    return 0


def _inspect_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-f", "--format", default="json", help="json (default), or a template such as '{{.State.Status}}'"
    )
    p.add_argument("objects", nargs="+", metavar="OBJECT")


def _iso(ts: float | None) -> str:
    import datetime

    if not ts:
        return "0001-01-01T00:00:00Z"  # what docker prints for "never"
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def docker_inspect(d: dict[str, Any]) -> dict[str, Any]:
    """The shape `docker inspect` prints for a container (State, Config, HostConfig,
    NetworkSettings, Mounts), so scripts and `-f '{{.State.Status}}'` written for docker
    work; podkit's own record is kept whole under "Podkit"."""
    cfg = d.get("config") or {}
    state = d.get("state") or ""
    net = d.get("network") or {}
    if state not in ("running", "paused"):
        # The record keeps the last attachment, but its address was released when the
        # container stopped (and may belong to another one now): docker shows none.
        net = {"mode": net.get("mode")}
    command = d.get("command") or []
    ports: dict[str, list[dict[str, str]]] = {}
    for p in d.get("ports") or []:
        key = f"{p.get('container_port')}/{p.get('protocol', 'tcp')}"
        ports.setdefault(key, []).append(
            {"HostIp": p.get("host_ip") or "0.0.0.0", "HostPort": str(p.get("host_port") or "")}
        )
    networks = {
        a.get("network", ""): {
            "NetworkID": a.get("network_id", ""),
            "IPAddress": a.get("ip", ""),
            "IPPrefixLen": a.get("prefix", 0),
            "Gateway": a.get("gateway", ""),
            "MacAddress": a.get("mac", ""),
        }
        for a in net.get("attachments") or []
    }
    mounts = []
    for m in d.get("mounts") or []:
        ro = bool(m.get("readonly"))
        mounts.append(
            {
                "Type": m.get("type", ""),
                **({"Name": m.get("source", "")} if m.get("type") == "volume" else {}),
                "Source": m.get("host_path") or m.get("source", ""),
                "Destination": m.get("target", ""),
                "Mode": "ro" if ro else "",
                "RW": not ro,
                "Propagation": "",
            }
        )
    restart = d.get("restart_policy") or cfg.get("restart") or {}
    cpus = cfg.get("cpus")
    return {
        "Id": d["id"],
        "Created": _iso(d.get("created")),
        "Path": command[0] if command else "",
        "Args": command[1:],
        "State": {
            "Status": state,
            "Running": state == "running",
            "Paused": state == "paused",
            "Restarting": state == "restarting",
            "OOMKilled": bool(d.get("oom_killed")),
            "Dead": state == "dead",
            "Pid": d.get("pid") or 0,
            "ExitCode": d.get("exit_code") or 0,
            "Error": d.get("error") or "",
            "StartedAt": _iso(d.get("started_at")),
            "FinishedAt": _iso(d.get("finished_at")),
        },
        "Image": d.get("image_id", ""),
        "Name": d.get("name", ""),
        "RestartCount": d.get("restart_count", 0),
        "LogPath": d.get("log_path", ""),
        "Pod": d.get("pod_id") or "",
        "HostConfig": {
            "NetworkMode": net.get("mode") or cfg.get("network") or "",
            "PortBindings": ports,
            "RestartPolicy": {
                "Name": restart.get("name", "no"),
                "MaximumRetryCount": restart.get("max_retries", 0),
            },
            "AutoRemove": bool(cfg.get("auto_remove")),
            "Privileged": bool(cfg.get("privileged")),
            "ReadonlyRootfs": bool(cfg.get("read_only")),
            "CapAdd": cfg.get("cap_add") or [],
            "CapDrop": cfg.get("cap_drop") or [],
            "Memory": cfg.get("memory") or 0,
            "NanoCpus": int(float(cpus) * 1e9) if cpus else 0,
            "CpuShares": cfg.get("cpu_shares") or 0,
            "PidsLimit": cfg.get("pids_limit") or 0,
            "Init": bool(cfg.get("init")),
        },
        "Mounts": mounts,
        "Config": {
            "Hostname": cfg.get("hostname") or "",
            "Domainname": cfg.get("domainname") or "",
            "User": cfg.get("user") or "",
            "Tty": bool(cfg.get("tty")),
            "OpenStdin": bool(cfg.get("open_stdin")),
            "Env": cfg.get("env") or [],
            "Cmd": cfg.get("cmd"),
            "Entrypoint": cfg.get("entrypoint"),
            "Image": cfg.get("image") or d.get("image", ""),
            "WorkingDir": cfg.get("workdir") or "",
            "Labels": d.get("labels") or {},
            "StopSignal": cfg.get("stop_signal") or "",
        },
        "NetworkSettings": {
            "IPAddress": net.get("ip") or "",
            "Gateway": net.get("gateway") or "",
            "MacAddress": net.get("mac") or "",
            "Ports": ports,
            "SandboxKey": net.get("netns") or "",
            "Networks": networks,
        },
        "Podkit": d,
    }


def cmd_inspect(args: argparse.Namespace, client: Client) -> int:
    # Image output in `podkit image inspect`'s docker shape, so both commands agree.
    from podkit.cli.images import docker_inspect as image_inspect

    out = []
    rc = 0
    for ref in args.objects:
        if args.type != "image":
            try:
                out.append(docker_inspect(_ops(client).inspect(ref)))
                continue
            except errors.NotFound:
                pass
        if args.type != "container":
            try:
                out.append(image_inspect(client._t.get("/images/inspect", params={"ref": ref})))
                continue
            except errors.PodkitError:
                pass
        kind = {"container": "container", "image": "image"}.get(args.type or "", "object")
        sys.stderr.write(f"Error: no such {kind}: {ref}\n")
        rc = 1
    print_inspected(out, args.format)
    return rc


def cmd_stats(args: argparse.Namespace, client: Client) -> int:
    refs = args.containers or [c.id for c in client.containers.list()]
    headers = ["CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O", "BLOCK I/O", "PIDS"]

    def row(s: Any) -> list[str]:
        mem_pct = 100.0 * s.memory_usage / s.memory_limit if s.memory_limit else 0.0
        return [
            s.id[:12],
            s.name,
            f"{s.cpu_percent:.2f}%",
            f"{human_size(s.memory_usage)} / {human_size(s.memory_limit)}",
            f"{mem_pct:.2f}%",
            f"{human_size(s.net_rx)} / {human_size(s.net_tx)}",
            f"{human_size(s.block_read)} / {human_size(s.block_write)}",
            str(s.pids),
        ]

    if args.no_stream:
        stats = [client.containers.stats(r) for r in refs]
        if args.format == "json":
            print_json([s.raw for s in stats])
        else:
            table((row(s) for s in stats), headers)
        return 0
    try:
        while True:
            stats = [client.containers.stats(r) for r in refs]
            if args.format == "json":
                print(json.dumps([s.raw for s in stats]), flush=True)
            else:
                sys.stdout.write("\x1b[2J\x1b[H")
                table((row(s) for s in stats), headers)
                sys.stdout.flush()
            time.sleep(0.8)
    except KeyboardInterrupt:
        return 0


def cmd_top(args: argparse.Namespace, client: Client) -> int:
    t = _ops(client).top(args.container, " ".join(args.ps_args) or None)
    table(t["processes"], t["titles"])
    return 0


def cmd_port(args: argparse.Namespace, client: Client) -> int:
    ports = _ops(client).port(args.container)
    if not ports:
        # A pod's member publishes nothing itself: the pod's ports reach its shared
        # network namespace, so they are this container's ports too (as podman shows).
        info = _ops(client).inspect(args.container)
        if info.get("pod_id") and info.get("state") in ("running", "paused"):
            ports = client._t.get(f"/pods/{info['pod_id']}").get("ports") or []
    for p in ports:
        cp = f"{p.get('container_port')}/{p.get('protocol', 'tcp')}"
        if args.private_port and args.private_port not in (cp, str(p.get("container_port"))):
            continue
        print(f"{cp} -> {p.get('host_ip') or '0.0.0.0'}:{p.get('host_port')}")
    return 0


def cmd_prune(args: argparse.Namespace, client: Client) -> int:
    removed = _ops(client).prune()
    if removed:
        print("Deleted Containers:")
        for r in removed:
            print(r)
    print(f"Total reclaimed: {len(removed)} containers")
    return 0


# ---------------------------------------------------------------------------- cp


def _split_ctr(spec: str) -> tuple[str, str] | None:
    if ":" in spec and not spec.startswith("/") and not spec.startswith("."):
        ref, _, path = spec.partition(":")
        if ref and path:
            return ref, path
    return None


def cmd_cp(args: argparse.Namespace, client: Client) -> int:
    import io
    import shutil
    import tarfile
    import tempfile

    src, dst = _split_ctr(args.src), _split_ctr(args.dst)
    if bool(src) == bool(dst):
        raise errors.InvalidArgument("copying needs exactly one side in the container: CONTAINER:PATH")
    if src:
        ref, path = src
        if args.dst == "-":
            _ops(client).stream_archive(ref, path, sys.stdout.buffer)
            return 0
        data, stat = _ops(client).get_archive(ref, path)
        target = os.path.abspath(args.dst)
        with tarfile.open(fileobj=io.BytesIO(data)) as tf:
            if os.path.isdir(target):
                tf.extractall(target)
            else:
                parent = os.path.dirname(target)
                if not os.path.isdir(parent):
                    raise errors.NotFound(f"destination directory {parent} does not exist")
                tmp = tempfile.mkdtemp(dir=parent, prefix=".podkit-cp-")
                try:
                    tf.extractall(tmp)
                    os.replace(os.path.join(tmp, stat.get("name") or os.path.basename(path)), target)
                finally:
                    shutil.rmtree(tmp, ignore_errors=True)
        return 0
    assert dst is not None
    ref, path = dst
    if args.src == "-":
        _ops(client).put_archive(ref, path, sys.stdin.buffer.read())
        return 0
    if not os.path.exists(args.src):
        raise errors.NotFound(f"no such file or directory: {args.src}")

    def tar_of(arcname: str) -> bytes:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tf:
            tf.add(args.src, arcname=arcname)
        return buf.getvalue()

    try:
        _ops(client).put_archive(ref, path, tar_of(os.path.basename(os.path.normpath(args.src))))
    except errors.NotFound:
        # the destination is not an existing directory: copy under that name
        parent = os.path.dirname(path.rstrip("/")) or "/"
        _ops(client).put_archive(ref, parent, tar_of(os.path.basename(path.rstrip("/"))))
    return 0
