"""What a user asks for when creating a container, parsed and validated.

The API takes docker-style strings (``-v host:/ctr:ro``, ``-p 8080:80``, ``--memory 64m``)
so that the CLI and the SDK share one parser, here in the daemon: bad input is
refused with an ``InvalidArgument`` that names the offending value, before anything
is created.

``CreateOptions.parse`` runs a table of small parsers (option_table.py ``TABLE``), one
per option or group of options that are checked together (``restart`` with
``auto_remove``, ``ports`` with ``network``...), in the order in which their errors are
reported. The value parsers (sizes, volumes, ports...) are in parsers.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any

from podkit.containers import option_table
from podkit.containers.option_table import KNOWN_KEYS, NETWORK_MODES
from podkit.containers.parsers import (
    NAME_RE,
    RESTART_POLICIES,
    VOLUME_NAME_RE,
    Mount,
    merge_env,
    parse_device,
    parse_env,
    parse_labels,
    parse_port,
    parse_restart,
    parse_signal,
    parse_size,
    parse_tmpfs,
    parse_ulimit,
    parse_volume,
    read_env_file,
    validate_name,
)
from podkit.errors import InvalidArgument

# The value parsers were here before parsers.py: importers keep finding them here.
__all__ = [
    "NAME_RE",
    "NETWORK_MODES",
    "RESTART_POLICIES",
    "VOLUME_NAME_RE",
    "KNOWN_KEYS",
    "CreateOptions",
    "Mount",
    "merge_env",
    "parse_device",
    "parse_env",
    "parse_labels",
    "parse_port",
    "parse_restart",
    "parse_signal",
    "parse_size",
    "parse_tmpfs",
    "parse_ulimit",
    "parse_volume",
    "read_env_file",
    "validate_name",
]


@dataclass
class CreateOptions:
    """Everything a container is created from; stored as JSON with the container."""

    image: str
    name: str | None = None
    cmd: list[str] | None = None
    entrypoint: list[str] | None = None
    env: list[str] = field(default_factory=list)
    workdir: str | None = None
    user: str | None = None
    hostname: str | None = None
    domainname: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    mounts: list[Mount] = field(default_factory=list)
    read_only: bool = False
    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    privileged: bool = False
    seccomp: str = "default"  # default | unconfined | custom | the host path a profile came from
    seccomp_profile: dict[str, Any] | None = None  # a custom profile's content, taken at create
    no_new_privileges: bool = True
    devices: list[dict[str, str]] = field(default_factory=list)
    memory: int | None = None
    memory_swap: int | None = None
    memory_reservation: int | None = None  # a soft limit: memory.low (v2), soft_limit_in_bytes (v1)
    cpus: float | None = None
    cpu_shares: int | None = None
    pids_limit: int | None = None
    ulimits: list[tuple[str, int, int]] = field(default_factory=list)
    init: bool = False
    restart: dict[str, Any] = field(default_factory=lambda: {"name": "no", "max_retries": 0})
    auto_remove: bool = False
    ports: list[dict[str, Any]] = field(default_factory=list)
    network: str = "bridge"
    healthcheck: dict[str, Any] | None = None  # {test, interval, timeout, retries, start_period}: health.py
    network_aliases: list[str] = field(default_factory=list)  # names on a user network, beside its own
    networks: list[str] = field(default_factory=list)  # more user networks (eth1...): --network repeated
    # network -> docker's GwPriority: the highest gives the default route (ties: the first)
    gw_priority: dict[str, int] = field(default_factory=dict)
    dns: list[str] = field(default_factory=list)
    dns_search: list[str] = field(default_factory=list)
    dns_options: list[str] = field(default_factory=list)
    add_hosts: list[str] = field(default_factory=list)
    stop_signal: int | None = None
    stop_timeout: int | None = None
    tty: bool = False
    open_stdin: bool = False
    log_size_max: int | None = None  # bytes per log file (--log-size-max, --log-opt max-size)
    log_max_file: int | None = None  # log files kept (--log-opt max-file): logrotate.py
    log_driver: str | None = None  # as given (json-file, local, k8s-file): the file is the same
    # For the pods layer (see hooks.py): ``pod`` is what the client named (podkit run
    # --pod), resolved by a ContainerHooks.before_create into the fields below.
    pod: str | None = None
    pod_id: str | None = None
    namespaces: dict[str, str] = field(default_factory=dict)
    cgroup_parent: str | None = None
    hosts_file: str | None = None
    resolv_file: str | None = None
    shm_path: str | None = None
    shm_size: int | None = None
    infra: bool = False
    # For the CRI front end (the kubelet's ContainerConfig); no docker flag sets these.
    log_path: str | None = None  # conmon writes the CRI log here instead of podkit's own
    stdin_once: bool | None = None  # None: stdin stays open for a tty only (docker)
    cpu_period: int | None = None
    cpu_quota: int | None = None
    cpuset_cpus: str | None = None
    cpuset_mems: str | None = None
    oom_score_adj: int | None = None  # clamped to what the host allows
    group_add: list[int | str] = field(default_factory=list)  # gids, or names looked up in /etc/group
    masked_paths: list[str] | None = None  # None: the runtime's defaults
    readonly_paths: list[str] | None = None
    # docker run flags resolved at create (create.py) or at each start (networking.py, spec.py)
    pid: str = ""  # "" (own) | host | container:ID
    ipc: str = (
        ""  # "" (own) | shareable (own, /dev/shm on the host) | none (no /dev/shm) | host | container:ID
    )
    sysctls: dict[str, str] = field(default_factory=dict)
    publish_all: bool = False  # -P: the image's ExposedPorts and --expose get host ports
    expose: list[str] = field(default_factory=list)  # "80/tcp"
    volumes_from: list[str] = field(default_factory=list)  # CONTAINER[:ro|rw], as given
    pull: str = "missing"  # always | missing | never
    platform: str | None = None  # only the host's is accepted
    ip: str | None = None  # a fixed address on the first user network
    # option_runtime.py's: namespaces, links, MAC, block I/O, OOM, device rules
    uts: str = ""  # "" (own) | host
    cgroupns: str = ""  # "" (docker's default: private on v2, host on v1) | host | private
    links: list[str] = field(default_factory=list)  # "name:alias", resolved at each start
    mac_address: str | None = None  # of the first network's interface
    blkio_weight: int | None = None
    blkio_weight_device: list[str] = field(default_factory=list)  # "PATH:WEIGHT"
    device_read_bps: list[str] = field(default_factory=list)  # "PATH:RATE", resolved at start
    device_write_bps: list[str] = field(default_factory=list)
    device_read_iops: list[str] = field(default_factory=list)
    device_write_iops: list[str] = field(default_factory=list)
    oom_kill_disable: bool = False
    memory_swappiness: int | None = None
    device_cgroup_rules: list[str] = field(default_factory=list)  # "c 1:3 mr"
    use_api_socket: bool = False  # the Docker API socket bound at create (create.py)
    # What create tells the client it discarded (docker's Warnings); not stored.
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """What dataclasses.asdict gives (without warnings; ulimits as lists) in a fifth
        of its time: asdict deep-copies each of ~100 values one by one."""
        d = {k: _plain(getattr(self, k)) for k in _STORED}
        d["ulimits"] = [list(u) for u in self.ulimits]
        return d

    @classmethod
    def from_stored(cls, d: dict[str, Any]) -> CreateOptions:
        """Rebuild from our own JSON (already validated; no re-parsing)."""
        d = dict(d)
        d["mounts"] = [Mount.from_dict(m) for m in d.get("mounts") or []]
        d["ulimits"] = [tuple(u) for u in d.get("ulimits") or []]
        known = set(cls.__dataclass_fields__) - {"warnings"}
        return cls(**{k: v for k, v in d.items() if k in known})

    @classmethod
    def parse(cls, body: dict[str, Any]) -> CreateOptions:
        """Validate an API request body (docker-style strings allowed) into options."""
        if not isinstance(body, dict):
            raise InvalidArgument("container options must be a JSON object")
        unknown = sorted(set(body) - option_table.KNOWN_KEYS)
        if unknown:
            raise InvalidArgument(f"unknown container option(s): {', '.join(unknown)}")
        image = body.get("image")
        if not image or not isinstance(image, str):
            raise InvalidArgument("an image is required")
        o = cls(image=image)
        for _keys, parse_group in option_table.TABLE:
            parse_group(o, body)
        return o


_STORED = tuple(f.name for f in fields(CreateOptions) if f.name != "warnings")
_ATOMS = frozenset((str, int, float, bool, type(None)))


def _plain(v: Any) -> Any:
    """A copy of ``v`` made of dicts, lists and tuples (dataclasses as dicts), as asdict
    makes: nothing of the options is shared with the stored form."""
    if type(v) in _ATOMS:
        return v
    if isinstance(v, list):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, tuple):
        return tuple(_plain(x) for x in v)
    if is_dataclass(v) and not isinstance(v, type):
        return {f.name: _plain(getattr(v, f.name)) for f in fields(v)}
    import copy

    return copy.deepcopy(v)
