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


def translate(body: dict[str, Any], name: str | None) -> dict[str, Any]:
    """A docker create body -> the podkit container options dict (CreateOptions.parse)."""
    try:
        return _translate(body, name)
    except (TypeError, ValueError, AttributeError, KeyError) as e:
        # A field of the wrong JSON type deep in the body (docker answers 400 "cannot
        # unmarshal"): the readers check the common ones by name, this the rest
        # (found by tests/test_fuzz.py: HostConfig.Memory ":", NetworkingConfig "0").
        raise InvalidArgument(
            f"invalid container config: a field has the wrong type or value ({e})"
        ) from None


def _translate(body: dict[str, Any], name: str | None) -> dict[str, Any]:
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
    try:
        o.update(_process(body))
        o.update(_resources(hc))
        o.update(_mounts(body, hc))
        o.update(_networking(body, hc))
        o.update(_security(hc))
        o.update(_health(body.get("Healthcheck")))
        o.update(_passed(hc))
    except (TypeError, ValueError, AttributeError, KeyError) as e:
        # A field of the wrong JSON type deep in the body (docker answers 400 "cannot
        # unmarshal"); the readers above check the common ones by name, this the rest.
        raise InvalidArgument(
            f"invalid container config: a field has the wrong type or value ({e})"
        ) from None
    return o


def _health(health: object) -> dict[str, Any]:
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
    if body.get("MacAddress"):
        o["mac_address"] = str(body["MacAddress"])  # API < 1.44: the first network's
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


def _mounts(body: dict[str, Any], hc: dict[str, Any]) -> dict[str, Any]:
    volumes = list(_str_list(hc.get("Binds"), "HostConfig.Binds") or [])
    mounts: list[dict[str, Any]] = []
    for m in hc.get("Mounts") or []:
        mounts.append(_mount(m))
    tmpfs = []
    t = hc.get("Tmpfs") or {}
    if not isinstance(t, dict):
        raise InvalidArgument("HostConfig.Tmpfs must map paths to options")
    for path, opts in t.items():
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


def _mount(m: Any) -> dict[str, Any]:
    if not isinstance(m, dict):
        raise InvalidArgument(f"invalid HostConfig.Mounts entry {m!r}")
    typ = m.get("Type") or "volume"
    target = m.get("Target") or m.get("Destination")
    if not target:
        raise InvalidArgument(f"HostConfig.Mounts entry {m!r} has no Target")
    opts: list[str] = []
    if typ == "tmpfs":
        t = m.get("TmpfsOptions") or {}
        if t.get("SizeBytes"):
            opts.append(f"size={int(t['SizeBytes'])}")
        if t.get("Mode"):
            opts.append(f"mode={int(t['Mode']):o}")
    elif typ == "bind":
        b = m.get("BindOptions") or {}
        if b.get("Propagation"):
            prop = str(b["Propagation"])
            if prop not in ("private", "rprivate", "shared", "rshared", "slave", "rslave"):
                raise InvalidArgument(f"HostConfig.Mounts: invalid BindOptions.Propagation {prop!r}")
            opts.append(prop)
        if b.get("CreateMountpoint") or b.get("NonRecursive"):
            raise _unsupported("HostConfig.Mounts", "BindOptions", b)
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
            raise _unsupported("HostConfig.Mounts", "VolumeOptions.Subpath", v["Subpath"])
    else:
        raise InvalidArgument(f"unsupported mount type {typ!r}: use bind, volume or tmpfs")
    return {
        "type": typ,
        "target": str(target),
        "source": str(m.get("Source") or ("tmpfs" if typ == "tmpfs" else "")),
        "readonly": bool(m.get("ReadOnly")),
        "options": opts,
    }


def _networking(body: dict[str, Any], hc: dict[str, Any]) -> dict[str, Any]:
    o: dict[str, Any] = {}
    mode = str(hc.get("NetworkMode") or "default")
    if body.get("NetworkDisabled"):
        mode = "none"
    endpoints = (body.get("NetworkingConfig") or {}).get("EndpointsConfig") or {}
    if not isinstance(endpoints, dict):
        raise InvalidArgument("NetworkingConfig.EndpointsConfig must be an object")
    extra: list[str] = []
    for net, ep in endpoints.items():
        if mode in ("default", "bridge") and net not in ("bridge", "default"):
            mode = net
        elif net != mode and net not in ("bridge", "default"):
            extra.append(net)  # docker run --network a --network b (API 1.44+)
        ep = ep or {}
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
        # Aliases (compose gives every container its service name) are names on a
        # user network; docker ignores them on the default bridge, and so do we.
        if net == mode and net not in ("bridge", "default"):
            aliases = ep.get("Aliases") or []
            if not isinstance(aliases, list):
                raise InvalidArgument("NetworkingConfig.EndpointsConfig.Aliases must be a list")
            if aliases:
                o["network_aliases"] = [str(a) for a in aliases]
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
