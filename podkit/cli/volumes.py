"""Volume commands: volume create, ls, inspect, rm, prune."""

from __future__ import annotations

from podkit import errors
from podkit.cli.output import for_each, inspect_each, labels_text, listing

TYPE_CHECKING = False  # not typing's: it stays out of the CLI's start-up (podkit/cli/main.py)
if TYPE_CHECKING:
    import argparse
    from typing import Any

    from podkit.cli.main import Subparsers
    from podkit.client import Client


def register(sub: Subparsers) -> None:
    from podkit.cli.main import add_format

    p = sub.add_parser("volume", help="manage named volumes")
    from podkit.cli.main import subcommands

    vs = subcommands(p, dest="volume_cmd", metavar="COMMAND")

    c = vs.add_parser("create", help="create a volume")
    c.add_argument("name", nargs="?")
    c.add_argument("-l", "--label", action="append", default=[], help="KEY=VALUE")
    c.add_argument("-d", "--driver", default="local")
    c.set_defaults(func=cmd_create)

    for name in ("ls", "list"):
        ls = vs.add_parser(name, help="list volumes")
        ls.add_argument("-f", "--filter", action="append", default=[], help="dangling=true, name=, label=")
        add_format(ls)
        ls.set_defaults(func=cmd_ls)

    i = vs.add_parser("inspect", help="show volume details")
    i.add_argument(
        "-f", "--format", default="json", help="json (default), or a template such as '{{.mountpoint}}'"
    )
    i.add_argument("names", nargs="+")
    i.set_defaults(func=cmd_inspect)

    for name in ("rm", "remove"):
        r = vs.add_parser(name, help="remove volumes (refused while in use)")
        r.add_argument("-f", "--force", action="store_true")
        r.add_argument("names", nargs="+")
        r.set_defaults(func=cmd_rm)

    pr = vs.add_parser("prune", help="remove unused anonymous volumes (-a: named ones too)")
    pr.add_argument("-a", "--all", action="store_true")
    pr.add_argument("-f", "--force", action="store_true", help="do not ask (podkit never asks)")
    pr.add_argument(
        "--filter", action="append", default=[], metavar="KEY=VALUE", help="label=K[=V], label!=K, all=true"
    )
    pr.set_defaults(func=cmd_prune)


def cmd_create(args: argparse.Namespace, client: Client) -> int:
    labels = dict(x.partition("=")[::2] for x in args.label)
    print(client.volumes.create(args.name, labels=labels, driver=args.driver).name)
    return 0


def cmd_ls(args: argparse.Namespace, client: Client) -> int:
    f: dict[str, list[str]] = {}
    for x in args.filter:
        k, eq, v = x.partition("=")
        if not eq:
            raise errors.InvalidArgument(f"invalid filter {x!r}: want KEY=VALUE")
        f.setdefault(k, []).append(v)
    items = client._t.get("/volumes", params={"filters": f or None})
    listing(
        args,
        items,
        ["DRIVER", "VOLUME NAME"],
        lambda v: [v["driver"], v["name"]],
        lambda v: v["name"],
        volume_fields,
        VOLUME_HEADERS,
    )
    return 0


# docker's `volume ls --format` fields and their table headers
VOLUME_HEADERS = {
    "Name": "VOLUME NAME",
    "Driver": "DRIVER",
    "Scope": "SCOPE",
    "Mountpoint": "MOUNTPOINT",
    "Labels": "LABELS",
    "Links": "LINKS",
    "Size": "SIZE",
    "Group": "GROUP",
    "Availability": "AVAILABILITY",
    "Status": "STATUS",
}


def volume_fields(v: dict[str, Any]) -> dict[str, object]:
    labels = v.get("labels") or {}
    return {
        "Name": v["name"],
        "Driver": v.get("driver", "local"),
        "Scope": "local",
        "Mountpoint": v.get("mountpoint", ""),
        "Labels": labels_text(labels),
        "Label": lambda key: str(labels.get(key, "")),
        "Links": "N/A",
        "Size": "N/A",
        # a cluster (swarm CSI) volume's: docker's N/A for a local one
        "Group": "N/A",
        "Availability": "N/A",
        "Status": "N/A",
    }


def cmd_inspect(args: argparse.Namespace, client: Client) -> int:
    return inspect_each(args.names, client.volumes.inspect, args.format)


def cmd_rm(args: argparse.Namespace, client: Client) -> int:
    return for_each(args.names, lambda n: client.volumes.remove(n, force=args.force))


def cmd_prune(args: argparse.Namespace, client: Client) -> int:
    from podkit.prune import cli_filters

    removed = client.volumes.prune(all=args.all, filters=cli_filters(args.filter) or None)
    if removed:
        print("Deleted Volumes:")
        for n in removed:
            print(n)
    print(f"Total reclaimed: {len(removed)} volumes")
    return 0
