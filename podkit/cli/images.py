"""Image commands: images / image ls, image inspect, tag, rmi / image rm, image prune,
image import, load, save. (pull and push: podkit/cli/distribution.py.)"""

from __future__ import annotations

import os
import sys

from podkit import errors
from podkit.cli._fastargs import BOOLEAN_OPTIONAL
from podkit.cli.output import (
    ago,
    err,
    human_size,
    inspect_each,
    is_template,
    listing_format,
    print_items,
    prints_help,
    short_id,
    table,
)

TYPE_CHECKING = False  # not typing's: it stays out of the CLI's start-up (podkit/cli/main.py)
if TYPE_CHECKING:
    import argparse
    from typing import Any

    from podkit.cli.main import Subparsers
    from podkit.client import Client


def register(sub: Subparsers) -> None:
    from podkit.cli.main import subcommands

    _ls_args(sub.add_parser("images", help="list images"))
    _rm_args(sub.add_parser("rmi", help="remove images"))
    _register_shared(sub)

    # docker's management command: `image CMD`, with the same parsers as the top-level
    # commands (images -> image ls, rmi -> image rm, pull, push, build), plus the
    # commands only it has (inspect, history, prune)
    img = sub.add_parser("image", help="manage images")
    isub = subcommands(img, dest="image_command", metavar="COMMAND")
    _ls_args(isub.add_parser("ls", aliases=["list"], help="list images"))
    _inspect_args(isub.add_parser("inspect", help="show details of images"))
    _rm_args(isub.add_parser("rm", aliases=["remove"], help="remove images"))
    _register_shared(isub)
    _prune_args(isub.add_parser("prune", help="remove unused images"))
    _history_args(isub.add_parser("history", help="show the history of an image"))
    from podkit.cli import build, distribution

    distribution.register_pull_push(isub)
    build.register(isub)
    img.set_defaults(func=prints_help(img))


def _register_shared(sub: Subparsers) -> None:
    """The image commands with one name both at the top and under `image`."""
    _tag_args(sub.add_parser("tag", help="give an image another name"))
    _import_args(sub.add_parser("import", help="import a tarball, archive or OCI layout as image(s)"))
    _load_args(sub.add_parser("load", help="load images from a docker-save or OCI archive"))
    _save_args(sub.add_parser("save", help="save images to a tar archive"))


def _history_args(p: argparse.ArgumentParser) -> None:
    from podkit.cli.main import add_format

    p.add_argument("image", metavar="IMAGE")
    p.add_argument("--no-trunc", action="store_true", help="do not shorten the CREATED BY column")
    p.add_argument(
        "-H",
        "--human",
        default=True,
        action=BOOLEAN_OPTIONAL,
        help="human-readable sizes and dates (default)",
    )
    add_format(p)
    p.set_defaults(func=cmd_history)


def _ls_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("repository", nargs="?", help="only images of this repository[:tag]")
    p.add_argument("-a", "--all", action="store_true", help="show all images (default hides none)")
    p.add_argument("--digests", action="store_true", help="show digests")
    p.add_argument("--no-trunc", action="store_true", help="do not shorten ids")
    p.add_argument(
        "-f",
        "--filter",
        action="append",
        default=[],
        help="reference=GLOB, dangling=true|false, before=IMAGE, since=IMAGE, label=K[=V]",
    )
    # Like docker: table, json, or a template over Repository, Tag, ID, Digest,
    # CreatedSince, CreatedAt, Size ('{{.Repository}}:{{.Tag}}').
    p.add_argument(
        "--format",
        default="table",
        help="table (default), json, or a template like '{{.Repository}}:{{.Tag}}'",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="only print ids")
    p.set_defaults(func=cmd_ls)


def _rm_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument(
        "-f",
        "--force",
        action="store_true",
        help="remove every name of an image id; untag even if a container uses it",
    )
    p.set_defaults(func=cmd_rm)


def _tag_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", metavar="SOURCE_IMAGE")
    p.add_argument("target", metavar="TARGET_IMAGE")
    p.set_defaults(func=cmd_tag)


def _import_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "file",
        metavar="FILE|-",
        help="root file system tarball (plain/gzip/zstd), image archive, OCI layout dir, or -",
    )
    p.add_argument("reference", nargs="?", metavar="REPOSITORY[:TAG]")
    p.add_argument(
        "-c",
        "--change",
        action="append",
        default=[],
        help="Dockerfile instruction: CMD, ENTRYPOINT, ENV, WORKDIR, USER, EXPOSE, LABEL, ...",
    )
    p.add_argument("-m", "--message", default="", help="commit message for the history")
    p.add_argument("--platform", help="os/arch of the imported root file system")
    p.set_defaults(func=cmd_import, engine_exit=1)


def _load_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("-i", "--input", default="-", help="archive file or OCI layout dir (default stdin)")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the loaded names")
    p.add_argument("--platform", help="os/arch to unpack from a multi-platform archive")
    p.set_defaults(func=cmd_load)


def _save_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("-o", "--output", help="write to this file instead of stdout")
    p.add_argument(
        "--format",
        choices=["docker", "oci"],
        default="docker",
        help="docker: docker-save archive with an OCI layout inside (default); oci: OCI layout only",
    )
    p.add_argument("--platform", help="only this platform of a multi-platform image")
    p.set_defaults(func=cmd_save)


def _inspect_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument(
        "-f",
        "--format",
        default="json",
        help="json (default) or a template like '{{.Id}}' / '{{.Config.Cmd}}'",
    )
    p.add_argument("--platform", help="os/arch of a multi-platform image")
    p.set_defaults(func=cmd_inspect)


def _prune_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("-a", "--all", action="store_true", help="remove all images no container uses")
    p.add_argument("-f", "--force", action="store_true", help="do not ask for confirmation")
    p.add_argument(
        "--filter",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="until=TIME, label=K[=V], label!=K, dangling=false (= -a)",
    )
    p.set_defaults(func=cmd_prune)


# -- listing -------------------------------------------------------------------------


def parse_time(text: str) -> float | None:
    """RFC 3339 with up to nanoseconds (image configs) -> unix time."""
    import datetime

    if not text:
        return None
    t = text.strip().replace("Z", "+00:00")
    if "." in t:
        head, _, rest = t.partition(".")
        frac = "".join(c for c in rest if c.isdigit())
        tz = rest[len(frac) :]
        t = f"{head}.{frac[:6]}{tz}"
    try:
        dt = datetime.datetime.fromisoformat(t)
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=datetime.UTC)
    return dt.timestamp()


def _repo_tag(img: Any) -> tuple[str, str]:
    if img.dangling:
        return "<none>", "<none>"
    fam = img.familiar or img.name
    name, _, digest = fam.partition("@")
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        repo, tag = name.rsplit(":", 1)
    else:
        repo, tag = name, "<none>"
    return repo, tag


def cmd_ls(args: argparse.Namespace, client: Client) -> int:
    filters = list(args.filter)
    if args.repository:
        filters.append(f"reference={args.repository}")
    images = client.images.list(filters=filters)
    if args.quiet:
        seen: list[str] = []
        for i in images:
            ident = i.id if args.no_trunc else short_id(i.id)
            if ident not in seen:
                seen.append(ident)
                print(ident)
        return 0
    fmt = listing_format(args.format)  # json: docker's line of JSON an image
    if is_template(fmt):
        assert fmt is not None
        print_items(fmt, (_ls_fields(i, args.no_trunc) for i in images), IMAGE_HEADERS)
        return 0
    headers = ["REPOSITORY", "TAG"] + (["DIGEST"] if args.digests else []) + ["IMAGE ID", "CREATED", "SIZE"]
    rows = []
    for i in images:
        repo, tag = _repo_tag(i)
        created = parse_time(i.image_created) or i.created
        row = [repo, tag]
        if args.digests:
            row.append(i.digest if not i.dangling else "<none>")
        row += [
            i.id if args.no_trunc else short_id(i.id),
            ago(created),
            human_size(i.unpacked_size or i.size),
        ]
        rows.append(row)
    table(rows, headers)
    return 0


# docker's `images --format` fields and their table headers
IMAGE_HEADERS = {
    "ID": "IMAGE ID",
    "Repository": "REPOSITORY",
    "Tag": "TAG",
    "Digest": "DIGEST",
    "CreatedSince": "CREATED",
    "CreatedAt": "CREATED AT",
    "Size": "SIZE",
    "VirtualSize": "VIRTUAL SIZE",
    "SharedSize": "SHARED SIZE",
    "UniqueSize": "UNIQUE SIZE",
    "Containers": "CONTAINERS",
}


def _ls_fields(img: Any, no_trunc: bool) -> dict[str, Any]:
    from podkit.cli.container_listing import docker_time

    repo, tag = _repo_tag(img)
    created = parse_time(img.image_created) or img.created
    size = human_size(img.unpacked_size or img.size)
    return {
        "Repository": repo,
        "Tag": tag,
        "ID": img.id if no_trunc else short_id(img.id),
        "Digest": img.digest if not img.dangling else "<none>",
        "CreatedSince": ago(created),
        "CreatedAt": docker_time(created),
        "Size": size,
        "VirtualSize": size,
        "SharedSize": "N/A",
        "UniqueSize": "N/A",
        "Containers": "N/A",
        "Name": img.name,
    }


# -- inspect -------------------------------------------------------------------------


def docker_inspect(d: dict[str, Any]) -> dict[str, Any]:
    """The shape `docker image inspect` prints, plus podkit's own facts under "Podkit"."""
    cfg = d.get("config") or {}
    names = d.get("names") or [d["name"]]
    tags, digests = [], []
    for n in names:
        if n.startswith("<none>@"):
            continue
        fam = _familiar(n)
        if "@" in fam:
            digests.append(fam)
        else:
            tags.append(fam)
            digests.append(f"{fam.rsplit(':', 1)[0] if ':' in fam.rsplit('/', 1)[-1] else fam}@{d['digest']}")
    history = cfg.get("history") or []
    return {
        "Id": d["id"],
        "RepoTags": tags,
        "RepoDigests": sorted(set(digests)),
        "Parent": "",
        "Comment": next((h.get("comment", "") for h in reversed(history) if h.get("comment")), ""),
        "Created": cfg.get("created", ""),
        "Author": cfg.get("author", ""),
        "Config": cfg.get("config") or {},
        "Architecture": cfg.get("architecture", ""),
        **({"Variant": cfg["variant"]} if cfg.get("variant") else {}),
        "Os": cfg.get("os", ""),
        "Size": d.get("unpacked_size") or d.get("size", 0),
        "RootFS": {"Type": "layers", "Layers": d.get("diff_ids") or []},
        "Metadata": {"LastTagTime": _iso(d.get("updated"))},
        "Podkit": {
            "Name": d["name"],
            "Digest": d["digest"],
            "MediaType": d.get("media_type", ""),
            "ManifestDigest": d.get("manifest_digest", ""),
            "ChainID": d.get("chain_id"),
            "ContentSize": d.get("size", 0),
            "Platforms": d.get("platforms") or [],
            "Unpacked": d.get("unpacked"),
            "Layers": d.get("layers") or [],
            "History": history,
        },
    }


def _familiar(name: str) -> str:
    try:
        from podkit.images.reference import parse

        return parse(name, default_tag=False).familiar()
    except errors.PodkitError:
        return name


def _iso(ts: float | None) -> str:
    import datetime

    if not ts:
        return ""
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def cmd_inspect(args: argparse.Namespace, client: Client) -> int:
    return inspect_each(
        args.images,
        lambda ref: docker_inspect(client.images.get(ref, platform=args.platform).to_dict()),
        args.format,
    )


def cmd_history(args: argparse.Namespace, client: Client) -> int:
    """Newest first, one row per history entry; sizes from the matching layers."""
    img = client.images.get(args.image)
    history = list(img.config.get("history") or [])
    layers = list(img.layers)
    rows: list[dict[str, Any]] = []
    li = 0
    for h in history:
        size = 0
        if not h.get("empty_layer") and li < len(layers):
            size = layers[li].get("size", 0)
            li += 1
        rows.append(
            {
                "id": "<missing>",
                "created": h.get("created", ""),
                "created_by": h.get("created_by", ""),
                "size": size,
                "comment": h.get("comment", ""),
            }
        )
    rows.reverse()
    if rows:
        rows[0]["id"] = img.id

    def ident(r: dict[str, Any]) -> str:
        return str(r["id"]) if args.no_trunc or r["id"] == "<missing>" else short_id(r["id"])

    def by(text: str) -> str:
        return text if args.no_trunc or len(text) <= 45 else text[:44] + "…"

    if args.quiet:
        for r in rows:
            print(ident(r))
        return 0
    fmt = listing_format(args.format)  # json: docker's line of JSON a layer
    if is_template(fmt):
        from podkit.cli.container_listing import docker_time

        fields = (
            {
                "ID": ident(r),
                "CreatedSince": ago(parse_time(r["created"])) if args.human else r["created"],
                "CreatedAt": docker_time(parse_time(r["created"])),
                "CreatedBy": by(r["created_by"]),
                "Size": human_size(r["size"]) if args.human else str(r["size"]),
                "Comment": r["comment"],
            }
            for r in rows
        )
        assert fmt is not None
        print_items(fmt, fields, HISTORY_HEADERS)
        return 0
    table(
        [
            [
                ident(r),
                ago(parse_time(r["created"])) if args.human else r["created"],
                by(r["created_by"]),
                human_size(r["size"]) if args.human else r["size"],
                r["comment"],
            ]
            for r in rows
        ],
        ["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"],
    )
    return 0


HISTORY_HEADERS = {
    "ID": "IMAGE",
    "CreatedSince": "CREATED",
    "CreatedAt": "CREATED AT",
    "CreatedBy": "CREATED BY",
    "Size": "SIZE",
    "Comment": "COMMENT",
}


# -- tag / rm / prune ----------------------------------------------------------------


def cmd_tag(args: argparse.Namespace, client: Client) -> int:
    client.images.tag(args.source, args.target)
    return 0


def cmd_rm(args: argparse.Namespace, client: Client) -> int:
    res = client.images.remove(*args.images, force=args.force)
    for r in res.results:
        for k, v in r.items():
            print(f"{k}: {v}")
    for e in res.errors:
        err(f"Error: {e['message']}")
    return 1 if res.errors else 0


def cmd_prune(args: argparse.Namespace, client: Client) -> int:
    from podkit.prune import IMAGE_KEYS, PruneFilters, cli_filters

    filters = cli_filters(args.filter)
    PruneFilters.parse(filters, IMAGE_KEYS, "image prune")  # a bad filter fails before asking
    if not args.force:
        what = (
            "all images without at least one container associated to them"
            if args.all
            else "all dangling images"
        )
        sys.stderr.write(f"WARNING! This will remove {what}.\nAre you sure you want to continue? [y/N] ")
        sys.stderr.flush()
        answer = sys.stdin.readline().strip().lower()
        if answer not in ("y", "yes"):
            return 0
    res = client.images.prune(all=args.all, filters=filters or None)
    if res.deleted:
        print("Deleted Images:")
        for r in res.deleted:
            for k, v in r.items():
                print(f"{k.lower()}: {v}")
        print()
    print(f"Total reclaimed space: {human_size(res.space_reclaimed)}")
    return 0


# -- import / load / save ------------------------------------------------------------


def _source(path: str) -> Any:
    if path == "-":
        if sys.stdin.isatty():
            raise errors.InvalidArgument(
                "refusing to read an archive from a terminal: give a file or pipe one in"
            )
        return sys.stdin.buffer
    if not os.path.exists(path):
        raise errors.InvalidArgument(f"open {path}: no such file or directory")
    return path


def cmd_import(args: argparse.Namespace, client: Client) -> int:
    images = client.images.import_(
        _source(args.file),
        name=args.reference,
        changes=args.change,
        message=args.message,
        platform=args.platform,
    )
    for i in images:
        print(i.id)
    return 0


def cmd_load(args: argparse.Namespace, client: Client) -> int:
    images = client.images.load(_source(args.input), platform=args.platform)
    for i in images:
        if i.dangling:
            print(f"Loaded image ID: {i.id}")
        else:
            print(f"Loaded image: {i.familiar or i.name}")
    return 0


def cmd_save(args: argparse.Namespace, client: Client) -> int:
    if args.output:
        client.images.save(args.images, args.output, format=args.format, platform=args.platform)
        return 0
    if sys.stdout.isatty():
        raise errors.InvalidArgument("cowardly refusing to save to a terminal: use the -o flag or redirect")
    sys.stdout.flush()
    client.images.save(args.images, sys.stdout.buffer, format=args.format, platform=args.platform)
    sys.stdout.buffer.flush()
    return 0
