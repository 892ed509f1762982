"""`inspect`: a container in docker's inspect layout (what docker users script against)."""

from __future__ import annotations

import sys

from podkit import errors
from podkit.cli.container_ops import container_ops as _ops
from podkit.cli.output import print_inspected
from podkit.hostconfig import resource_fields

TYPE_CHECKING = False  # not typing's: it stays out of the CLI's start-up (podkit/cli/main.py)
if TYPE_CHECKING:
    import argparse
    from typing import Any

    from podkit.client import Client


def iso_time(ts: float | None) -> str:
    import datetime

    if not ts:
        return "0001-01-01T00:00:00Z"  # what docker prints for "never"
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def docker_inspect(d: dict[str, Any]) -> dict[str, Any]:
    """The shape `docker inspect` prints for a container (State, Config, HostConfig,
    NetworkSettings, Mounts), so scripts and `-f '{{.State.Status}}'` written for docker
    work; podkit's own record is kept whole under "Podkit".

    Long on purpose: one literal, field by field in docker's order, reads best whole."""
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
        "Created": iso_time(d.get("created")),
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
            "StartedAt": iso_time(d.get("started_at")),
            "FinishedAt": iso_time(d.get("finished_at")),
            **({"Health": d["health"]} if d.get("health") else {}),
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
            "PublishAllPorts": bool(cfg.get("publish_all")),
            "PidMode": cfg.get("pid") or "",
            "IpcMode": cfg.get("ipc") or "private",
            "Sysctls": cfg.get("sysctls") or {},
            "GroupAdd": [str(g) for g in cfg.get("group_add") or []],
            "VolumesFrom": cfg.get("volumes_from") or [],
            "Dns": cfg.get("dns") or [],
            "Links": d.get("links") or None,
            "UTSMode": cfg.get("uts") or "",
            "CgroupnsMode": d.get("cgroupns") or "host",
            **resource_fields(cfg),
            "Runtime": "runc",
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
            "MacAddress": cfg.get("mac_address") or "",
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
