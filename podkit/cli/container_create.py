"""`run`/`create` flags and the create body they make (docker's names and defaults)."""

from __future__ import annotations

import os

from podkit import errors
from podkit.cli._fastargs import REMAINDER

TYPE_CHECKING = False  # not typing's: it stays out of the CLI's start-up (podkit/cli/main.py)
if TYPE_CHECKING:
    import argparse
    from typing import Any


def add_create_flags(p: argparse.ArgumentParser) -> None:
    a = p.add_argument
    a("--name", help="a name for the container")
    a("-e", "--env", action="append", default=[], help="set an environment variable KEY=VALUE")
    a("--env-file", action="append", default=[], help="read environment variables from a file")
    a("-v", "--volume", action="append", default=[], help="bind HOST:CTR[:ro] or volume NAME:CTR")
    a("--tmpfs", action="append", default=[], help="mount a tmpfs: PATH[:OPTIONS]")
    a(
        "--mount",
        action="append",
        default=[],
        help="type=bind|volume|tmpfs,src=...,dst=...[,readonly][,bind-propagation=...][,volume-nocopy]"
        "[,tmpfs-size=...][,tmpfs-mode=...]",
    )
    a("--volumes-from", action="append", default=[], help="mount the volumes of CONTAINER[:ro|rw]")
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
    a("--memory-reservation", help="memory soft limit")
    a("--cpuset-cpus", help="CPUs the container may run on (0-3, 0,1)")
    a("--cpuset-mems", help="memory nodes the container may use (0-3, 0,1)")
    a("--cpus", help="number of CPUs (e.g. 0.5)")
    a("--cpu-shares", type=int, help="relative CPU weight")
    a("--pids-limit", type=int, help="maximum number of processes")
    a("--ulimit", action="append", default=[], help="NAME=SOFT[:HARD], e.g. nofile=1024:2048")
    a("--init", action="store_true", help="run catatonit as PID 1 to reap zombies and forward signals")
    a("--restart", help="no | on-failure[:N] | always | unless-stopped")
    a("--rm", action="store_true", help="remove the container when it exits")
    a("-p", "--publish", action="append", default=[], help="publish a port [IP:]HOST:CTR[/PROTO]")
    a("-P", "--publish-all", action="store_true", help="publish every exposed port to a random host port")
    a("--expose", action="append", default=[], help="expose a port or a range PORT[-END][/PROTO]")
    a("--ip", help="a fixed IPv4 address on the (user-defined) network")
    a("--pid", help="pid namespace: host | container:NAME")
    a("--ipc", help="IPC namespace: private | shareable | none | host | container:NAME")
    a("--sysctl", action="append", default=[], help="a namespaced kernel parameter KEY=VALUE")
    a("--group-add", action="append", default=[], help="another group (name or gid) for the process")
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
    a("--log-size-max", help="the log file's size limit (one file: emptied when full)")
    a("--log-driver", help="json-file | local | k8s-file (all one podkit log file)")
    a("--log-opt", action="append", default=[], help="max-size=10m, max-file=3: rotation keeping N files")
    a("--cidfile", help="write the container's id to this file (which must not exist)")
    a("--pull", default="missing", help="pull the image: always | missing (default) | never")
    a("--platform", help="os/arch: this host's only")
    _add_more_flags(p)
    a("image", help="image reference")
    a("command", nargs=REMAINDER, help="command and arguments")


def _add_more_flags(p: argparse.ArgumentParser) -> None:
    """docker's less common run flags (the daemon's option_runtime.py parses them)."""
    a = p.add_argument

    def many(flag: str, help: str) -> None:
        a(flag, action="append", default=[], help=help)

    many("--annotation", help="an OCI annotation KEY=VALUE for the runtime")
    many("--label-file", help="read labels from a file (KEY=VALUE lines)")
    a("--domainname", help="the container's NIS domain name")
    a("--uts", help="UTS namespace: host (default: its own)")
    a("--cgroupns", help="cgroup namespace: host (default) | private")
    a("--userns", help="user namespace: host (the only one podkit has)")
    a("--cgroup-parent", help="the cgroup the container's cgroup goes under")
    a("--cpu-period", type=int, help="CPU CFS period (µs)")
    a("--cpu-quota", type=int, help="CPU CFS quota (µs per period)")
    a("--cpu-rt-period", type=int, help="refused: no real-time CPU budget")
    a("--cpu-rt-runtime", type=int, help="refused: no real-time CPU budget")
    a("--cpu-count", type=int, help="Windows only (discarded with a warning)")
    a("--cpu-percent", type=int, help="Windows only (discarded with a warning)")
    a("--io-maxbandwidth", help="Windows only (refused)")
    a("--io-maxiops", help="Windows only (refused)")
    a("--oom-score-adj", type=int, help="the OOM killer's preference, -1000..1000")
    a("--oom-kill-disable", action="store_true", help="no OOM kills in the container's cgroup (cgroup v1)")
    a("--memory-swappiness", type=int, help="0..100 (cgroup v1)")
    a("--kernel-memory", help="accepted and discarded with a warning, as docker 20+")
    a("--blkio-weight", type=int, help="block I/O weight 10..1000")
    many("--blkio-weight-device", help="DEVICE:WEIGHT")
    many("--device-read-bps", help="DEVICE:RATE (bytes/s, e.g. 1mb)")
    many("--device-write-bps", help="DEVICE:RATE (bytes/s, e.g. 1mb)")
    many("--device-read-iops", help="DEVICE:RATE (I/O per second)")
    many("--device-write-iops", help="DEVICE:RATE (I/O per second)")
    many("--device-cgroup-rule", help="an allowed device rule, e.g. 'c 1:3 mr'")
    many("--link", help="link to a running container NAME[:ALIAS] (/etc/hosts, env)")
    a("--mac-address", help="the MAC address of the first network's interface")
    a("--ip6", help="refused: IPv4 only")
    many("--link-local-ip", help="refused: IPv4 only")
    a("--gpus", help="refused: no GPU support")
    many("--storage-opt", help="refused: no per-container size quota")
    a("--runtime", help="runc (the only one)")
    a("--isolation", help="default (the only one on Linux)")
    a("--volume-driver", help="local (the only one)")
    a("--health-start-interval", help="time between checks during the start period")
    a("-q", "--quiet", action="store_true", help="no pull progress (podkit's run prints none)")
    a("--use-api-socket", action="store_true", help="bind the Docker API socket at /var/run/docker.sock")
    a(
        "--disable-content-trust",
        nargs="?",
        const="true",
        default="true",
        help="true (podkit verifies no signatures; false is refused)",
    )
    a(
        "--sig-proxy",
        nargs="?",
        const="true",
        default="true",
        help="forward signals to the container (default true; false: Ctrl-C stops the CLI only)",
    )


def _more_body(args: argparse.Namespace) -> dict[str, Any]:
    if args.disable_content_trust.lower() not in ("true", "1"):
        raise errors.InvalidArgument(
            "content trust is not supported by podkit: images are not signature-checked"
        )
    if args.sig_proxy.lower() not in ("true", "1", "false", "0"):
        raise errors.InvalidArgument(f"invalid --sig-proxy {args.sig_proxy!r}: want true or false")
    return {
        "annotations": _key_values(args.annotation, "--annotation"),
        "domainname": args.domainname,
        "uts": args.uts,
        "cgroupns": args.cgroupns,
        "userns": args.userns,
        "cgroup_parent": args.cgroup_parent,
        "cpu_period": args.cpu_period,
        "cpu_quota": args.cpu_quota,
        "cpu_rt_period": args.cpu_rt_period,
        "cpu_rt_runtime": args.cpu_rt_runtime,
        "cpu_count": args.cpu_count,
        "cpu_percent": args.cpu_percent,
        "io_maxbandwidth": args.io_maxbandwidth,
        "io_maxiops": args.io_maxiops,
        "oom_score_adj": args.oom_score_adj,
        "oom_kill_disable": args.oom_kill_disable,
        "memory_swappiness": args.memory_swappiness,
        "kernel_memory": args.kernel_memory,
        "blkio_weight": args.blkio_weight,
        "blkio_weight_device": args.blkio_weight_device,
        "device_read_bps": args.device_read_bps,
        "device_write_bps": args.device_write_bps,
        "device_read_iops": args.device_read_iops,
        "device_write_iops": args.device_write_iops,
        "device_cgroup_rules": args.device_cgroup_rule,
        "links": args.link,
        "mac_address": args.mac_address,
        "ip6": args.ip6,
        "link_local_ips": args.link_local_ip,
        "gpus": args.gpus,
        "storage_opt": args.storage_opt,
        "runtime": args.runtime,
        "isolation": args.isolation,
        "volume_driver": args.volume_driver,
        "use_api_socket": args.use_api_socket,
    }


def _key_values(entries: list[str], flag: str) -> dict[str, str]:
    out = {}
    for e in entries:
        k, eq, v = e.partition("=")
        if not k or not eq:
            raise errors.InvalidArgument(f"invalid {flag} {e!r}: want KEY=VALUE")
        out[k] = v
    return out


def _label_files(paths: list[str]) -> list[str]:
    """``--label-file``: KEY=VALUE lines (``#`` comments, blank lines skipped), read here."""
    out = []
    for path in paths:
        try:
            with open(path, encoding="utf-8") as f:
                lines = f.read().splitlines()
        except OSError as e:
            raise errors.InvalidArgument(f"--label-file {path}: {e.strerror}") from None
        out += [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    return out


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
        "mounts": args.mount,
        "volumes_from": args.volumes_from,
        "tmpfs": args.tmpfs,
        "read_only": args.read_only,
        "user": args.user,
        "workdir": args.workdir,
        "hostname": args.hostname,
        "labels": _label_files(args.label_file) + args.label,
        "cap_add": args.cap_add,
        "cap_drop": args.cap_drop,
        "privileged": args.privileged,
        "security_opt": args.security_opt,
        "devices": args.device,
        "memory": args.memory,
        "memory_swap": args.memory_swap,
        "memory_reservation": args.memory_reservation,
        "cpuset_cpus": args.cpuset_cpus,
        "cpuset_mems": args.cpuset_mems,
        "cpus": args.cpus,
        "cpu_shares": args.cpu_shares,
        "pids_limit": args.pids_limit,
        "ulimits": args.ulimit,
        "init": args.init,
        "restart": args.restart,
        "auto_remove": args.rm,
        "ports": args.publish,
        "publish_all": args.publish_all,
        "expose": args.expose,
        "ip": args.ip,
        "pid": args.pid,
        "ipc": args.ipc,
        "sysctls": args.sysctl,
        "group_add": args.group_add,
        "pull": args.pull if args.pull != "missing" else None,
        "platform": args.platform,
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
        "log_driver": args.log_driver,
        "log_opts": args.log_opt or None,
        **_more_body(args),
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


class CidFile:
    """``--cidfile``: made before the create (refused if it exists, as docker does),
    given the id after it, removed if the create fails."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.fd = -1
        if path:
            try:
                self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                raise errors.InvalidArgument(
                    f"container ID file found, make sure the other container isn't running or delete {path}"
                ) from None
            except OSError as e:
                raise errors.InvalidArgument(
                    f"failed to create the container ID file {path}: {e.strerror}"
                ) from None

    def write(self, cid: str) -> None:
        if self.fd >= 0:
            os.write(self.fd, cid.encode())
            os.close(self.fd)
            self.fd = -1

    def discard(self) -> None:
        """The create failed: no file of an id that does not exist."""
        if self.fd >= 0 and self.path:
            os.close(self.fd)
            self.fd = -1
            os.unlink(self.path)


def _healthcheck(args: argparse.Namespace) -> dict[str, object] | None:
    if not args.health_cmd:
        return None
    hc: dict[str, object] = {"test": args.health_cmd}
    for key in ("interval", "timeout", "retries", "start_period", "start_interval"):
        v = getattr(args, f"health_{key}")
        if v is not None:
            hc[key] = v
    return hc
