"""System commands: version, info, events, completion."""

from __future__ import annotations

import sys

from podkit.cli.output import check_template, is_template, print_items, print_json, prints_help

TYPE_CHECKING = False  # not typing's: it stays out of the CLI's start-up (podkit/cli/main.py)
if TYPE_CHECKING:
    import argparse
    from typing import Any

    from podkit.cli.main import Subparsers
    from podkit.client import Client


def register(sub: Subparsers) -> None:
    p = sub.add_parser("version", help="show client and daemon versions")
    p.add_argument(
        "-f", "--format", default="table", help="table, json, or a template such as '{{.Server.Version}}'"
    )
    p.set_defaults(func=cmd_version)

    _info_args(sub.add_parser("info", help="show daemon-wide information"))
    _events_args(sub.add_parser("events", help="stream lifecycle events"))

    # docker's management command: `system info|events` (the same parsers), df, prune
    from podkit.cli import system_usage
    from podkit.cli.main import subcommands

    sp = sub.add_parser("system", help="manage podkit: disk usage, prune, info, events")
    ssub = subcommands(sp, dest="system_command", metavar="COMMAND")
    system_usage.register(ssub)
    _info_args(ssub.add_parser("info", help="show daemon-wide information"))
    _events_args(ssub.add_parser("events", help="stream lifecycle events"))
    sp.set_defaults(func=prints_help(sp))

    p = sub.add_parser("completion", help="print a shell completion script")
    p.add_argument("shell", choices=["bash"])
    p.set_defaults(func=cmd_completion, no_daemon=True)


def _info_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-f", "--format", default="table", help="table, json, or a template such as '{{.ServerVersion}}'"
    )
    p.set_defaults(func=cmd_info)


def _events_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--since", type=_when, help="replay from: unix time, RFC 3339 time, or a duration ago (10m, 1h30m)"
    )
    p.add_argument("--until", type=_when, help="stop at: same forms as --since")
    p.add_argument("--type", help="only events of this type (container, image, pod, ...)")
    p.add_argument(
        "-f",
        "--filter",
        action="append",
        default=[],
        type=_event_filter,
        help=f"KEY=VALUE, KEY one of {', '.join(_FILTER_KEYS)}; repeated keys match any",
    )
    p.add_argument(
        "--format", default="table", help="table, json, or a template such as '{{.Type}} {{.Action}}'"
    )
    p.set_defaults(func=cmd_events)


def cmd_version(args: argparse.Namespace, client: Client) -> int:
    from podkit._version import API_VERSION, __version__

    if is_template(args.format):
        check_template(args.format)
    server = client.version()
    if is_template(args.format):
        print_items(args.format, [_docker_version(server)], {})
        return 0
    if args.format == "json":
        print_json({"client": {"version": __version__, "api_version": API_VERSION}, "server": server})
        return 0
    print("Client:")
    print(f" Version:      {__version__}")
    print(f" API version:  {API_VERSION}")
    print("Server:")
    print(f" Version:      {server['version']}")
    print(f" API version:  {server['api_version']}")
    print(f" Python:       {server['python']}")
    print(f" OS/Arch:      {server['os']}/{server['arch']}")
    print(f" Kernel:       {server['kernel']}")
    return 0


def cmd_info(args: argparse.Namespace, client: Client) -> int:
    if is_template(args.format):
        check_template(args.format)
    info = client.info()
    if is_template(args.format):
        print_items(args.format, [docker_info(info)], {})
        return 0
    if args.format == "json":
        print_json(info)
        return 0
    _print_tree(info, 0)
    return 0


def _docker_version(server: dict[str, Any]) -> dict[str, Any]:
    """What `docker version --format` sees: Client and Server, in docker's names."""
    import platform

    from podkit._version import API_VERSION, __version__

    return {
        "Client": {
            "Version": __version__,
            "ApiVersion": API_VERSION,
            "Os": "linux",
            "Arch": platform.machine(),
            "Python": platform.python_version(),
        },
        "Server": {
            "Version": server.get("version", ""),
            "ApiVersion": server.get("api_version", ""),
            "Os": server.get("os", ""),
            "Arch": server.get("arch", ""),
            "KernelVersion": server.get("kernel", ""),
            "Python": server.get("python", ""),
        },
    }


def docker_info(info: dict[str, Any]) -> dict[str, Any]:
    """podkit's info with docker's `info --format` names beside its own (ServerVersion,
    Containers, ContainersRunning, Images, Driver, KernelVersion, NCPU, DockerRootDir...)."""
    import socket

    c = info.get("containers") or {}
    img = info.get("images") or {}
    rt = info.get("runtime") or {}
    return {
        "ID": "",
        "Name": socket.gethostname(),
        "ServerVersion": info.get("version", ""),
        "Containers": c.get("containers", 0),
        "ContainersRunning": c.get("running", 0),
        "ContainersPaused": c.get("paused", 0),
        "ContainersStopped": c.get("stopped", 0),
        "Images": img.get("count", 0),
        "Driver": img.get("snapshotter", "") or (info.get("snapshots") or {}).get("driver", ""),
        "KernelVersion": info.get("kernel", ""),
        "OSType": "linux",
        "Architecture": info.get("arch", ""),
        "NCPU": info.get("cpus", 0),
        "DockerRootDir": info.get("root", ""),
        "CgroupVersion": str(rt.get("cgroup_version", rt.get("cgroups", ""))),
        **info,
    }


def _print_tree(d: Any, depth: int) -> None:
    pad = " " * depth
    for k, v in d.items():
        if isinstance(v, dict):
            print(f"{pad}{k}:")
            _print_tree(v, depth + 1)
        elif isinstance(v, list):
            print(f"{pad}{k}: {', '.join(map(str, v))}")
        else:
            print(f"{pad}{k}: {v}")


_FILTER_KEYS = ("type", "event", "container", "image", "pod", "network", "volume")


def _when(text: str) -> float:
    """docker's --since/--until: unix seconds, an RFC 3339 time, or a duration ago."""
    import datetime
    import re

    try:
        return float(text)
    except ValueError:
        pass
    m = re.fullmatch(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?", text)
    if text and m is not None:
        h, mi, sec = (float(g) if g else 0.0 for g in m.groups())
        return datetime.datetime.now().timestamp() - (h * 3600 + mi * 60 + sec)
    try:
        t = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        import argparse

        raise argparse.ArgumentTypeError(
            f"{text!r} is not a unix time, an RFC 3339 time or a duration like 10m"
        ) from None
    if t.tzinfo is None:
        t = t.astimezone()  # a time without a zone is local, as in docker
    return t.timestamp()


def _event_filter(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not value or key not in _FILTER_KEYS:
        import argparse

        raise argparse.ArgumentTypeError(
            f"bad filter {text!r}: use KEY=VALUE with KEY one of {', '.join(_FILTER_KEYS)}"
        )
    return key, value


def _matches(ev: dict[str, Any], filters: list[tuple[str, str]]) -> bool:
    """docker's rule: values of one key are alternatives, different keys must all match."""
    attrs = ev.get("attributes") or {}

    def names(name: str) -> set[str]:
        # an image is named as the user typed it: busybox, busybox:latest, or in full
        short = name.removeprefix("docker.io/library/").removeprefix("docker.io/")
        return {name, short, short.removesuffix(":latest")}

    def is_(ident: str, name: str, value: str) -> bool:
        if ident and ident.removeprefix("sha256:").startswith(value.removeprefix("sha256:")):
            return True
        return bool(name) and value in names(name)

    def one(key: str, value: str) -> bool:
        if key == "type":
            return ev.get("type") == value
        if key == "event":
            return ev.get("action") == value
        if ev.get("type") == key and is_(str(ev.get("id") or ""), str(attrs.get("name") or ""), value):
            return True
        # other objects' events that name one: a network connect names its container
        # (by id), a container event its image (by name)
        other = str(attrs.get(key) or "")
        return bool(other) and is_(other if key != "image" else "", other, value)

    keys: dict[str, list[str]] = {}
    for k, v in filters:
        keys.setdefault(k, []).append(v)
    return all(any(one(k, v) for v in vs) for k, vs in keys.items())


def _docker_event(ev: dict[str, Any]) -> dict[str, Any]:
    """An event as docker's `events --format` sees it (Type, Action, Actor.ID,
    Actor.Attributes, Time, TimeNano, Scope; the old Status, ID and From too)."""
    attrs = {str(k): str(v) for k, v in (ev.get("attributes") or {}).items()}
    t = float(ev.get("time") or 0)
    return {
        "Type": ev.get("type", ""),
        "Action": ev.get("action", ""),
        "Actor": {"ID": ev.get("id", ""), "Attributes": attrs},
        "Scope": "local",
        "Time": int(t),
        "TimeNano": int(t * 1e9),
        "Status": ev.get("action", ""),
        "ID": ev.get("id", ""),
        "From": attrs.get("image", ""),
        "Namespace": ev.get("namespace", ""),
    }


def cmd_events(args: argparse.Namespace, client: Client) -> int:
    import datetime

    if is_template(args.format):
        check_template(args.format)
    for ev in client.events(since=args.since, until=args.until, type=args.type):
        if args.filter and not _matches(ev, args.filter):
            continue
        if args.format == "json":
            import json

            print(json.dumps(ev), flush=True)
            continue
        if is_template(args.format):
            print_items(args.format, [_docker_event(ev)], {})
            sys.stdout.flush()
            continue
        ts = datetime.datetime.fromtimestamp(ev["time"]).isoformat()
        attrs = ", ".join(f"{k}={v}" for k, v in sorted(ev.get("attributes", {}).items()))
        print(f"{ts} {ev['type']} {ev['action']} {ev['id']}" + (f" ({attrs})" if attrs else ""), flush=True)
    return 0


def cmd_completion(args: argparse.Namespace, client: Client) -> int:
    from podkit.cli.completion import bash_script

    print(bash_script())
    return 0
