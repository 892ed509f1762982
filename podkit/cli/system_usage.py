"""`system df` and `system prune`, printed as docker prints them."""

from __future__ import annotations

import sys

from podkit.cli.output import ago, check_template, is_template, listing_format, print_items, short_id, table
from podkit.client._json import dumps as json_dumps

TYPE_CHECKING = False  # not typing's: it stays out of the CLI's start-up (podkit/cli/main.py)
if TYPE_CHECKING:
    import argparse
    from typing import Any

    from podkit.cli.main import Subparsers
    from podkit.client import Client

DF_HEADERS = {
    "Type": "TYPE",
    "TotalCount": "TOTAL",
    "Active": "ACTIVE",
    "Size": "SIZE",
    "Reclaimable": "RECLAIMABLE",
}


def register(sub: Subparsers) -> None:
    p = sub.add_parser("df", help="disk usage of images, containers, volumes and the build cache")
    p.add_argument("-v", "--verbose", action="store_true", help="each image, container, volume, cache entry")
    p.add_argument(
        "--format", default="table", help="table, json, or a template such as '{{.Type}} {{.Size}}'"
    )
    p.set_defaults(func=cmd_df)

    p = sub.add_parser("prune", help="remove unused containers, networks, images and build cache")
    p.add_argument("-a", "--all", action="store_true", help="all unused images, not only dangling ones")
    p.add_argument("--volumes", action="store_true", help="also unused anonymous volumes")
    p.add_argument(
        "--filter", action="append", default=[], metavar="KEY=VALUE", help="until=TIME, label=K[=V], label!=K"
    )
    p.add_argument("-f", "--force", action="store_true", help="do not ask for confirmation")
    p.set_defaults(func=cmd_prune)


def size(n: float) -> str:
    """docker's units.HumanSize: 4 significant digits, decimal units."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.4g}{unit}"
        n /= 1000.0
    return f"{n}"  # pragma: no cover


def _reclaimable(part: int, total: int) -> str:
    return f"{size(part)} ({part * 100 // total}%)" if total > 0 else size(part)


def summary(df: dict[str, Any]) -> list[dict[str, str]]:
    """docker's four rows: Images, Containers, Local Volumes, Build Cache."""
    images, ctrs, vols, cache = df["images"], df["containers"], df["volumes"], df["build_cache"]
    total = int(df["layers_size"])
    used = sum(i["unique_size"] for i in images if i["containers"])
    active = [c for c in ctrs if c["state"] in ("running", "paused", "restarting")]
    ctr_size = sum(c["size_rw"] for c in ctrs)
    vol_size = sum(v["size"] for v in vols)
    cache_size = sum(c["size"] for c in cache)
    return [
        {
            "Type": "Images",
            "TotalCount": str(len(images)),
            "Active": str(sum(1 for i in images if i["containers"])),
            "Size": size(total),
            "Reclaimable": _reclaimable(total - used, total),
        },
        {
            "Type": "Containers",
            "TotalCount": str(len(ctrs)),
            "Active": str(len(active)),
            "Size": size(ctr_size),
            "Reclaimable": _reclaimable(ctr_size - sum(c["size_rw"] for c in active), ctr_size),
        },
        {
            "Type": "Local Volumes",
            "TotalCount": str(len(vols)),
            "Active": str(sum(1 for v in vols if v["links"])),
            "Size": size(vol_size),
            "Reclaimable": _reclaimable(sum(v["size"] for v in vols if not v["links"]), vol_size),
        },
        {
            "Type": "Build Cache",
            "TotalCount": str(len(cache)),
            "Active": str(sum(1 for c in cache if c["in_use"])),
            "Size": size(cache_size),
            "Reclaimable": size(sum(c["size"] for c in cache if not c["in_use"])),
        },
    ]


def cmd_df(args: argparse.Namespace, client: Client) -> int:
    if is_template(args.format):
        check_template(args.format)
    df = client.df()
    fmt = listing_format(args.format)  # json: docker's line of JSON a kind of object
    rows = summary(df)
    if is_template(fmt):
        assert fmt is not None
        print_items(fmt, rows, DF_HEADERS)
        return 0
    if not args.verbose:
        table(([r[k] for k in DF_HEADERS] for r in rows), list(DF_HEADERS.values()))
        return 0
    _verbose(df)
    return 0


def _repo_tag(name: str) -> tuple[str, str]:
    short = name.removeprefix("docker.io/library/").removeprefix("docker.io/")
    last = short.rsplit("/", 1)[-1]
    if "@" in short:
        return short.split("@", 1)[0], "<none>"
    if ":" in last:
        repo, tag = short.rsplit(":", 1)
        return repo, tag
    return short, "<none>"


def _verbose(df: dict[str, Any]) -> None:
    """docker's `system df -v`: a table per kind."""
    from podkit.cli.images import parse_time

    print("Images space usage:\n")
    rows = []
    for i in df["images"]:
        for name in i["names"] or ["<none>:<none>"]:
            repo, tag = _repo_tag(name) if name != "<none>:<none>" else ("<none>", "<none>")
            created = parse_time(i.get("image_created") or "") or i["created"]
            rows.append(
                [
                    repo,
                    tag,
                    short_id(i["id"]),
                    ago(created),
                    size(i["size"]),
                    size(i["shared_size"]),
                    size(i["unique_size"]),
                    str(i["containers"]),
                ]
            )
    table(
        rows, ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE", "SHARED SIZE", "UNIQUE SIZE", "CONTAINERS"]
    )
    print("\nContainers space usage:\n")
    table(
        (
            [
                c["id"][:12],
                c["image"].removeprefix("docker.io/library/"),
                json_dumps(" ".join(c["command"]))[:22],
                str(c["volumes"]),
                size(c["size_rw"]),
                ago(c["created"]),
                c["status"],
                c["name"],
            ]
            for c in df["containers"]
        ),
        ["CONTAINER ID", "IMAGE", "COMMAND", "LOCAL VOLUMES", "SIZE", "CREATED", "STATUS", "NAMES"],
    )
    print("\nLocal Volumes space usage:\n")
    table(
        ([v["name"], str(v["links"]), size(v["size"])] for v in df["volumes"]),
        ["VOLUME NAME", "LINKS", "SIZE"],
    )
    cache = df["build_cache"]
    print(f"\nBuild cache usage: {size(sum(c['size'] for c in cache))}\n")
    table(
        (
            [
                short_id(c["id"]),
                c["type"],
                size(c["size"]),
                ago(c["created"]),
                ago(c["last_used"]),
                "0",
                str(c["shared"]).lower(),
            ]
            for c in cache
        ),
        ["CACHE ID", "CACHE TYPE", "SIZE", "CREATED", "LAST USED", "USAGE", "SHARED"],
    )


def cmd_prune(args: argparse.Namespace, client: Client) -> int:
    from podkit.prune import SYSTEM_KEYS, PruneFilters, cli_filters

    filters = cli_filters(args.filter)
    PruneFilters.parse(filters, SYSTEM_KEYS, "system prune")  # a bad filter fails before asking
    if not args.force:
        what = ["all stopped containers", "all networks not used by at least one container"]
        if args.volumes:
            what.append("all anonymous volumes not used by at least one container")
        what.append(
            "all images without at least one container associated to them"
            if args.all
            else "all dangling images"
        )
        what.append("all build cache" if args.all else "unused build cache")
        sys.stderr.write("WARNING! This will remove:\n" + "".join(f"  - {w}\n" for w in what))
        sys.stderr.write("\nAre you sure you want to continue? [y/N] ")
        sys.stderr.flush()
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            return 0
    res = client.prune(all=args.all, volumes=args.volumes, filters=filters or None)
    for title, key in (
        ("Deleted Containers", "containers"),
        ("Deleted Networks", "networks"),
        ("Deleted Volumes", "volumes"),
    ):
        if res.get(key):
            print(f"{title}:")
            for x in res[key]:
                print(x)
            print()
    if res.get("images"):
        print("Deleted Images:")
        for d in res["images"]:
            for k, v in d.items():
                print(f"{k.lower()}: {v}")
        print()
    if res.get("build_cache"):
        print("Deleted build cache objects:")
        for x in res["build_cache"]:
            print(short_id(x))
        print()
    print(f"Total reclaimed space: {size(int(res.get('space_reclaimed') or 0))}")
    return 0
