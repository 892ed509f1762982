"""`podkit network create|ls|inspect|rm|prune`."""

from __future__ import annotations

from podkit.cli.output import ago, for_each, inspect_each, labels_text, listing, prints_help, short_id

TYPE_CHECKING = False  # not typing's: it stays out of the CLI's start-up (podkit/cli/main.py)
if TYPE_CHECKING:
    import argparse
    from typing import Any

    from podkit.cli.main import Subparsers
    from podkit.client import Client


def register(sub: Subparsers) -> None:
    from podkit.cli.main import add_format

    p = sub.add_parser("network", help="manage networks")
    from podkit.cli.main import subcommands

    nsub = subcommands(p, dest="network_command", metavar="COMMAND")
    p.set_defaults(func=prints_help(p))

    c = nsub.add_parser("create", help="create a bridge network")
    c.add_argument("name")
    c.add_argument("--subnet", help="IPv4 subnet in CIDR form (default: a free /24 of the pool)")
    c.add_argument("--gateway", help="gateway address (default: the subnet's first address)")
    c.add_argument("--ip-range", help="allocate container IPs from this sub-range only")
    c.add_argument("--bridge", help="bridge interface name (default: pkbr-<id>)")
    c.add_argument("--internal", action="store_true", help="no gateway and no masquerade out")
    c.add_argument("-d", "--driver", default="bridge", choices=["bridge"], help="network driver")
    c.add_argument(
        "--label", action="append", default=[], metavar="KEY=VALUE", help="set a label (repeatable)"
    )
    c.add_argument(
        "-o",
        "--opt",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="driver option: mtu=N (repeatable)",
    )
    c.set_defaults(func=cmd_create)

    for name, aliases in (("ls", ["list"]),):
        ls = nsub.add_parser(name, aliases=aliases, help="list networks")
        add_format(ls)
        ls.add_argument(
            "-f",
            "--filter",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="label=K[=V], name=TEXT or id=PREFIX (repeatable)",
        )
        ls.set_defaults(func=cmd_ls)

    i = nsub.add_parser("inspect", help="show networks in detail (JSON)")
    i.add_argument(
        "-f", "--format", default="json", help="json (default), or a template such as '{{.subnet}}'"
    )
    i.add_argument("names", nargs="+", metavar="NETWORK")
    i.set_defaults(func=cmd_inspect)

    r = nsub.add_parser("rm", aliases=["remove"], help="remove networks")
    r.add_argument("names", nargs="+", metavar="NETWORK")
    r.set_defaults(func=cmd_rm)

    cn = nsub.add_parser("connect", help="connect a container to a network (live if it runs)")
    cn.add_argument("--alias", action="append", default=[], help="another name on this network")
    cn.add_argument("--ip", help="a fixed IPv4 address on this network")
    cn.add_argument("network", metavar="NETWORK")
    cn.add_argument("container", metavar="CONTAINER")
    cn.set_defaults(func=cmd_connect)
    dc = nsub.add_parser("disconnect", help="disconnect a container from a network")
    dc.add_argument("-f", "--force", action="store_true", help="accepted for docker's sake")
    dc.add_argument("network", metavar="NETWORK")
    dc.add_argument("container", metavar="CONTAINER")
    dc.set_defaults(func=cmd_disconnect)

    pr = nsub.add_parser("prune", help="remove all unused networks (not the default)")
    pr.add_argument("-f", "--force", action="store_true", help="do not ask (podkit never asks)")
    pr.add_argument(
        "--filter", action="append", default=[], metavar="KEY=VALUE", help="until=TIME, label=K[=V], label!=K"
    )
    pr.set_defaults(func=cmd_prune)


def _labels(items: list[str]) -> dict[str, str]:
    from podkit.errors import InvalidArgument

    out = {}
    for it in items:
        k, sep, v = it.partition("=")
        if not k:
            raise InvalidArgument(f"invalid label {it!r}: expected KEY=VALUE")
        out[k] = v
    return out


def cmd_create(args: argparse.Namespace, client: Client) -> int:
    n = client.networks.create(
        args.name,
        subnet=args.subnet,
        gateway=args.gateway,
        bridge=args.bridge,
        labels=_labels(args.label),
        ip_range=args.ip_range,
        internal=args.internal,
        options=_labels(args.opt),
    )
    print(n.id)
    return 0


def cmd_ls(args: argparse.Namespace, client: Client) -> int:
    from podkit.errors import InvalidArgument

    labels: list[str] = []
    names: list[str] = []
    ids: list[str] = []
    for f in args.filter:
        key, _, val = f.partition("=")
        if key not in ("label", "name", "id") or not val:
            raise InvalidArgument(f"unsupported filter {f!r}: use label=KEY[=VALUE], name=TEXT or id=PREFIX")
        {"label": labels, "name": names, "id": ids}[key].append(val)
    nets = client.networks.list(labels=labels or None)
    # As docker: name matches a part of the name, id a prefix; several values of one key OR.
    items = [
        n.__dict__
        for n in nets
        if (not names or any(x in n.name for x in names))
        and (not ids or any(n.id.startswith(x) for x in ids))
    ]
    listing(
        args,
        items,
        ["NETWORK ID", "NAME", "DRIVER", "SUBNET", "BRIDGE", "CONTAINERS", "CREATED"],
        lambda n: [
            short_id(n["id"]),
            n["name"] + (" (default)" if n["default"] else ""),
            n["driver"],
            n["subnet"],
            n["bridge"],
            n["containers"],
            ago(n["created"]),
        ],
        lambda n: n["name"],
        lambda n: network_fields(n, no_trunc=False),
        NETWORK_HEADERS,
    )
    return 0


# docker's `network ls --format` fields and their table headers (and podkit's own)
NETWORK_HEADERS = {
    "ID": "NETWORK ID",
    "Name": "NAME",
    "Driver": "DRIVER",
    "Scope": "SCOPE",
    "IPv4": "IPV4",
    "IPv6": "IPV6",
    "Internal": "INTERNAL",
    "Labels": "LABELS",
    "CreatedAt": "CREATED AT",
    "Subnet": "SUBNET",
    "Bridge": "BRIDGE",
    "Containers": "CONTAINERS",
}


def network_fields(n: dict[str, Any], no_trunc: bool) -> dict[str, object]:
    from podkit.cli.container_listing import docker_time

    labels = n.get("labels") or {}
    return {
        "ID": n["id"] if no_trunc else short_id(n["id"]),
        "Name": n["name"],
        "Driver": n["driver"],
        "Scope": "local",
        "IPv4": "true",  # every podkit network has an IPv4 subnet
        "IPv6": "false",
        "Internal": "true" if n.get("internal") else "false",
        "Labels": labels_text(labels),
        "Label": lambda key: str(labels.get(key, "")),
        "CreatedAt": docker_time(n.get("created")),
        "Subnet": n.get("subnet", ""),
        "Bridge": n.get("bridge", ""),
        "Containers": str(n.get("containers", 0)),
    }


def cmd_inspect(args: argparse.Namespace, client: Client) -> int:
    return inspect_each(args.names, client.networks.inspect, args.format)


def cmd_rm(args: argparse.Namespace, client: Client) -> int:
    return for_each(args.names, client.networks.remove)


def cmd_connect(args: argparse.Namespace, client: Client) -> int:
    client.networks.connect(args.network, args.container, args.alias, args.ip)
    return 0


def cmd_disconnect(args: argparse.Namespace, client: Client) -> int:
    client.networks.disconnect(args.network, args.container)
    return 0


def cmd_prune(args: argparse.Namespace, client: Client) -> int:
    from podkit.prune import cli_filters

    removed = client.networks.prune(filters=cli_filters(args.filter) or None)
    if removed:
        print("Deleted Networks:")
        for n in removed:
            print(n)
    return 0
