"""Pod commands: `podkit pod create|ls|inspect|start|stop|restart|rm|logs|stats|top|prune`
and `podkit play kube [--down] FILE.yaml`."""

from __future__ import annotations

import sys

from podkit import errors
from podkit.cli._fastargs import REMAINDER
from podkit.cli.output import (
    ago,
    err,
    for_each,
    human_size,
    is_template,
    listing,
    print_items,
    print_json,
    prints_help,
    short_id,
    table,
)

TYPE_CHECKING = False  # not typing's: it stays out of the CLI's start-up (podkit/cli/main.py)
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable
    from typing import Any

    from podkit.cli.main import Subparsers
    from podkit.client import Client


def register(sub: Subparsers) -> None:
    pod = sub.add_parser("pod", help="manage pods (containers sharing net, ipc, uts)")
    from podkit.cli.main import subcommands

    ps = subcommands(pod, dest="pod_command", metavar="COMMAND")
    pod.set_defaults(func=prints_help(pod))

    _register_pod_create(ps)
    _register_pod_commands(ps)
    _register_play(sub)


def _register_pod_create(ps: Subparsers) -> None:
    """`pod create` and its flags."""
    p = ps.add_parser("create", help="create a pod")
    p.add_argument("--name", help="the pod's name (default: a generated one)")
    p.add_argument(
        "-p",
        "--publish",
        action="append",
        default=[],
        metavar="[IP:]HOST:CTR[/PROTO]",
        help="publish a port of the pod on the host",
    )
    p.add_argument(
        "--share",
        default="net,ipc,uts",
        help="namespaces the containers share: net,ipc,uts[,pid] (default net,ipc,uts)",
    )
    p.add_argument("--hostname", help="the pod's hostname (default: its name)")
    p.add_argument("--memory", "-m", help="memory limit of the whole pod (e.g. 256m)")
    p.add_argument("--cpus", type=float, help="CPU limit of the whole pod (e.g. 1.5)")
    p.add_argument("--shm-size", help="size of the pod's shared /dev/shm (default 64m)")
    p.add_argument("--dns", action="append", default=[], help="DNS server for the pod")
    p.add_argument("--dns-search", action="append", default=[], help="DNS search domain")
    p.add_argument("--dns-option", action="append", default=[], help="resolv.conf option")
    p.add_argument(
        "--add-host",
        action="append",
        default=[],
        metavar="NAME:IP",
        help="add a line to the pod's /etc/hosts",
    )
    p.add_argument("--network", default=None, help="bridge (default), host, none or a network name")
    p.add_argument("--label", "-l", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument(
        "--sysctl",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a namespaced sysctl for the pod (net.*, kernel.shm*, ...)",
    )
    p.add_argument("--start", action="store_true", help="start the pod right away")
    p.set_defaults(func=cmd_create, engine_exit=125)


def _register_pod_commands(ps: Subparsers) -> None:
    """`pod ls|inspect|start|stop|restart|rm|logs|stats|top|prune`."""
    from podkit.cli.main import add_format

    p = ps.add_parser("ls", aliases=["list", "ps"], help="list pods")
    add_format(p)
    p.add_argument("--filter", "-f", action="append", default=[], metavar="label=KEY[=VALUE]")
    p.set_defaults(func=cmd_ls)

    p = ps.add_parser("inspect", help="show a pod's details")
    p.add_argument("pods", nargs="+", metavar="POD")
    p.add_argument("-f", "--format", default="json", help="json (default), or a template such as '{{.name}}'")
    p.set_defaults(func=cmd_inspect)

    for name, helptext, fn in (
        ("start", "start pods", cmd_start),
        ("stop", "stop pods", cmd_stop),
        ("restart", "restart pods", cmd_restart),
    ):
        p = ps.add_parser(name, help=helptext)
        p.add_argument("pods", nargs="+", metavar="POD")
        if name != "start":
            p.add_argument("-t", "--time", type=int, default=None, help="seconds to wait before SIGKILL")
        p.set_defaults(func=fn, engine_exit=125 if name == "start" else 1)

    p = ps.add_parser("rm", aliases=["remove"], help="remove pods")
    p.add_argument("pods", nargs="+", metavar="POD")
    p.add_argument("-f", "--force", action="store_true", help="stop and remove running containers too")
    p.add_argument("-t", "--time", type=int, default=None, help="stop timeout with -f")
    p.set_defaults(func=cmd_rm)

    p = ps.add_parser("logs", help="show the logs of every container of a pod")
    p.add_argument("pod", metavar="POD")
    p.add_argument("-f", "--follow", action="store_true")
    p.add_argument("--tail", type=int, default=None, help="last N lines of each container")
    p.add_argument("-t", "--timestamps", action="store_true")
    p.set_defaults(func=cmd_logs)

    p = ps.add_parser("stats", help="show resource usage of pods")
    p.add_argument("pods", nargs="+", metavar="POD")
    p.add_argument("--no-stream", action="store_true", help="print one sample and exit")
    p.add_argument(
        "--format", default="table", help="table, json, or a template such as '{{.Name}} {{.CPU}}'"
    )
    p.set_defaults(func=cmd_stats)

    p = ps.add_parser("top", help="show the processes of a pod")
    p.add_argument("pod", metavar="POD")
    p.add_argument("ps_args", nargs=REMAINDER, help="ps options (default -ef)")
    p.set_defaults(func=cmd_top)

    p = ps.add_parser("prune", help="remove every pod with no running container")
    p.add_argument("-f", "--force", action="store_true", help="do not ask (podkit never asks)")
    p.set_defaults(func=cmd_prune)


def _register_play(sub: Subparsers) -> None:
    """`play kube`."""
    play = sub.add_parser("play", help="run Kubernetes YAML")
    from podkit.cli.main import subcommands

    pls = subcommands(play, dest="play_command", metavar="KIND")
    play.set_defaults(func=prints_help(play))
    p = pls.add_parser("kube", help="run the Pods and Deployments of a Kubernetes YAML file")
    p.add_argument("file", metavar="FILE.yaml", help="the YAML file ('-' for stdin)")
    p.add_argument("--down", action="store_true", help="remove what the file created")
    p.add_argument("--start", default="true", choices=["true", "false"], help="start the pods (default true)")
    p.add_argument("-q", "--quiet", action="store_true", help="print only pod ids")
    p.set_defaults(func=cmd_play_kube, engine_exit=125)


def _mem(v: str | None, flag: str = "--memory") -> int | None:
    if v is None:
        return None
    s = v.strip().lower()
    units = {
        "": 1,
        "b": 1,
        "k": 1 << 10,
        "kb": 1 << 10,
        "m": 1 << 20,
        "mb": 1 << 20,
        "g": 1 << 30,
        "gb": 1 << 30,
    }
    num = s.rstrip("bkmg")
    unit = s[len(num) :]
    try:
        if unit not in units:
            raise ValueError
        return int(float(num) * units[unit])
    except ValueError:
        raise errors.InvalidArgument(f"invalid {flag} {v!r}: use a number with unit b, k, m or g") from None


def _labels(items: list[str]) -> dict[str, str]:
    out = {}
    for it in items:
        k, _, v = it.partition("=")
        if not k:
            raise errors.InvalidArgument(f"invalid label {it!r}: want KEY=VALUE")
        out[k] = v
    return out


def _sysctls(items: list[str]) -> dict[str, str]:
    out = {}
    for it in items:
        k, eq, v = it.partition("=")
        if not k or not eq:
            raise errors.InvalidArgument(f"invalid --sysctl {it!r}: want KEY=VALUE")
        out[k.strip()] = v.strip()
    return out


def cmd_create(args: argparse.Namespace, client: Client) -> int:
    share = [s for s in args.share.split(",") if s.strip()] if args.share else []
    pod = client.pods.create(
        args.name,
        ports=args.publish or None,
        share=share,
        hostname=args.hostname,
        memory=_mem(args.memory),
        cpus=args.cpus,
        dns=args.dns,
        dns_search=args.dns_search,
        dns_option=args.dns_option,
        add_hosts=args.add_host or None,
        network=args.network,
        labels=_labels(args.label) or None,
        start=args.start,
        **({"sysctls": _sysctls(args.sysctl)} if args.sysctl else {}),
        **({"shm_size": _mem(args.shm_size, "--shm-size")} if args.shm_size else {}),
    )
    print(pod.id)
    return 0


def cmd_ls(args: argparse.Namespace, client: Client) -> int:
    labels = []
    for f in args.filter:
        k, _, v = f.partition("=")
        if k != "label" or not v:
            raise errors.InvalidArgument(f"invalid filter {f!r}: pod ls filters by label=KEY[=VALUE]")
        labels.append(v)
    pods = client.pods.list(labels=labels or None)
    listing(
        args,
        [p.raw for p in pods],
        ["POD ID", "NAME", "STATUS", "CREATED", "INFRA ID", "# OF CONTAINERS", "IP", "PORTS"],
        lambda d: [
            short_id(d["id"]),
            d["name"],
            d.get("status", ""),
            ago(d.get("created")),
            short_id(d.get("infra_id") or "-"),
            str(d.get("num_containers", 0)),
            ",".join(ip.split("/", 1)[0] for ip in d.get("ips") or []) or "-",
            ", ".join(d.get("ports_text") or []),
        ],
        lambda d: d["id"],
        _pod_fields,
        POD_HEADERS,
        json_array=True,  # podman's `pod ps --format json`
    )
    return 0


# podman's `pod ps --format` fields and their table headers
POD_HEADERS = {
    "ID": "POD ID",
    "Name": "NAME",
    "Status": "STATUS",
    "Created": "CREATED",
    "InfraID": "INFRA ID",
    "NumberOfContainers": "# OF CONTAINERS",
    "Labels": "LABELS",
    "Networks": "NETWORKS",
    "IP": "IP",
    "Ports": "PORTS",
}


def _pod_fields(d: dict[str, Any]) -> dict[str, object]:
    labels = d.get("labels") or (d.get("spec") or {}).get("labels") or {}
    return {
        "ID": short_id(d["id"]),
        "Name": d["name"],
        "Status": d.get("status", ""),
        "Created": ago(d.get("created")),
        "InfraID": short_id(d.get("infra_id") or ""),
        "NumberOfContainers": str(d.get("num_containers", 0)),
        "Labels": labels,
        "Label": lambda key: str(labels.get(key, "")),
        "Networks": ",".join(d.get("networks") or []),
        "IP": ",".join(ip.split("/", 1)[0] for ip in d.get("ips") or []),
        "Ports": ", ".join(d.get("ports_text") or []),
    }


def cmd_inspect(args: argparse.Namespace, client: Client) -> int:
    out = []
    rc = 0
    for ref in args.pods:
        try:
            out.append(client.pods.inspect(ref))
        except errors.NotFound as e:
            err(f"Error: {e.message}")
            rc = 1
    if is_template(args.format):
        print_items(args.format, out, {})
    else:
        print_json(out if len(args.pods) > 1 else (out[0] if out else []))
    return rc


def _each(refs: list[str], fn: Callable[[str], object]) -> int:
    return for_each(refs, fn, engine_exit=125)


def cmd_start(args: argparse.Namespace, client: Client) -> int:
    return _each(args.pods, client.pods.start)


def cmd_stop(args: argparse.Namespace, client: Client) -> int:
    return _each(args.pods, lambda r: client.pods.stop(r, timeout=args.time))


def cmd_restart(args: argparse.Namespace, client: Client) -> int:
    return _each(args.pods, lambda r: client.pods.restart(r, timeout=args.time))


def cmd_rm(args: argparse.Namespace, client: Client) -> int:
    return _each(args.pods, lambda r: client.pods.remove(r, force=args.force, timeout=args.time))


def cmd_logs(args: argparse.Namespace, client: Client) -> int:
    for ln in client.pods.logs(args.pod, follow=args.follow, tail=args.tail, timestamps=args.timestamps):
        text = ln.get("line", "")
        prefix = f"{ln.get('container', '?')} "
        if args.timestamps and ln.get("time"):
            prefix += f"{ln['time']} "
        out = sys.stderr if ln.get("stream") == "stderr" else sys.stdout
        out.write(prefix + text + ("" if text.endswith("\n") else "\n"))
        out.flush()
    return 0


def cmd_stats(args: argparse.Namespace, client: Client) -> int:
    import itertools

    streams = [client.pods.stats(ref, stream=not args.no_stream) for ref in args.pods]
    for row in itertools.zip_longest(*streams):
        samples = [s for s in row if s]
        if args.format == "json":
            print_json(samples)
            continue
        if not args.no_stream:
            sys.stdout.write("\033[2J\033[H")
        fields = [_stats_fields(s, c) for s in samples for c in [s, *s.get("containers", [])]]
        if is_template(args.format):
            print_items(args.format, fields, POD_STATS_HEADERS)
        else:
            keys = ("Pod", "Name", "CID", "CPU", "MemUsage", "PIDS")
            table(([f[k] for k in keys] for f in fields), [POD_STATS_HEADERS[k] for k in keys])
        sys.stdout.flush()
    return 0


POD_STATS_HEADERS = {
    "Pod": "POD",
    "Name": "NAME",
    "CID": "CONTAINER",
    "CPU": "CPU %",
    "MemUsage": "MEM USAGE / LIMIT",
    "PIDS": "PIDS",
}


def _stats_fields(pod: dict[str, Any], c: dict[str, Any]) -> dict[str, str]:
    lim = c.get("memory_limit")
    return {
        "Pod": short_id(pod["id"]),
        "Name": pod.get("name", ""),
        "CID": c.get("container", "(pod)"),
        "CPU": f"{c.get('cpu_percent', 0.0):.2f}%",
        "MemUsage": f"{human_size(c.get('memory_usage'))} / {human_size(lim) if lim else 'unlimited'}",
        "PIDS": str(c.get("pids", "-")),
    }


def cmd_top(args: argparse.Namespace, client: Client) -> int:
    res = client.pods.top(args.pod, " ".join(args.ps_args))
    table(res.get("processes", []), res.get("titles", []))
    return 0


def cmd_prune(args: argparse.Namespace, client: Client) -> int:
    for pid in client.pods.prune():
        print(pid)
    return 0


def cmd_play_kube(args: argparse.Namespace, client: Client) -> int:
    try:
        if args.file == "-":
            text = sys.stdin.read()
        else:
            with open(args.file, encoding="utf-8") as f:
                text = f.read()
    except OSError as e:
        raise errors.InvalidArgument(f"cannot read {args.file}: {e.strerror}") from None
    if args.down:
        res = client.pods.down_kube(text)
        for p in res.get("removed", []):
            print(p if args.quiet else f"removed pod {p}")
        for n in res.get("missing", []):
            err(f"pod {n} was not found (already removed)")
        return 0
    res = client.pods.play_kube(text, start=args.start == "true")
    for w in res.get("warnings", []):
        err(f"Warning: {w}")
    for p in res.get("pods", []):
        if args.quiet:
            print(p["id"])
            continue
        print(f"Pod: {p['name']} ({p['id']})")
        for c in p.get("containers", []):
            print(f"  Container: {c['name']} ({c['id']})")
    return 0
