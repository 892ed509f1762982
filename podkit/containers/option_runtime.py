"""The parsers of the docker run flags that shape the runtime beyond the common ones:
the UTS, cgroup and user namespaces, legacy links, the MAC address, block I/O and OOM
settings, device cgroup rules, the cgroup parent; and the flags podkit refuses, or
takes and discards with a warning where docker does too (option_table.py ``TABLE``
runs them).

Where the host's cgroups cannot apply a limit (spec_host's ``*_support``), the limit is
discarded with docker's warning (``CreateOptions.warnings``), as dockerd does; a value
that can never be right is refused with ``InvalidArgument``.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from podkit.containers.parsers import NAME_RE, items, parse_int, parse_size, strings
from podkit.errors import InvalidArgument
from podkit.runtime import spec_host

if TYPE_CHECKING:
    from podkit.containers.options import CreateOptions

Body = Mapping[str, Any]

_MAC_RE = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")
_CGROUP_PARENT_RE = re.compile(r"^/?[A-Za-z0-9_.@-]+(/[A-Za-z0-9_.@-]+)*/?$")
_DEVICE_RULE_RE = re.compile(r"^([acb]) (\*|\d+):(\*|\d+) ([rwm]{1,3})$")
# --device-read-bps and friends: body key -> (what, takes a size unit)
THROTTLE_KEYS = {
    "device_read_bps": ("--device-read-bps", True),
    "device_write_bps": ("--device-write-bps", True),
    "device_read_iops": ("--device-read-iops", False),
    "device_write_iops": ("--device-write-iops", False),
}


def namespaces(o: CreateOptions, body: Body) -> None:
    """``--uts host``, ``--cgroupns host|private``, ``--userns host`` (the only user
    namespace podkit has: its containers run as the host's root, as docker's do unless
    dockerd itself runs with userns-remap)."""
    uts = body.get("uts") or ""
    if uts not in ("", "host"):
        raise InvalidArgument(f"invalid --uts {uts!r}: want host (unset: its own)")
    o.uts = "host" if uts == "host" else ""
    if o.uts and (o.hostname or o.domainname):
        raise InvalidArgument("conflicting options: hostname and the UTS mode (--uts host takes the host's)")
    if o.uts and o.network.startswith("container:"):
        raise InvalidArgument("conflicting options: --uts host and --network container:")
    cgns = body.get("cgroupns") or ""
    if cgns not in ("", "host", "private"):
        raise InvalidArgument(f"invalid --cgroupns {cgns!r}: want host or private")
    o.cgroupns = str(cgns)
    userns = body.get("userns") or ""
    if userns not in ("", "host"):
        raise InvalidArgument(
            f"--userns {userns!r} is not supported: podkit has no user namespace remapping, "
            "its containers always use the host's user namespace (--userns host)"
        )
    if o.domainname and (o.pod or "uts" in o.namespaces):
        raise InvalidArgument("--domainname cannot be combined with --pod: the pod's UTS namespace is shared")
    if (o.uts or o.cgroupns) and (o.pod or o.namespaces):
        raise InvalidArgument(
            "--uts/--cgroupns cannot be combined with --pod: the pod's namespaces are shared"
        )


def cgroup_parent(o: CreateOptions, body: Body) -> None:
    """``--cgroup-parent``: a cgroup path (relative ones start at the hierarchy's root)."""
    v = body.get("cgroup_parent")
    if not v:
        return
    if not isinstance(v, str) or not _CGROUP_PARENT_RE.fullmatch(v) or ".." in v.split("/"):
        raise InvalidArgument(f"invalid --cgroup-parent {v!r}: want a cgroup path such as /mygroup")
    if o.pod:
        raise InvalidArgument("--cgroup-parent cannot be combined with --pod: the pod's cgroup is the parent")
    o.cgroup_parent = "/" + v.strip("/")


def links(o: CreateOptions, body: Body) -> None:
    """``--link NAME[:ALIAS]`` (docker's API form ``/name:/me/alias`` too), kept as
    ``name:alias`` and resolved at each start (spec.py): the linked container must run."""
    out: list[str] = []
    for v in strings(body.get("links"), "links"):
        name, _, alias = v.partition(":")
        name = name.lstrip("/")
        alias = alias.rsplit("/", 1)[-1] if alias else name
        if not NAME_RE.fullmatch(name) or not NAME_RE.fullmatch(alias):
            raise InvalidArgument(f"invalid --link {v!r}: want NAME[:ALIAS]")
        out.append(f"{name}:{alias}")
    if out and (o.network in ("host", "none", "pod") or o.network.startswith("container:") or o.pod):
        raise InvalidArgument(f"conflicting options: --link cannot be used with network mode {o.network!r}")
    o.links = out


def mac_address(o: CreateOptions, body: Body) -> None:
    v = body.get("mac_address")
    if not v:
        return
    if not isinstance(v, str) or not _MAC_RE.fullmatch(v):
        raise InvalidArgument(f"invalid --mac-address {v!r}: want six hex bytes such as 92:d0:c6:0a:29:33")
    if int(v[:2], 16) & 1:
        raise InvalidArgument(f"invalid --mac-address {v!r}: a multicast address")
    if o.network in ("host", "none", "pod") or o.network.startswith("container:"):
        raise InvalidArgument(f"conflicting options: --mac-address and network mode {o.network!r}")
    o.mac_address = v.lower()


def _block_device(path: object, flag: str) -> str:
    if not isinstance(path, str) or not path.startswith("/"):
        raise InvalidArgument(f"invalid {flag} {path!r}: want an absolute device path")
    try:
        st = os.stat(path)
    except OSError as e:
        raise InvalidArgument(f"invalid {flag}: {path}: {e.strerror}") from None
    if not stat.S_ISBLK(st.st_mode):
        raise InvalidArgument(f"invalid {flag}: {path} is not a block device")
    return path


def _device_pairs(body: Body, key: str, flag: str) -> list[tuple[str, object]]:
    """``PATH:VALUE`` strings, or ``{"path", "value"}`` objects (the Docker API's shape
    after create.py: Path with Rate or Weight)."""
    out: list[tuple[str, object]] = []
    for e in items(body.get(key), key):
        if isinstance(e, dict):
            out.append((_block_device(e.get("path"), flag), e.get("value")))
            continue
        path, sep, value = str(e).rpartition(":")
        if not sep or not value:
            raise InvalidArgument(f"invalid {flag} {e!r}: want DEVICE_PATH:VALUE")
        out.append((_block_device(path, flag), value))
    return out


def block_io(o: CreateOptions, body: Body) -> None:
    """``--blkio-weight``, ``--blkio-weight-device``, ``--device-{read,write}-{bps,iops}``."""
    support = spec_host.blkio_support()
    w = body.get("blkio_weight")
    if w not in (None, "", 0, "0"):
        weight = parse_int(w, "blkio weight", 10, 1000)
        if support["weight"]:
            o.blkio_weight = weight
        else:
            o.warnings.append(
                "Your kernel does not support Block I/O weight or the cgroup is not mounted. "
                "Weight discarded."
            )
    wd = []
    for path, v in _device_pairs(body, "blkio_weight_device", "--blkio-weight-device"):
        wd.append(f"{path}:{parse_int(v, 'blkio weight of ' + path, 10, 1000)}")
    if wd and not support["weight_device"]:
        o.warnings.append(
            "Your kernel does not support Block I/O weight_device or the cgroup is not mounted. "
            "Weight-device discarded."
        )
        wd = []
    o.blkio_weight_device = wd
    for key, (flag, sized) in THROTTLE_KEYS.items():
        out = []
        for path, v in _device_pairs(body, key, flag):
            rate = parse_size(v, f"{flag} rate") if sized else parse_int(v, f"{flag} rate", 0, 1 << 62)
            out.append(f"{path}:{rate}")
        if out and not support["throttle"]:
            o.warnings.append(
                f"Your kernel does not support {flag} or the cgroup is not mounted. {flag} discarded."
            )
            out = []
        setattr(o, key, out)


def memory_extras(o: CreateOptions, body: Body) -> None:
    """``--oom-kill-disable``, ``--memory-swappiness``, ``--kernel-memory`` (after the
    memory limit is known)."""
    if body.get("oom_kill_disable"):
        if not spec_host.oom_kill_disable_support():
            o.warnings.append("Your kernel does not support OomKillDisable. OomKillDisable discarded.")
        else:
            o.oom_kill_disable = True
            if not o.memory:
                o.warnings.append(
                    "OOM killer is disabled for the container, but no memory limit is set, "
                    "this can result in the system running out of resources."
                )
    sw = body.get("memory_swappiness")
    if sw not in (None, "", -1, "-1"):
        value = parse_int(sw, "memory swappiness", 0, 100)
        if spec_host.swappiness_support():
            o.memory_swappiness = value
        else:
            o.warnings.append(
                "Your kernel does not support memory swappiness capabilities or the cgroup is not mounted. "
                "Memory swappiness discarded."
            )
    if body.get("kernel_memory") not in (None, "", 0, "0"):
        parse_size(body["kernel_memory"], "kernel memory")  # still refused when malformed, as docker
        o.warnings.append(
            "Specifying a kernel memory limit is deprecated and will be removed in a future release. "
            "Kernel memory limit discarded."
        )


def device_cgroup_rules(o: CreateOptions, body: Body) -> None:
    """``--device-cgroup-rule 'c 1:3 mr'``: TYPE MAJOR:MINOR ACCESS, ``*`` for any number."""
    out = []
    for r in strings(body.get("device_cgroup_rules"), "device_cgroup_rules"):
        rule = " ".join(r.split())
        m = _DEVICE_RULE_RE.fullmatch(rule)
        if not m or len(set(m.group(4))) != len(m.group(4)):
            raise InvalidArgument(
                f"invalid device cgroup rule {r!r}: want TYPE MAJOR:MINOR ACCESS, e.g. 'c 1:3 mr'"
            )
        out.append(rule)
    o.device_cgroup_rules = out


# Flags podkit cannot honour, refused naming the reason (body key -> message).
_REFUSED = {
    "gpus": "--gpus is not supported: podkit has no GPU device plugin (use --device for a device node)",
    "ip6": "--ip6 is not supported: podkit's networks are IPv4 only",
    "link_local_ips": "--link-local-ip is not supported: podkit's networks are IPv4 only, "
    "without link-local addresses",
    "storage_opt": "--storage-opt is not supported: podkit's overlay snapshots have no "
    "per-container size quota",
    "cpu_rt_period": "--cpu-rt-period is not supported: podkit gives its cgroups no real-time CPU budget",
    "cpu_rt_runtime": "--cpu-rt-runtime is not supported: podkit gives its cgroups no real-time CPU budget",
    "io_maxbandwidth": "invalid QoS settings: linux does not support --io-maxbandwidth (Windows only)",
    "io_maxiops": "invalid QoS settings: linux does not support --io-maxiops (Windows only)",
}
# Accepted and discarded with docker's warning: Windows-only limits.
_DISCARDED = {
    "cpu_count": "linux does not support CPU count. Count discarded.",
    "cpu_percent": "linux does not support CPU percent. Percent discarded.",
}


REFUSED_KEYS = (*_REFUSED, *_DISCARDED, "runtime", "isolation", "volume_driver")


def refused(o: CreateOptions, body: Body) -> None:
    """The flags above, ``--runtime`` other than runc, ``--isolation`` other than default,
    ``--volume-driver`` other than local."""
    for key, message in _REFUSED.items():
        if body.get(key) not in (None, "", 0, "0", [], {}):
            raise InvalidArgument(message)
    for key, message in _DISCARDED.items():
        if body.get(key) not in (None, "", 0, "0"):
            parse_int(body[key], key.replace("_", " "), 0, 1 << 20)
            o.warnings.append(message)
    rt = body.get("runtime") or "runc"
    if rt != "runc":
        raise InvalidArgument(f"unknown or invalid runtime name: {rt!r} (podkit runs containers with runc)")
    iso = body.get("isolation") or "default"
    if iso != "default":
        raise InvalidArgument(f"invalid isolation {iso!r}: linux only supports 'default'")
    vd = body.get("volume_driver") or "local"
    if vd != "local":
        raise InvalidArgument(f"unknown volume driver {vd!r}: only 'local' is available")
