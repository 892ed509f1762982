"""A container's OCI spec, built at each start from its image config and its options.

The bundle gets the container's own /etc/hosts, /etc/resolv.conf and /etc/hostname
(unless a pod gives the first two), bind-mounted into the rootfs; volumes are seeded
from the image's content at their mount point on first use, as docker does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any

from podkit.containers import links, subpaths
from podkit.containers.context import LABEL_NAMESPACE, ContainerContext
from podkit.containers.create import command_of
from podkit.containers.networking import Namespaces
from podkit.containers.option_runtime import THROTTLE_KEYS
from podkit.containers.options import CreateOptions, Mount, merge_env
from podkit.containers.rootfs import resolve_user, secure_join
from podkit.containers.store import Record
from podkit.errors import InvalidArgument, NotFound

if TYPE_CHECKING:
    from podkit.runtime.spec import Resources

_PROPAGATION = ("private", "rprivate", "shared", "rshared", "slave", "rslave")
User = tuple[int, int, list[int], str]  # uid, gid, supplementary gids, home


async def build(
    ctx: ContainerContext,
    rec: Record,
    opts: CreateOptions,
    cfg: dict[str, Any],
    rootfs: Path,
    nss: Namespaces,
    netinfo: dict[str, Any],
) -> dict[str, Any]:
    from podkit.runtime import spec as S

    hostname = opts.hostname or rec.id[:12]
    if (opts.network == "host" and not opts.hostname) or opts.uts == "host":
        hostname = os.uname().nodename
    linked = links.resolve(ctx, rec, opts)
    groups = [str(g) for g in opts.group_add]
    user = await asyncio.to_thread(resolve_user, rootfs, opts.user or cfg.get("User") or "", groups)
    mounts = _etc_files(ctx.bundle(rec.id), opts, hostname, netinfo, links.hosts_entries(linked))
    for n, m in enumerate(opts.mounts):
        mounts.append(await _mount_spec(ctx, rec, m, rootfs, n))
    workdir = opts.workdir or cfg.get("WorkingDir") or "/"
    if workdir != "/":
        _make_workdir(rootfs, workdir, user)
    so = S.SpecOptions(
        rootfs=str(rootfs),
        args=command_of(opts, cfg),
        env=_environment(opts, cfg, hostname, user, links.environment(rec, opts, linked)),
        cwd=workdir,
        user=S.User(uid=user[0], gid=user[1], additional_gids=sorted(set(user[2]) - {user[1]})),
        terminal=opts.tty,
        hostname=hostname,
        domainname=opts.domainname,
        readonly_rootfs=opts.read_only,
        mounts=mounts,
        cap_add=opts.cap_add,
        cap_drop=opts.cap_drop,
        privileged=opts.privileged,
        seccomp=_seccomp(ctx.bundle(rec.id), opts),
        no_new_privileges=opts.no_new_privileges,
        devices=[S.Device(d["host"], d["container"], d["permissions"]) for d in opts.devices],
        device_rules=[_device_rule(r) for r in opts.device_cgroup_rules],
        resources=_resources(opts),
        init=opts.init,
        namespaces=nss,
        shm_path=_shm_path(ctx, rec, opts),
        sysctls=opts.sysctls,
        shm=opts.ipc != "none",
        cgroups_path=cgroups_path(ctx, rec, opts),
        annotations={"podkit/name": rec.name, **opts.annotations},
        labels=opts.labels,
        oom_score_adj=opts.oom_score_adj,
        masked_paths=opts.masked_paths,
        readonly_paths=opts.readonly_paths,
    )
    if opts.shm_size:
        so.shm_size = opts.shm_size
    return S.build_spec(so)


def _shm_path(ctx: ContainerContext, rec: Record, opts: CreateOptions) -> str | None:
    """A shared IPC namespace comes with its /dev/shm: the host's, or the one a
    shareable container keeps in its bundle (start.py), its own or the donor's."""
    if opts.ipc == "host":
        return "/dev/shm"
    if opts.ipc == "shareable":
        return str(ctx.bundle(rec.id) / "shm")
    if opts.ipc.startswith("container:"):
        return str(ctx.bundle(opts.ipc.split(":", 1)[1]) / "shm")
    return opts.shm_path


def _resources(opts: CreateOptions) -> Resources:
    from podkit.runtime import spec as S

    res = S.Resources(
        memory=opts.memory,
        memory_swap=opts.memory_swap,
        memory_reservation=opts.memory_reservation,
        cpus=opts.cpus,
        cpu_shares=opts.cpu_shares,
        pids_limit=opts.pids_limit,
        ulimits=[S.Ulimit(n, s, h) for n, s, h in opts.ulimits],
        cpu_quota=opts.cpu_quota,
        cpuset_cpus=opts.cpuset_cpus,
        cpuset_mems=opts.cpuset_mems,
    )
    if opts.cpu_period:
        res.cpu_period = opts.cpu_period
    res.blkio_weight = opts.blkio_weight
    res.blkio_weight_device = [_device_value(d) for d in opts.blkio_weight_device]
    for key, oci in zip(THROTTLE_KEYS, S.THROTTLE_FIELDS, strict=True):
        res.throttle[oci] = [_device_value(d) for d in getattr(opts, key)]
    res.oom_kill_disable = opts.oom_kill_disable
    res.memory_swappiness = opts.memory_swappiness
    return res


def _device_value(entry: str) -> tuple[int, int, int]:
    """``PATH:VALUE`` with the block device's numbers as they are now."""
    path, _, value = entry.rpartition(":")
    try:
        st = os.stat(path)
    except OSError as e:
        raise InvalidArgument(f"block device {path}: {e.strerror}") from None
    if not stat.S_ISBLK(st.st_mode):
        raise InvalidArgument(f"{path} is not a block device")
    return os.major(st.st_rdev), os.minor(st.st_rdev), int(value)


def _device_rule(rule: str) -> dict[str, Any]:
    """``c 1:3 mr`` as an OCI device cgroup rule (``a`` and ``*`` are any)."""
    kind, numbers, access = rule.split()
    major, minor = numbers.split(":")
    out: dict[str, Any] = {"allow": True, "type": kind, "access": access}
    if major != "*":
        out["major"] = int(major)
    if minor != "*":
        out["minor"] = int(minor)
    return out


def _environment(
    opts: CreateOptions, cfg: dict[str, Any], hostname: str, user: User, linked: list[str]
) -> list[str]:
    # docker puts the links' variables first: the image's and the user's win over them
    env = merge_env(merge_env(linked, cfg.get("Env") or []), opts.env)
    if not any(e.startswith("HOME=") for e in env):
        env.append(f"HOME={user[3]}")
    if opts.tty and not any(e.startswith("TERM=") for e in env):
        env.append("TERM=xterm")
    env.append(f"HOSTNAME={hostname}")
    return env


def _etc_files(
    bundle: Path,
    opts: CreateOptions,
    hostname: str,
    netinfo: dict[str, Any],
    linked: list[tuple[str, str]],
) -> list[dict[str, Any]]:
    """/etc/hosts, /etc/resolv.conf, /etc/hostname: generated per container unless a pod gives them."""
    from podkit.network import dns

    hosts = opts.hosts_file
    if not hosts:
        extra = linked + [dns.parse_add_host(h) for h in opts.add_hosts]
        p = bundle / "hosts"
        if opts.network == "host":
            p.write_text(Path("/etc/hosts").read_text() if Path("/etc/hosts").exists() else "")
        else:
            p.write_text(dns.hosts_file(hostname, netinfo.get("ip"), extra))
        hosts = str(p)
    resolv = opts.resolv_file
    if not resolv:
        p = bundle / "resolv.conf"
        # On a user network aardvark-dns on the gateway answers the other members'
        # names and forwards the rest to the host's resolvers; --dns bypasses it.
        server = netinfo.get("dns_server")
        p.write_text(
            dns.resolv_conf(
                opts.dns or ([server] if server else None), opts.dns_search or None, opts.dns_options or None
            )
        )
        resolv = str(p)
    (bundle / "hostname").write_text(hostname + "\n")
    return [
        {
            "destination": dst,
            "type": "bind",
            "source": src,
            "options": ["rbind", "rprivate"] + (["ro"] if opts.read_only else []),
        }
        for dst, src in (
            ("/etc/hosts", hosts),
            ("/etc/resolv.conf", resolv),
            ("/etc/hostname", str(bundle / "hostname")),
        )
    ]


def _make_workdir(rootfs: Path, workdir: str, user: User) -> None:
    """docker creates a missing working directory in the rootfs, owned by the user."""
    # Best effort, as docker's: a read-only or odd rootfs gets the runtime's error at start.
    with contextlib.suppress(OSError):
        target = secure_join(rootfs, workdir)
        if not target.exists():
            target.mkdir(parents=True, exist_ok=True)
            os.chown(target, user[0], user[1])


def _seccomp(bundle: Path, opts: CreateOptions) -> str:
    if opts.seccomp_profile is not None and opts.seccomp not in ("default", "unconfined"):
        # the profile as it was at create time: the user's file may be gone or changed since
        p = bundle / "seccomp.json"
        p.write_text(json.dumps(opts.seccomp_profile))
        return str(p)
    return opts.seccomp


def cgroups_path(ctx: ContainerContext, rec: Record, opts: CreateOptions) -> str:
    parent = opts.cgroup_parent or ctx.cfg.get("cgroup_parent") or "/podkit"
    return f"{parent.rstrip('/')}/{rec.id}"


async def _image_view(ctx: ContainerContext, rec: Record, m: Mount, n: int) -> Path:
    """An image mount: the image's read-only view, kept under image_key until removal."""
    key = subpaths.image_key(rec.id, n)
    if not ctx.snapshots.exists(key):
        try:
            image = ctx.images.get(rec.namespace, m.source)
        except NotFound:
            raise NotFound(f"image mount at {m.target}: no such image {m.source}") from None
        if image.chain_id is None:
            raise InvalidArgument(f"image mount at {m.target}: image {m.source[:19]} has no layers")
        labels = {"podkit/container": rec.id, LABEL_NAMESPACE: rec.namespace}
        await asyncio.to_thread(ctx.snapshots.view, key, image.chain_id, labels)
    mounts = ctx.snapshots.mounts(key)
    return await asyncio.to_thread(subpaths.stage_mounts, ctx.state_dir, rec.id, n, mounts)


async def _mount_spec(ctx: ContainerContext, rec: Record, m: Mount, rootfs: Path, n: int) -> dict[str, Any]:
    ro = (["rro"] if "rro" in m.options and m.type != "tmpfs" else ["ro"]) if m.readonly else []
    if m.type == "tmpfs":
        o = [x for x in m.options if x != "ro"]
        if not any(x.startswith("mode=") for x in o):
            o.append("mode=1777")
        return {
            "destination": m.target,
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "nodev", *o, *ro],
        }
    if m.type == "image":
        return {
            "destination": m.target,
            "type": "bind",
            "source": str(await _image_view(ctx, rec, m, n)),
            "options": ["rbind", "rprivate", "ro"],
        }
    if m.type == "volume":
        src = ctx.volumes.path(rec.namespace, m.source)
        sub = subpaths.of(m.options)
        if sub is not None:
            # the part of the volume found now, pinned (subpaths.py); no seeding, as docker
            staged = await asyncio.to_thread(subpaths.stage, ctx.state_dir, rec.id, n, src, sub, m.source)
            return {
                "destination": m.target,
                "type": "bind",
                "source": str(staged),
                "options": ["rbind", "rprivate", *ro],
            }
        if "nocopy" not in m.options:
            # Seeding is a convenience: a mount point the image does not have, or cannot
            # be resolved inside the rootfs, leaves the volume as it is.
            with contextlib.suppress(OSError, InvalidArgument):
                await ctx.volumes.seed(rec.namespace, m.source, secure_join(rootfs, m.target))
        return {
            "destination": m.target,
            "type": "bind",
            "source": str(src),
            "options": ["rbind", "rprivate", *ro],
        }
    prop = [x for x in m.options if x in _PROPAGATION]
    return {
        "destination": m.target,
        "type": "bind",
        "source": m.source,
        "options": ["rbind", *(prop or ["rprivate"]), *ro],
    }
