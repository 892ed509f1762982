"""System commands: version, info, events, completion."""

from __future__ import annotations

import argparse
import datetime
from typing import Any

from podkit.cli.output import print_json


def register(sub: Any) -> None:
    p = sub.add_parser("version", help="show client and daemon versions")
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.set_defaults(func=cmd_version)

    p = sub.add_parser("info", help="show daemon-wide information")
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("events", help="stream lifecycle events")
    p.add_argument("--since", type=float, help="unix time to replay from")
    p.add_argument("--until", type=float, help="unix time to stop at")
    p.add_argument("--type", help="only events of this type (container, image, pod, ...)")
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.set_defaults(func=cmd_events)

    p = sub.add_parser("completion", help="print a shell completion script")
    p.add_argument("shell", choices=["bash"])
    p.set_defaults(func=cmd_completion, no_daemon=True)


def cmd_version(args: argparse.Namespace, client: Any) -> int:
    from podkit._version import API_VERSION, __version__

    server = client.version()
    if args.format == "json":
        print_json({"client": {"version": __version__, "api_version": API_VERSION},
                    "server": server})
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


def cmd_info(args: argparse.Namespace, client: Any) -> int:
    info = client.info()
    if args.format == "json":
        print_json(info)
        return 0
    _print_tree(info, 0)
    return 0


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


def cmd_events(args: argparse.Namespace, client: Any) -> int:
    for ev in client.events(since=args.since, until=args.until, type=args.type):
        if args.format == "json":
            import json

            print(json.dumps(ev), flush=True)
            continue
        ts = datetime.datetime.fromtimestamp(ev["time"]).isoformat()
        attrs = ", ".join(f"{k}={v}" for k, v in sorted(ev.get("attributes", {}).items()))
        print(f"{ts} {ev['type']} {ev['action']} {ev['id']}" + (f" ({attrs})" if attrs else ""),
              flush=True)
    return 0


def cmd_completion(args: argparse.Namespace, client: Any) -> int:
    from podkit.cli.completion import bash_script

    print(bash_script())
    return 0
