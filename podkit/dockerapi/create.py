"""Docker's container create body (Config + HostConfig + NetworkingConfig) as
podkit's container options.

Fields podkit honours are translated; fields left at docker's zero value pass;
a field set to something podkit cannot do is refused with a 400 naming it, never
silently dropped, except where ignoring it changes nothing a container can observe
(the console size a tty is resized to anyway) or where dockerd discards it with a
warning too (a limit the host's cgroups cannot set, kernel memory: the reply's
``Warnings``, from ``CreateOptions.warnings``).
"""

from __future__ import annotations

from typing import Any

from podkit.containers import subpaths
from podkit.dockerapi.common import MAX_VERSION, Version
from podkit.errors import InvalidArgument

_UNSUPPORTED_CONFIG = ("OnBuild", "Shell")
# HostConfig fields passed as they are to the podkit option that takes (or refuses,
# or discards with a warning) them: option_runtime.py says what each does.
_PASSED = {
    "UTSMode": "uts",
    "UsernsMode": "userns",
    "CgroupnsMode": "cgroupns",
    "Runtime": "runtime",
    "Isolation": "isolation",
    "VolumeDriver": "volume_driver",
    "OomKillDisable": "oom_kill_disable",
    "MemorySwappiness": "memory_swappiness",
    "KernelMemory": "kernel_memory",
    "BlkioWeight": "blkio_weight",
    "DeviceCgroupRules": "device_cgroup_rules",
    "CpuRealtimePeriod": "cpu_rt_period",
    "CpuRealtimeRuntime": "cpu_rt_runtime",
    "CpuCount": "cpu_count",
    "CpuPercent": "cpu_percent",
    "IOMaximumIOps": "io_maxiops",
    "IOMaximumBandwidth": "io_maxbandwidth",
    "StorageOpt": "storage_opt",
    "Links": "links",
    "DeviceRequests": "gpus",  # docker run --gpus: refused with the reason
}
# HostConfig's per-device lists ([{Path, Rate}] or [{Path, Weight}]).
_DEVICE_LISTS = {
    "BlkioWeightDevice": ("blkio_weight_device", "Weight"),
    "BlkioDeviceReadBps": ("device_read_bps", "Rate"),
    "BlkioDeviceWriteBps": ("device_write_bps", "Rate"),
    "BlkioDeviceReadIOps": ("device_read_iops", "Rate"),
    "BlkioDeviceWriteIOps": ("device_write_iops", "Rate"),
}


def _set(v: Any) -> bool:
    """Is a docker field given a value other than its zero value?"""
    return v not in (None, "", 0, False, [], {})


def _unsupported(where: str, name: str, value: Any) -> InvalidArgument:
    return InvalidArgument(f"{where}.{name} is not supported by podkit yet (got {value!r})")


def _str_list(v: Any, what: str) -> list[str] | None:
    if v is None:
        return None
    if isinstance(v, str):
        return [v]
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise InvalidArgument(f"{what} must be a list of strings")
    return list(v)


def translate(
    body: dict[str, Any],
    name: str | None,
    version: Version = MAX_VERSION,
    warnings: list[str] | None = None,
) -> dict[str, Any]:
    """A docker create body, as API ``version`` reads it, -> the podkit container
    options dict (CreateOptions.parse); dockerd's own warnings go to ``warnings``."""
    try:
        return _Translation(body, version, [] if warnings is None else warnings).options(name)
    except (TypeError, ValueError, AttributeError, KeyError) as e:
        # A field of the wrong JSON type deep in the body (docker answers 400 "cannot
        # unmarshal"): the readers check the common ones by name, this the rest
        # (found by tests/test_fuzz.py: HostConfig.Memory ":", NetworkingConfig "0").
        raise InvalidArgument(
            f"invalid container config: a field has the wrong type or value ({e})"
        ) from None


class _Translation:
    """One create body read as its API version reads it (the version steps are in
    docs/docker.md, "API versions")."""

    def __init__(self, body: dict[str, Any], version: Version, warnings: list[str]) -> None:
        self.body = body
        self.version = version
        self.warnings = warnings

    def options(self, name: str | None) -> dict[str, Any]:
        body = self.body
        hc = body.get("HostConfig") or {}
        if not isinstance(hc, dict):
            raise InvalidArgument("HostConfig must be an object")
        image = body.get("Image")
        if not image or not isinstance(image, str):
            raise InvalidArgument("Config.Image is required")
        for f in _UNSUPPORTED_CONFIG:
            if _set(body.get(f)):
                raise _unsupported("Config", f, body[f])
        o: dict[str, Any] = {"image": image}
        if name:
            o["name"] = name
        o.update(_process(body))
        o.update(_resources(hc))
        o.update(_mounts(body, hc, self))
        o.update(_networking(body, hc, self))
        o.update(_security(hc))
        o.update(_health(body.get("Healthcheck"), self.version))
        o.update(_passed(hc))
        return o


def _health(health: object, version: Version) -> dict[str, Any]:
    """Config.Healthcheck (durations in nanoseconds); Test ["NONE"] turns the image's off."""
    if not isinstance(health, dict) or not health.get("Test"):
        return {}
    test = health["Test"]
    if test == ["NONE"]:
        return {"no_healthcheck": True}
    if isinstance(test, list) and test and test[0] == "CMD-SHELL" and len(test) == 2:
        test = test[1]
    ns = {
        "interval": "Interval",
        "timeout": "Timeout",
        "start_period": "StartPeriod",
        "start_interval": "StartInterval",
    }
    if version < (1, 44):
        del ns["start_interval"]  # added in 1.44: older clients' bodies do not mean it
    out: dict[str, Any] = {"test": test, "retries": health.get("Retries") or None}
    for key, field in ns.items():
        v = health.get(field) or 0
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise InvalidArgument(f"Config.Healthcheck.{field} must be a duration in nanoseconds")
        out[key] = v / 1e9
    return {"healthcheck": out}


def _passed(hc: dict[str, Any]) -> dict[str, Any]:
    """The fields podkit's own options take as they are, and the per-device lists."""
    o = {key: hc[f] for f, key in _PASSED.items() if _set(hc.get(f))}
    if isinstance(o.get("storage_opt"), dict):
        o["storage_opt"] = [f"{k}={v}" for k, v in o["storage_opt"].items()]
    for f, (key, value) in _DEVICE_LISTS.items():
        entries = hc.get(f) or []
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise InvalidArgument(f"HostConfig.{f} must be a list of {{Path, {value}}} objects")
        if entries:
            o[key] = [{"path": e.get("Path"), "value": e.get(value)} for e in entries]
    annotations = hc.get("Annotations") or {}
    if not isinstance(annotations, dict):
        raise InvalidArgument("HostConfig.Annotations must be an object of strings")
    if annotations:
        o["annotations"] = {str(k): str(v) for k, v in annotations.items()}
    return o


def _process(body: dict[str, Any]) -> dict[str, Any]:
    o: dict[str, Any] = {}
    cmd = _str_list(body.get("Cmd"), "Cmd")
    if cmd is not None:
        o["cmd"] = cmd
    ep = body.get("Entrypoint")
    if ep is not None:
        eps = _str_list(ep, "Entrypoint") or []
        o["entrypoint"] = "" if eps in ([], [""]) else eps
    if body.get("Env"):
        o["env"] = _str_list(body["Env"], "Env")
    for src, dst in (("User", "user"), ("WorkingDir", "workdir"), ("Hostname", "hostname")):
        if body.get(src):
            o[dst] = str(body[src])
    if body.get("Domainname"):
        o["domainname"] = str(body["Domainname"])
    if body.get("Labels"):
        if not isinstance(body["Labels"], dict):
            raise InvalidArgument("Labels must be an object of strings")
        o["labels"] = {str(k): str(v) for k, v in body["Labels"].items()}
    if body.get("StopSignal"):
        o["stop_signal"] = str(body["StopSignal"])
    if body.get("StopTimeout") is not None:
        o["stop_timeout"] = body["StopTimeout"]
    o["tty"] = bool(body.get("Tty"))
    o["open_stdin"] = bool(body.get("OpenStdin"))
    if o["open_stdin"]:
        # docker run -i: the container's stdin closes when the first attach ends;
        # with a tty it stays open (docker closes it only without one).
        o["stdin_once"] = bool(body.get("StdinOnce")) and not o["tty"]
    return o


def _resources(hc: dict[str, Any]) -> dict[str, Any]:
    o: dict[str, Any] = {}
    if _set(hc.get("Memory")):
        o["memory"] = int(hc["Memory"])
    if _set(hc.get("MemorySwap")):
        o["memory_swap"] = int(hc["MemorySwap"])
    if _set(hc.get("MemoryReservation")):
        o["memory_reservation"] = int(hc["MemoryReservation"])
    for src, dst in (("PidMode", "pid"), ("IpcMode", "ipc")):
        if _set(hc.get(src)):
            o[dst] = str(hc[src])
    sysctls = hc.get("Sysctls") or {}
    if not isinstance(sysctls, dict):
        raise InvalidArgument("HostConfig.Sysctls must map names to values")
    if sysctls:
        o["sysctls"] = {str(k): str(v) for k, v in sysctls.items()}
    if _set(hc.get("NanoCpus")):
        o["cpus"] = int(hc["NanoCpus"]) / 1e9
    else:
        if _set(hc.get("CpuQuota")):
            o["cpu_quota"] = int(hc["CpuQuota"])
        if _set(hc.get("CpuPeriod")):
            o["cpu_period"] = int(hc["CpuPeriod"])
    for src, dst in (("CpusetCpus", "cpuset_cpus"), ("CpusetMems", "cpuset_mems")):
        if _set(hc.get(src)):
            o[dst] = str(hc[src])
    if _set(hc.get("OomScoreAdj")):
        o["oom_score_adj"] = int(hc["OomScoreAdj"])
    groups = _str_list(hc.get("GroupAdd"), "HostConfig.GroupAdd") or []
    if groups:
        o["group_add"] = [int(g) if g.isdigit() else g for g in groups]
    for src, dst in (("MaskedPaths", "masked_paths"), ("ReadonlyPaths", "readonly_paths")):
        if hc.get(src) is not None:
            o[dst] = _str_list(hc[src], f"HostConfig.{src}")
    if _set(hc.get("CpuShares")):
        o["cpu_shares"] = int(hc["CpuShares"])
    if _set(hc.get("PidsLimit")):
        o["pids_limit"] = int(hc["PidsLimit"])
    ulimits = []
    for u in hc.get("Ulimits") or []:
        if not isinstance(u, dict) or not u.get("Name"):
            raise InvalidArgument(f"invalid HostConfig.Ulimits entry {u!r}")
        ulimits.append(f"{u['Name']}={int(u.get('Soft', 0))}:{int(u.get('Hard', 0))}")
    if ulimits:
        o["ulimits"] = ulimits
    devices = []
    for d in hc.get("Devices") or []:
        if not isinstance(d, dict) or not d.get("PathOnHost"):
            raise InvalidArgument(f"invalid HostConfig.Devices entry {d!r}")
        host = d["PathOnHost"]
        devices.append(f"{host}:{d.get('PathInContainer') or host}:{d.get('CgroupPermissions') or 'rwm'}")
    if devices:
        o["devices"] = devices
    if _set(hc.get("ShmSize")):
        o["shm_size"] = int(hc["ShmSize"])
    if hc.get("Init"):
        o["init"] = True
    if hc.get("CgroupParent"):
        o["cgroup_parent"] = str(hc["CgroupParent"])
    log_cfg = hc.get("LogConfig") or {}
    if not isinstance(log_cfg, dict):
        raise InvalidArgument("HostConfig.LogConfig must be an object")
    if log_cfg.get("Type"):
        if log_cfg["Type"] not in ("json-file", "local", "k8s-file"):
            raise InvalidArgument(
                f"HostConfig.LogConfig.Type {log_cfg['Type']!r} is not supported by podkit: its logs are "
                "a file read back through the API (json-file, local, k8s-file)"
            )
        o["log_driver"] = log_cfg["Type"]
    if log_cfg.get("Config"):
        o["log_opts"] = log_cfg["Config"]
    return o


def _mounts(body: dict[str, Any], hc: dict[str, Any], t: _Translation) -> dict[str, Any]:
    volumes = list(_str_list(hc.get("Binds"), "HostConfig.Binds") or [])
    if t.version >= (1, 44):
        # 1.44: read-only binds are recursively read-only (runc's rro), as dockerd makes
        # them where the kernel and runtime can; older clients keep non-recursive ones.
        volumes = [_recursive_ro_bind(v) for v in volumes]
    mounts: list[dict[str, Any]] = []
    for m in hc.get("Mounts") or []:
        mounts.append(_mount(m, t))
    if t.version >= (1, 48) and hc.get("VolumeDriver") and any(m["type"] == "volume" for m in mounts):
        t.warnings.append(
            "WARNING: the container-wide volume-driver configuration is ignored for volumes specified "
            "via 'mount'. Use '--mount type=volume,volume-driver=...' instead"
        )
    tmpfs = []
    tm = hc.get("Tmpfs") or {}
    if not isinstance(tm, dict):
        raise InvalidArgument("HostConfig.Tmpfs must map paths to options")
    for path, opts in tm.items():
        tmpfs.append(f"{path}:{opts}" if opts else str(path))
    targets = {v.split(":")[1] if ":" in v else v for v in volumes}
    targets |= {m["target"] for m in mounts} | {x.split(":")[0] for x in tmpfs}
    # Config.Volumes are anonymous volumes, unless a bind or mount covers the path.
    for path in body.get("Volumes") or {}:
        if path not in targets:
            volumes.append(str(path))
    o: dict[str, Any] = {}
    if volumes:
        o["volumes"] = volumes
    if mounts:
        o["mounts"] = mounts
    if tmpfs:
        o["tmpfs"] = tmpfs
    return o


def _recursive_ro_bind(spec: str) -> str:
    parts = spec.split(":")
    if len(parts) == 3 and "ro" in parts[2].split(","):
        return f"{spec},rro"
    return spec


def _bind_options(b: Any, readonly: bool, t: _Translation) -> list[str]:
    if not isinstance(b, dict):
        raise InvalidArgument("HostConfig.Mounts: BindOptions must be an object")
    opts: list[str] = []
    if b.get("Propagation"):
        prop = str(b["Propagation"])
        if prop not in ("private", "rprivate", "shared", "rshared", "slave", "rslave"):
            raise InvalidArgument(f"HostConfig.Mounts: invalid BindOptions.Propagation {prop!r}")
        opts.append(prop)
    if b.get("CreateMountpoint") or b.get("NonRecursive"):
        raise _unsupported("HostConfig.Mounts", "BindOptions", b)
    non_recursive, force = bool(b.get("ReadOnlyNonRecursive")), bool(b.get("ReadOnlyForceRecursive"))
    if t.version < (1, 44):
        if force:
            raise InvalidArgument("BindOptions.ReadOnlyForceRecursive needs API v1.44 or newer")
        return opts  # read-only binds were not recursive before 1.44
    if non_recursive and force:
        raise InvalidArgument("mount options conflict: ReadOnlyNonRecursive && ReadOnlyForceRecursive")
    if (non_recursive or force) and not readonly:
        raise InvalidArgument("HostConfig.Mounts: BindOptions.ReadOnly*Recursive needs ReadOnly: true")
    if readonly and not non_recursive:
        opts.append("rro")  # runc 1.1+ on Linux 5.12+: what this host has (docs/docker.md)
    return opts


def _mount(m: Any, t: _Translation) -> dict[str, Any]:
    if not isinstance(m, dict):
        raise InvalidArgument(f"invalid HostConfig.Mounts entry {m!r}")
    typ = m.get("Type") or "volume"
    target = m.get("Target") or m.get("Destination")
    if not target:
        raise InvalidArgument(f"HostConfig.Mounts entry {m!r} has no Target")
    for f, own in (
        ("VolumeOptions", "volume"),
        ("BindOptions", "bind"),
        ("TmpfsOptions", "tmpfs"),
        ("ImageOptions", "image"),
    ):
        if m.get(f) is not None and typ != own and t.version >= (1, 42):
            raise InvalidArgument(f"{f} must not be specified on mount type {typ!r}")
    readonly = bool(m.get("ReadOnly"))
    opts: list[str] = []
    if typ == "tmpfs":
        tm = m.get("TmpfsOptions") or {}
        if tm.get("SizeBytes"):
            opts.append(f"size={int(tm['SizeBytes'])}")
        if tm.get("Mode"):
            opts.append(f"mode={int(tm['Mode']):o}")
        opts.extend(_tmpfs_options(tm.get("Options"), t))
    elif typ == "bind":
        opts.extend(_bind_options(m.get("BindOptions") or {}, readonly, t))
    elif typ == "volume":
        v = m.get("VolumeOptions") or {}
        if v.get("NoCopy"):
            opts.append("nocopy")
        driver = v.get("DriverConfig") or {}
        if (driver.get("Name") or "local") != "local":
            raise _unsupported("HostConfig.Mounts", "VolumeOptions.DriverConfig", driver)
        if _set(driver.get("Options")):
            raise InvalidArgument(
                f"HostConfig.Mounts: VolumeOptions.DriverConfig.Options: the local driver takes no options "
                f"(got {driver['Options']!r})"
            )
        if _set(v.get("Subpath")):
            if t.version < (1, 45):
                raise InvalidArgument("VolumeOptions.Subpath needs API v1.45 or newer")
            if not m.get("Source"):
                raise InvalidArgument("HostConfig.Mounts: must not set Subpath when using anonymous volumes")
            sub = v["Subpath"]
            if not isinstance(sub, str):
                raise InvalidArgument("HostConfig.Mounts: VolumeOptions.Subpath must be a string")
            opts.append(subpaths.OPTION + subpaths.check(sub))
        if readonly and t.version >= (1, 44):
            opts.append("rro")  # a volume is a bind too: dockerd makes it recursively read-only
    elif typ == "image":
        if t.version < (1, 48):
            raise InvalidArgument('Mount type "Image" needs API v1.48 or newer')
        if not m.get("Source"):
            raise InvalidArgument(f"HostConfig.Mounts: the image mount at {target} names no image (Source)")
        io = m.get("ImageOptions") or {}
        if not isinstance(io, dict):
            raise InvalidArgument("HostConfig.Mounts: ImageOptions must be an object")
        if _set(io.get("Subpath")):
            raise _unsupported("HostConfig.Mounts", "ImageOptions.Subpath", io["Subpath"])
        readonly = True  # the container's create resolves Source to the image's ID
    else:
        raise InvalidArgument(f"unsupported mount type {typ!r}: use bind, volume or tmpfs")
    return {
        "type": typ,
        "target": str(target),
        "source": str(m.get("Source") or ("tmpfs" if typ == "tmpfs" else "")),
        "readonly": readonly,
        "options": opts,
    }


def _tmpfs_options(raw: Any, t: _Translation) -> list[str]:
    """TmpfsOptions.Options (API 1.46): ``[["exec"]]``; dockerd allows exec and noexec."""
    if not raw or t.version < (1, 46):
        return []
    if not isinstance(raw, list):
        raise InvalidArgument(
            "HostConfig.Mounts: TmpfsOptions.Options must be a list of [name] or [name, value]"
        )
    out = []
    for opt in raw:
        if not isinstance(opt, list) or not 1 <= len(opt) <= 2 or not all(isinstance(x, str) for x in opt):
            raise InvalidArgument("HostConfig.Mounts: TmpfsOptions.Options: invalid option array length")
        if opt[0] not in ("exec", "noexec"):
            raise InvalidArgument(f"HostConfig.Mounts: TmpfsOptions.Options: invalid option: {opt[0]}")
        out.append("=".join(opt))
    return out


_ENDPOINT_SYSCTLS = "com.docker.network.endpoint.sysctls"


def _interface_sysctl(key: str) -> bool:
    """net.*.*.ethN.*: a sysctl of one interface (docker's per-endpoint ones since 1.46)."""
    spl = key.split(".", 4)
    return len(spl) == 5 and spl[0] == "net" and spl[3].startswith("eth")


def _networking(body: dict[str, Any], hc: dict[str, Any], t: _Translation) -> dict[str, Any]:
    o: dict[str, Any] = {}
    mode = str(hc.get("NetworkMode") or "default")
    if body.get("NetworkDisabled"):
        mode = "none"
    endpoints = (body.get("NetworkingConfig") or {}).get("EndpointsConfig") or {}
    if not isinstance(endpoints, dict):
        raise InvalidArgument("NetworkingConfig.EndpointsConfig must be an object")
    if len(endpoints) > 1 and t.version < (1, 44):
        raise InvalidArgument(
            "Container cannot be created with multiple network endpoints: " + ", ".join(endpoints)
        )
    endpoints = {k: dict(v or {}) for k, v in endpoints.items()}
    if not isinstance(mode, str) or not all(isinstance(v, dict) for v in endpoints.values()):
        raise InvalidArgument("NetworkingConfig.EndpointsConfig entries must be objects")
    _container_wide_mac(body, mode, endpoints, t)
    extra: list[str] = []
    sysctls: dict[str, str] = {}
    priorities: dict[str, int] = {}
    for net, ep in endpoints.items():
        if mode in ("default", "bridge") and net not in ("bridge", "default"):
            mode = net
        elif net != mode and net not in ("bridge", "default"):
            extra.append(net)  # docker run --network a --network b (API 1.44+)
        ipam = ep.get("IPAMConfig") or {}
        for f in ("IPv6Address", "LinkLocalIPs"):
            if _set(ipam.get(f)):
                raise _unsupported("NetworkingConfig.EndpointsConfig.IPAMConfig", f, ipam[f])
        if _set(ipam.get("IPv4Address")):
            if net != mode:
                raise _unsupported(
                    "NetworkingConfig.EndpointsConfig.IPAMConfig", "IPv4Address (of a second network)", net
                )
            o["ip"] = str(ipam["IPv4Address"])
        if _set(ep.get("Links")):
            raise _unsupported("NetworkingConfig.EndpointsConfig", "Links", ep["Links"])
        if _set(ep.get("MacAddress")):  # API 1.44's place for it
            if net != mode and not {net, mode} <= {"bridge", "default"}:
                raise _unsupported(
                    "NetworkingConfig.EndpointsConfig", "MacAddress (of a second network)", net
                )
            o["mac_address"] = str(ep["MacAddress"])
        if t.version >= (1, 48) and _set(ep.get("GwPriority")):
            gw = ep["GwPriority"]
            if not isinstance(gw, int) or isinstance(gw, bool):
                raise InvalidArgument("NetworkingConfig.EndpointsConfig.GwPriority must be an integer")
            priorities[net] = gw
        driver_opts = ep.get("DriverOpts") or {}
        if not isinstance(driver_opts, dict):
            raise InvalidArgument("NetworkingConfig.EndpointsConfig.DriverOpts must be an object of strings")
        if driver_opts.get(_ENDPOINT_SYSCTLS) and t.version >= (1, 46):
            sysctls[net] = str(driver_opts[_ENDPOINT_SYSCTLS])
        # Aliases (compose gives every container its service name) are names on a
        # user network; docker ignores them on the default bridge, and so do we.
        if net == mode and net not in ("bridge", "default"):
            aliases = ep.get("Aliases") or []
            if not isinstance(aliases, list):
                raise InvalidArgument("NetworkingConfig.EndpointsConfig.Aliases must be a list")
            if aliases:
                o["network_aliases"] = [str(a) for a in aliases]
    o.update(_gateway_priority(mode, extra, priorities))
    o.update(_endpoint_sysctls(hc, mode, extra, sysctls, t))
    o["network"] = "bridge" if mode in ("default", "bridge") else mode
    if extra:
        o["networks"] = extra
    ports = []
    bindings = hc.get("PortBindings") or {}
    if not isinstance(bindings, dict):
        raise InvalidArgument("HostConfig.PortBindings must be an object")
    for key, binds in bindings.items():
        port, _, proto = str(key).partition("/")
        proto = proto or "tcp"
        for b in binds or [{}]:
            b = b or {}
            ip, hp = str(b.get("HostIp") or ""), str(b.get("HostPort") or "")
            if ip in ("0.0.0.0", "::"):
                ip = ""
            if ip:
                ports.append(f"{ip}:{hp}:{port}/{proto}")
            elif hp:
                ports.append(f"{hp}:{port}/{proto}")
            else:
                ports.append(f"{port}/{proto}")
    if ports:
        o["ports"] = ports
    if hc.get("PublishAllPorts"):
        o["publish_all"] = True
    exposed = body.get("ExposedPorts") or {}
    if not isinstance(exposed, dict):
        raise InvalidArgument("ExposedPorts must be an object of PORT/PROTO keys")
    if exposed:
        o["expose"] = [str(k) for k in exposed]
    if hc.get("Dns"):
        o["dns"] = _str_list(hc["Dns"], "HostConfig.Dns")
    if hc.get("DnsSearch"):
        o["dns_search"] = _str_list(hc["DnsSearch"], "HostConfig.DnsSearch")
    if hc.get("DnsOptions"):
        o["dns_options"] = _str_list(hc["DnsOptions"], "HostConfig.DnsOptions")
    if hc.get("ExtraHosts"):
        o["add_hosts"] = _str_list(hc["ExtraHosts"], "HostConfig.ExtraHosts")
    rp = hc.get("RestartPolicy") or {}
    name = str(rp.get("Name") or "no")
    if name != "no":
        n = int(rp.get("MaximumRetryCount") or 0)
        o["restart"] = f"{name}:{n}" if name == "on-failure" and n else name
    if hc.get("AutoRemove"):
        o["auto_remove"] = True
    if hc.get("VolumesFrom"):
        o["volumes_from"] = _str_list(hc["VolumesFrom"], "HostConfig.VolumesFrom")
    return o


def _container_wide_mac(
    body: dict[str, Any], mode: str, endpoints: dict[str, dict[str, Any]], t: _Translation
) -> None:
    """Config.MacAddress, the container's MAC before 1.44, into the main endpoint, as
    dockerd's handleMACAddressBC: before 1.44 an endpoint's MacAddress is ignored
    without it; from 1.44 on it is deprecated, said in a warning, and must agree."""
    mac = body.get("MacAddress")
    private = mode in ("default", "bridge") or not (mode in ("host", "none") or mode.startswith("container:"))
    main = "bridge" if mode == "default" else mode
    if t.version < (1, 44):
        if not mac:
            for ep in endpoints.values():
                ep.pop("MacAddress", None)
            return
        if not private:
            raise InvalidArgument("conflicting options: mac-address and the network mode")
        if not endpoints:
            endpoints[main] = {}
        next(iter(endpoints.values()))["MacAddress"] = mac
        return
    if not mac:
        return
    if private:
        ep = _main_endpoint(main, endpoints)
        if not ep.get("MacAddress"):
            ep["MacAddress"] = mac
        elif str(ep["MacAddress"]).lower() != str(mac).lower():
            raise InvalidArgument(
                "the container-wide MAC address must match the endpoint-specific MAC address for the "
                "main network, or be left empty"
            )
    t.warnings.append(
        "The container-wide MacAddress field is now deprecated. "
        "It should be specified in EndpointsConfig instead."
    )


def _main_endpoint(main: str, endpoints: dict[str, dict[str, Any]]) -> dict[str, Any]:
    if not endpoints:
        endpoints[main] = {}
    for name in (main, "default") if main == "bridge" else (main,):
        if name in endpoints:
            return endpoints[name]
    raise InvalidArgument(
        "unable to migrate container-wide MAC address to a specific network: HostConfig.NetworkMode "
        "must match the identity of a network in NetworkSettings.Networks"
    )


def _gateway_priority(mode: str, extra: list[str], priorities: dict[str, int]) -> dict[str, Any]:
    """EndpointsConfig.GwPriority (1.48): the network with the highest gives the default
    route. Ties go to the first network (dockerd sorts them by name instead)."""
    first = "bridge" if mode in ("default", "bridge") else mode
    out: dict[str, int] = {}
    for net, p in priorities.items():
        name = "bridge" if net in ("default", "bridge") and first == "bridge" else net
        if name in (first, *extra):
            out[name] = p
    return {"gw_priority": out} if out else {}


def _endpoint_sysctls(
    hc: dict[str, Any], mode: str, extra: list[str], per_endpoint: dict[str, str], t: _Translation
) -> dict[str, Any]:
    """Interface sysctls: the endpoints' ``com.docker.network.endpoint.sysctls`` (1.46,
    IFNAME standing for the interface: eth0 the first network's, eth1 the next...) and
    HostConfig.Sysctls naming ethN, which dockerd migrates to the first before 1.48 and
    refuses from 1.48 on."""
    top = hc.get("Sysctls") or {}
    if not isinstance(top, dict):
        raise InvalidArgument("HostConfig.Sysctls must map names to values")
    private = not (mode in ("host", "none") or mode.startswith("container:"))
    if t.version >= (1, 48) and private:
        for k in top:
            if _interface_sysctl(str(k)):
                raise InvalidArgument(
                    f"interface specific sysctl setting {str(k)!r} must be supplied using driver option "
                    f"'{_ENDPOINT_SYSCTLS}'"
                )
    if not per_endpoint:
        return {}
    if not private:
        raise InvalidArgument(f"{_ENDPOINT_SYSCTLS}: network mode {mode!r} has no endpoints")
    first = "bridge" if mode in ("default", "bridge") else mode
    order = [first, *extra]
    out: dict[str, str] = {}
    for net, value in per_endpoint.items():
        idx = order.index(first if net in ("default", "bridge") and first == "bridge" else net)
        for item in value.split(","):
            k, eq, v = item.strip().partition("=")
            sk = k.split(".")
            if not eq or len(sk) != 5 or sk[0] != "net":
                raise InvalidArgument(
                    f"invalid {_ENDPOINT_SYSCTLS} entry {item!r}: want net.X.Y.IFNAME.Z=VALUE"
                )
            # the fourth part names the interface, whatever it says (dockerd's setSysctls;
            # the docker CLI lowercases IFNAME)
            sk[3] = f"eth{idx}"
            out[".".join(sk)] = v
    return {"sysctls": {**{str(k): str(v) for k, v in top.items()}, **out}}


def _security(hc: dict[str, Any]) -> dict[str, Any]:
    o: dict[str, Any] = {}
    if hc.get("Privileged"):
        o["privileged"] = True
    if hc.get("ReadonlyRootfs"):
        o["read_only"] = True
    if hc.get("CapAdd"):
        o["cap_add"] = _str_list(hc["CapAdd"], "HostConfig.CapAdd")
    if hc.get("CapDrop"):
        o["cap_drop"] = _str_list(hc["CapDrop"], "HostConfig.CapDrop")
    if hc.get("SecurityOpt"):
        o["security_opt"] = _str_list(hc["SecurityOpt"], "HostConfig.SecurityOpt")
    return o
