"""podkit objects in docker's JSON shapes (the ``docker ps`` / ``inspect`` views)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from podkit.dockerapi.common import MAX_VERSION, ZERO_TIME, Version, rfc3339
from podkit.hostconfig import resource_fields

if TYPE_CHECKING:
    from podkit.containers.service import ContainerService
    from podkit.containers.store import Record
    from podkit.images.service import Image, ImageService
    from podkit.network.manager import NetworkManager

_LIVE = ("running", "paused")


def rfc3339_now() -> str:
    return rfc3339(time.time())


def familiar(name: str) -> str:
    """docker.io/library/busybox:latest -> busybox:latest, as docker prints names."""
    for prefix in ("docker.io/library/", "docker.io/"):
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


def _network_mode(rec: Record) -> str:
    mode = str(rec.config.get("network") or "bridge")
    return "default" if mode == "default" else mode


def _endpoints(
    rec: Record, networks: NetworkManager | None, version: Version = MAX_VERSION
) -> dict[str, Any]:
    """NetworkSettings.Networks: one entry per attachment (its IP while running)."""
    out = _endpoint_map(rec, networks)
    mode = str(rec.config.get("network") or "bridge")
    for name, ep in out.items():
        if name in ("bridge", "host", "none"):
            continue
        # A user network: the aliases asked for, and every name the container answers to
        # there (1.44's DNSNames); before 1.45 Aliases held the short id and hostname too.
        aliases = list(rec.config.get("network_aliases") or []) if name == mode else []
        ep["DNSNames"] = list(dict.fromkeys([rec.name, *aliases, rec.id[:12], _hostname(rec)]))
        if version < (1, 45):
            aliases = list(dict.fromkeys([*aliases, rec.id[:12], _hostname(rec)]))
        ep["Aliases"] = aliases or None
    if version >= (1, 48):
        prio = rec.config.get("gw_priority") or {}
        for name, ep in out.items():
            ep["GwPriority"] = int(prio.get(name, 0))
    return out


def _hostname(rec: Record) -> str:
    return str(rec.config.get("hostname") or rec.id[:12])


def _endpoint_map(rec: Record, networks: NetworkManager | None) -> dict[str, Any]:
    mode = str(rec.config.get("network") or "bridge")
    if mode == "none" or mode.startswith("container:") or mode == "pod":
        return {} if mode != "none" else {"none": _endpoint("", {}, rec)}
    if mode == "host":
        return {"host": _endpoint("", {}, rec)}
    net = rec.network or {}
    out: dict[str, Any] = {}
    atts = net.get("attachments") if rec.state in _LIVE else None
    for a in atts or []:
        # The default network answers to docker's name for it.
        name = (
            "bridge" if mode == "bridge" and a.get("interface") == "eth0" else str(a.get("network") or mode)
        )
        out[name] = _endpoint(str(a.get("network_id") or ""), a, rec)
    if not out:
        nid = ""
        if networks is not None:
            try:
                nid = networks.get(mode).id
            except Exception:  # a network removed since: docker shows the name alone
                nid = ""
        out["bridge" if mode == "bridge" else mode] = _endpoint(nid, {}, rec)
    return out


def _endpoint(nid: str, a: dict[str, Any], rec: Record) -> dict[str, Any]:
    return {
        "IPAMConfig": None,
        "Links": None,
        "Aliases": None,
        "MacAddress": str(a.get("mac") or ""),
        "NetworkID": nid,
        "EndpointID": (rec.id[:32] + nid[:32]) if a else "",
        "Gateway": str(a.get("gateway") or ""),
        "IPAddress": str(a.get("ip") or ""),
        "IPPrefixLen": int(a.get("prefix") or 0),
        "IPv6Gateway": "",
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "DriverOpts": None,
        "DNSNames": None,
    }


def live_ports(rec: Record) -> list[dict[str, Any]]:
    if rec.state not in _LIVE:
        return []
    return list((rec.network or {}).get("ports") or [])


def ports_list(rec: Record) -> list[dict[str, Any]]:
    """``docker ps``'s Ports: published ones while running, else the requested ones unpublished."""
    out = []
    for p in live_ports(rec):
        d: dict[str, Any] = {
            "PrivatePort": int(p["container_port"]),
            "PublicPort": int(p["host_port"]),
            "Type": p.get("protocol") or "tcp",
        }
        d["IP"] = p.get("host_ip") or "0.0.0.0"
        out.append(d)
    return out


def ports_map(rec: Record) -> dict[str, Any]:
    """NetworkSettings.Ports: ``{"80/tcp": [{"HostIp", "HostPort"}]}``."""
    out: dict[str, Any] = {}
    for p in rec.config.get("ports") or []:
        out.setdefault(f"{p['container_port']}/{p.get('protocol') or 'tcp'}", None)
    for p in live_ports(rec):
        key = f"{p['container_port']}/{p.get('protocol') or 'tcp'}"
        if out.get(key) is None:
            out[key] = []
        out[key].append({"HostIp": p.get("host_ip") or "0.0.0.0", "HostPort": str(p["host_port"])})
    return out


def _mounts(svc: ContainerService, rec: Record) -> list[dict[str, Any]]:
    out = []
    for m in rec.config.get("mounts") or []:
        typ = m.get("type")
        ro = bool(m.get("readonly"))
        d: dict[str, Any] = {
            "Type": typ,
            "Destination": m.get("target"),
            "Mode": "ro" if ro else "",
            "RW": not ro,
            "Propagation": "" if typ != "bind" else "rprivate",
        }
        if typ == "volume":
            d["Name"] = m.get("source")
            d["Source"] = str(svc.volumes.path(rec.namespace, m.get("source") or ""))
            d["Driver"] = "local"
            d["Mode"] = "z" if not ro else "ro"
        elif typ in ("bind", "image"):
            d["Source"] = m.get("source")
        else:
            d["Source"] = ""
        out.append(d)
    return out


def _health(svc: ContainerService, rec: Record) -> dict[str, Any]:
    """State.Health, only for a container with a healthcheck (as docker)."""
    hc = rec.config.get("healthcheck") or {}
    if not hc.get("test") or hc["test"][0] == "NONE":
        return {}
    st = svc.view(rec).get("health") or {"Status": "starting", "FailingStreak": 0, "Log": []}
    if rec.state not in _LIVE:
        st = {**st, "Status": "unhealthy" if st.get("Status") == "unhealthy" else "starting"}
    return {"Health": st}


def container_summary(
    svc: ContainerService, rec: Record, networks: NetworkManager | None, version: Version = MAX_VERSION
) -> dict[str, Any]:
    cfg = rec.config
    command = [*(cfg.get("entrypoint") or []), *(cfg.get("cmd") or [])]
    if not command:
        command = list(svc.view(rec, full=True).get("command") or [])
    return {
        "Id": rec.id,
        "Names": ["/" + rec.name],
        "Image": familiar(rec.image),
        "ImageID": rec.image_id,
        "Command": " ".join(command),
        "Created": int(rec.created),
        "Ports": ports_list(rec),
        "Labels": dict(rec.labels),
        "State": rec.state,
        "Status": str(svc.view(rec)["status"]),
        "HostConfig": {
            "NetworkMode": _network_mode(rec),
            # 1.46 lists the annotations too
            **({"Annotations": dict(cfg.get("annotations") or {}) or None} if version >= (1, 46) else {}),
        },
        "NetworkSettings": {"Networks": _endpoints(rec, networks, version)},
        "Mounts": _mounts(svc, rec),
    }


def _restart_policy(cfg: dict[str, Any]) -> dict[str, Any]:
    rp = cfg.get("restart") or {}
    return {"Name": str(rp.get("name") or "no"), "MaximumRetryCount": int(rp.get("max_retries") or 0)}


def _host_config(svc: ContainerService, rec: Record) -> dict[str, Any]:
    cfg = rec.config
    full = svc.view(rec, full=True)  # what the service resolves: links by name, the cgroupns
    cpus = cfg.get("cpus")
    binds = []
    tmpfs: dict[str, str] = {}
    for m in cfg.get("mounts") or []:
        if m.get("type") in ("bind", "volume") and m.get("source"):
            binds.append(f"{m['source']}:{m['target']}" + (":ro" if m.get("readonly") else ""))
        elif m.get("type") == "tmpfs":
            tmpfs[m["target"]] = ",".join(m.get("options") or [])
    port_bindings: dict[str, Any] = {}
    for p in cfg.get("ports") or []:
        key = f"{p['container_port']}/{p.get('protocol') or 'tcp'}"
        port_bindings.setdefault(key, []).append(
            {"HostIp": p.get("host_ip") or "", "HostPort": str(p["host_port"]) if p.get("host_port") else ""}
        )
    return {
        "Binds": binds or None,
        "ContainerIDFile": "",
        # podkit keeps a CRI log file; it is read back through the API as docker's
        # json-file log is, and clients (docker-py's run) decide by this name.
        "LogConfig": _log_config(cfg),
        "NetworkMode": _network_mode(rec),
        "PortBindings": port_bindings,
        "RestartPolicy": _restart_policy(cfg),
        "AutoRemove": bool(cfg.get("auto_remove")),
        "VolumeDriver": "",
        "VolumesFrom": cfg.get("volumes_from") or None,
        "ConsoleSize": [0, 0],
        "CapAdd": cfg.get("cap_add") or None,
        "CapDrop": cfg.get("cap_drop") or None,
        "CgroupnsMode": full.get("cgroupns") or "host",
        "Dns": cfg.get("dns") or [],
        "DnsOptions": cfg.get("dns_options") or [],
        "DnsSearch": cfg.get("dns_search") or [],
        "ExtraHosts": cfg.get("add_hosts") or None,
        "GroupAdd": [str(g) for g in cfg.get("group_add") or []] or None,
        "IpcMode": cfg.get("ipc") or "private",
        "Cgroup": "",
        "Links": full.get("links") or None,
        "PidMode": cfg.get("pid") or "",
        "Privileged": bool(cfg.get("privileged")),
        "PublishAllPorts": bool(cfg.get("publish_all")),
        "Sysctls": cfg.get("sysctls") or None,
        "ReadonlyRootfs": bool(cfg.get("read_only")),
        "SecurityOpt": None,
        "Tmpfs": tmpfs or None,
        "UTSMode": cfg.get("uts") or "",
        "UsernsMode": "",
        "ShmSize": int(cfg.get("shm_size") or 64 * 1024 * 1024),
        "Runtime": "runc",
        "Isolation": "",
        "CpuShares": int(cfg.get("cpu_shares") or 0),
        "Memory": int(cfg.get("memory") or 0),
        "NanoCpus": int((cpus or 0) * 1e9),
        "Devices": [
            {
                "PathOnHost": d.get("host"),
                "PathInContainer": d.get("container"),
                "CgroupPermissions": d.get("permissions"),
            }
            for d in cfg.get("devices") or []
        ],
        **resource_fields(cfg),
        "PidsLimit": cfg.get("pids_limit"),
        "Ulimits": [{"Name": u[0], "Soft": u[1], "Hard": u[2]} for u in cfg.get("ulimits") or []],
        "Init": bool(cfg.get("init")),
        "Mounts": None,
        "MaskedPaths": cfg.get("masked_paths"),
        "ReadonlyPaths": cfg.get("readonly_paths"),
    }


def container_inspect(
    svc: ContainerService, rec: Record, networks: NetworkManager | None, version: Version = MAX_VERSION
) -> dict[str, Any]:
    cfg = rec.config
    full = svc.view(rec, full=True)
    command = list(full.get("command") or [])
    image_cfg: dict[str, Any] = {}
    try:
        image_cfg = svc.images.get(rec.namespace, rec.image_id).config.get("config") or {}
    except Exception:  # the image may have been removed (rmi -f): inspect still answers
        image_cfg = {}
    env = list(cfg.get("env") or [])
    if image_cfg.get("Env"):
        from podkit.containers.options import merge_env

        env = merge_env(list(image_cfg["Env"]), env)
    labels = dict(image_cfg.get("Labels") or {})
    labels.update(rec.labels)
    live = rec.state in _LIVE
    net = rec.network or {}
    bundle = svc.bundle(rec.id)
    endpoints = _endpoints(rec, networks, version)
    first = next(iter(endpoints.values()), None) if endpoints else None
    exposed: dict[str, dict[str, Any]] = {k: {} for k in ports_map(rec)}
    exposed.update({k: {} for k in (image_cfg.get("ExposedPorts") or {})})
    exposed.update({k: {} for k in cfg.get("expose") or []})
    stop_signal = cfg.get("stop_signal")
    return {
        "Id": rec.id,
        "Created": rfc3339(rec.created),
        "Path": command[0] if command else "",
        "Args": command[1:],
        "State": {
            "Status": rec.state if rec.state != "removing" else "removing",
            "Running": rec.state in ("running", "paused", "restarting"),
            "Paused": rec.state == "paused",
            "Restarting": rec.state == "restarting",
            "OOMKilled": bool(rec.oom_killed),
            "Dead": rec.state == "dead",
            "Pid": rec.pid if live else 0,
            "ExitCode": int(rec.exit_code or 0),
            "Error": rec.error or "",
            "StartedAt": rfc3339(rec.started_at),
            "FinishedAt": rfc3339(rec.finished_at) if rec.finished_at else ZERO_TIME,
            **_health(svc, rec),
        },
        "Image": rec.image_id,
        "ResolvConfPath": str(bundle / "resolv.conf"),
        "HostnamePath": str(bundle / "hostname"),
        "HostsPath": str(bundle / "hosts"),
        "LogPath": str(svc.log_path(rec.id)),
        "Name": "/" + rec.name,
        "RestartCount": rec.restart_count,
        "Driver": "overlay2",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": None,
        "HostConfig": _host_config(svc, rec),
        "GraphDriver": {"Name": "overlay2", "Data": None},
        "Mounts": _mounts(svc, rec),
        "Config": {
            "Hostname": _hostname(rec),
            "Domainname": cfg.get("domainname") or "",
            "User": cfg.get("user") or image_cfg.get("User") or "",
            "AttachStdin": False,
            "AttachStdout": False,
            "AttachStderr": False,
            "ExposedPorts": exposed or None,
            "Tty": bool(cfg.get("tty")),
            "OpenStdin": bool(cfg.get("open_stdin")),
            "StdinOnce": bool(cfg.get("stdin_once")),
            "Env": env,
            "Cmd": cfg.get("cmd") if cfg.get("cmd") is not None else image_cfg.get("Cmd"),
            "Image": familiar(rec.image),
            "Volumes": {m["target"]: {} for m in cfg.get("mounts") or [] if m.get("type") == "volume"}
            or None,
            "WorkingDir": cfg.get("workdir") or image_cfg.get("WorkingDir") or "",
            "Entrypoint": cfg.get("entrypoint")
            if cfg.get("entrypoint") is not None
            else image_cfg.get("Entrypoint"),
            "OnBuild": None,
            "Labels": labels,
            "StopSignal": _signame(stop_signal) if stop_signal else image_cfg.get("StopSignal") or "",
            **({"StopTimeout": cfg["stop_timeout"]} if cfg.get("stop_timeout") is not None else {}),
            **_healthcheck(cfg, version),
            # the MAC asked for, where clients before 1.44 set it (dockerd shows it up to 1.51)
            **({"MacAddress": cfg["mac_address"]} if cfg.get("mac_address") else {}),
        },
        "NetworkSettings": {
            "Bridge": "",
            "SandboxID": rec.id if live and net.get("netns") else "",
            "HairpinMode": False,
            "LinkLocalIPv6Address": "",
            "LinkLocalIPv6PrefixLen": 0,
            "Ports": ports_map(rec),
            "SandboxKey": str(net.get("netns") or "") if live else "",
            "SecondaryIPAddresses": None,
            "SecondaryIPv6Addresses": None,
            "EndpointID": first["EndpointID"] if first else "",
            "Gateway": first["Gateway"] if first else "",
            "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0,
            "IPAddress": first["IPAddress"] if first else "",
            "IPPrefixLen": first["IPPrefixLen"] if first else 0,
            "IPv6Gateway": "",
            "MacAddress": first["MacAddress"] if first else "",
            "Networks": endpoints,
        },
    }


def _healthcheck(cfg: dict[str, Any], version: Version) -> dict[str, Any]:
    """Config.Healthcheck, durations in nanoseconds (StartInterval: 1.44 on)."""
    hc = cfg.get("healthcheck") or {}
    if not hc.get("test"):
        return {}
    out: dict[str, Any] = {"Test": list(hc["test"])}
    fields = {"interval": "Interval", "timeout": "Timeout", "start_period": "StartPeriod"}
    if version >= (1, 44):
        fields["start_interval"] = "StartInterval"
    for key, name in fields.items():
        if hc.get(key):
            out[name] = int(round(float(hc[key]) * 1e9))
    if hc.get("retries"):
        out["Retries"] = int(hc["retries"])
    return {"Healthcheck": out}


def _signame(sig: Any) -> str:
    import signal

    try:
        return signal.Signals(int(sig)).name
    except (ValueError, TypeError):
        return str(sig)


# ------------------------------------------------------------------ images
def repo_tags_digests(svc: ImageService, group: list[Image]) -> tuple[list[str], list[str]]:
    tags: list[str] = []
    digests: list[str] = []
    for img in group:
        if img.dangling:
            continue
        tags.append(familiar(img.name))
        repo = familiar(img.repository) if img.repository != "<none>" else ""
        if repo and img.digest:
            d = f"{repo}@{img.manifest_digest or img.digest}"
            if d not in digests:
                digests.append(d)
    return tags, digests


def _image_created(img: Image) -> tuple[int, str]:
    from podkit.dockerapi.common import parse_time

    c = str(img.config.get("created") or "")
    if c:
        try:
            t = parse_time(c[:26] + "Z" if len(c) > 26 and c.endswith("Z") else c)
            return int(t), c
        except Exception:  # an odd date in a foreign image: fall back to the record's
            pass
    return int(img.created), rfc3339(img.created)


def image_summary(
    svc: ImageService, img: Image, group: list[Image], version: Version = MAX_VERSION, containers: int = -1
) -> dict[str, Any]:
    tags, digests = repo_tags_digests(svc, group)
    size = svc.unpacked_size(img) or img.size
    cfg = img.config.get("config") or {}
    created, _ = _image_created(img)
    if version < (1, 43) and not tags and not digests:
        tags, digests = ["<none>:<none>"], ["<none>@<none>"]
    out: dict[str, Any] = {
        "Id": img.id,
        "ParentId": "",
        "RepoTags": tags,
        "RepoDigests": digests,
        "Created": created,
        "Size": size,
        "SharedSize": -1,
        "Labels": cfg.get("Labels") or {},
        # the containers using it from 1.51 on (-1, "not counted", before)
        "Containers": containers if version >= (1, 51) else -1,
    }
    if version < (1, 44):
        out["VirtualSize"] = size  # removed in 1.44
    out.update(_descriptor(img, version))
    return out


def _descriptor(img: Image, version: Version) -> dict[str, Any]:
    """1.48's Descriptor: the OCI descriptor of what the name points at (index or manifest)."""
    if version < (1, 48) or not img.digest:
        return {}
    return {"Descriptor": {"mediaType": img.media_type, "digest": img.digest, "size": int(img.target_size)}}


# Config fields of image inspect that are a container's, not the image's: gone in 1.50.
_CONTAINER_ONLY_CONFIG = {
    "Hostname": "",
    "Domainname": "",
    "AttachStdin": False,
    "AttachStdout": False,
    "AttachStderr": False,
    "Tty": False,
    "OpenStdin": False,
    "StdinOnce": False,
    "Image": "",
}


def image_inspect(
    svc: ImageService, img: Image, group: list[Image], version: Version = MAX_VERSION
) -> dict[str, Any]:
    tags, digests = repo_tags_digests(svc, group)
    c = img.config
    cfg = dict(c.get("config") or {})
    _, created = _image_created(img)
    size = svc.unpacked_size(img) or img.size
    config: dict[str, Any] = {
        **(_CONTAINER_ONLY_CONFIG if version < (1, 50) else {}),
        "User": cfg.get("User") or "",
        "ExposedPorts": cfg.get("ExposedPorts"),
        "Env": cfg.get("Env"),
        "Cmd": cfg.get("Cmd"),
        "Healthcheck": cfg.get("Healthcheck"),
        "Volumes": cfg.get("Volumes"),
        "WorkingDir": cfg.get("WorkingDir") or "",
        "Entrypoint": cfg.get("Entrypoint"),
        "OnBuild": cfg.get("OnBuild"),
        "Labels": cfg.get("Labels"),
        "StopSignal": cfg.get("StopSignal"),
    }
    if version >= (1, 50):
        # what the OCI image config omits when empty, dockerd omits from 1.50 on
        config = {k: v for k, v in config.items() if v not in (None, "")}
    out: dict[str, Any] = {
        "Id": img.id,
        "RepoTags": tags,
        "RepoDigests": digests,
        "Parent": "",
        "Comment": "",
        "Created": created,
    }
    if version < (1, 45):
        # the legacy builder's last step container, gone in 1.45
        out["Container"] = str(c.get("container") or "")
        out["ContainerConfig"] = _container_config(c.get("container_config"))
    out.update(
        {
            "DockerVersion": str(c.get("docker_version") or ""),
            "Author": c.get("author") or "",
            "Config": config,
            "Architecture": c.get("architecture") or "",
            "Variant": c.get("variant") or "",
            "Os": c.get("os") or "linux",
            "Size": size,
            "GraphDriver": {"Name": "overlay2", "Data": None},
            "RootFS": {"Type": "layers", "Layers": list(img.diff_ids)},
            "Metadata": {"LastTagTime": rfc3339(img.updated or img.created)},
        }
    )
    if version < (1, 44):
        out["VirtualSize"] = size  # removed in 1.44
    out.update(_descriptor(img, version))
    return out


def _container_config(cc: Any) -> dict[str, Any]:
    cc = cc if isinstance(cc, dict) else {}
    keys = ("User", "ExposedPorts", "Env", "Cmd", "Volumes", "WorkingDir", "Entrypoint", "OnBuild", "Labels")
    return {
        **_CONTAINER_ONLY_CONFIG,
        **{k: cc.get(k) for k in keys},
        "WorkingDir": cc.get("WorkingDir") or "",
    }


# ---------------------------------------------------------------- volumes
def volume(v: dict[str, Any]) -> dict[str, Any]:
    return {
        "Name": v["name"],
        "Driver": v.get("driver") or "local",
        "Mountpoint": v["mountpoint"],
        "CreatedAt": rfc3339(v.get("created")).split(".")[0] + "Z",
        "Labels": v.get("labels") or {},
        "Scope": "local",
        "Options": v.get("options") or {},
    }


def _log_config(cfg: dict[str, Any]) -> dict[str, Any]:
    config = {}
    if cfg.get("log_max_file"):
        config["max-file"] = str(cfg["log_max_file"])
    if cfg.get("log_size_max"):
        config["max-size"] = str(cfg["log_size_max"])
    return {"Type": cfg.get("log_driver") or "json-file", "Config": config}
