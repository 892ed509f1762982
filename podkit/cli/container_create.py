"""`run`/`create` flags and the create body they make (docker's names and defaults)."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    pass


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
    a(
        "--network",
        "--net",
        action="append",
        default=[],
        help="bridge (default) | host | none | container:ID | NETWORK; repeat for more user networks",
    )
    a(
        "--network-alias",
        "--net-alias",
        action="append",
        default=[],
        dest="network_alias",
        help="another name the container answers to on its user network",
    )
    a("--dns", action="append", default=[], help="a DNS server")
    a("--dns-search", action="append", default=[], help="a DNS search domain ('.' for none)")
    a("--dns-option", action="append", default=[], help="a resolver option (ndots:2...)")
    a("--health-cmd", help="a command run in the container (by /bin/sh -c) to check its health")
    a("--health-interval", help="time between checks (default 30s)")
    a("--health-timeout", help="time a check may take (default 30s)")
    a("--health-retries", type=int, help="failures in a row before unhealthy (default 3)")
    a("--health-start-period", help="time after start when failures do not count (default 0s)")
    a("--no-healthcheck", action="store_true", help="disable the image's HEALTHCHECK")
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


def create_body(args: argparse.Namespace) -> dict[str, Any]:
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
        "network": args.network[0] if args.network else None,
        "networks": args.network[1:],
        "network_aliases": args.network_alias,
        "healthcheck": _healthcheck(args),
        "no_healthcheck": args.no_healthcheck,
        "dns_search": args.dns_search,
        "dns_options": args.dns_option,
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


def _healthcheck(args: argparse.Namespace) -> dict[str, object] | None:
    if not args.health_cmd:
        return None
    hc: dict[str, object] = {"test": args.health_cmd}
    for key in ("interval", "timeout", "retries", "start_period"):
        v = getattr(args, f"health_{key}")
        if v is not None:
            hc[key] = v
    return hc
