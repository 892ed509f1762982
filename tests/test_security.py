"""Adversarial tests across layers: confinement of a real container, `cp` through
container symlinks that point at host paths, hostile image archives, names used in
paths, nonsense mount and device options.

Layer-level path escapes (tar members with ``..``, symlink and hard-link tricks,
whiteouts) are covered in tests/test_unpack.py; this file attacks through the API,
as a user of the daemon would.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from podkit import errors
from tests.helpers import Daemon

# Docker's default capability set (CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID SETUID
# SETPCAP NET_BIND_SERVICE NET_RAW SYS_CHROOT MKNOD AUDIT_WRITE SETFCAP), as a mask.
DOCKER_DEFAULT_CAPS = "00000000a80425fb"


def _tar(*members: tuple[str, str, bytes | str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, kind, payload in members:
            ti = tarfile.TarInfo(name)
            if kind == "sym":
                ti.type, ti.linkname = tarfile.SYMTYPE, str(payload)
                tf.addfile(ti)
            elif kind == "lnk":
                ti.type, ti.linkname = tarfile.LNKTYPE, str(payload)
                tf.addfile(ti)
            elif kind == "dir":
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
                tf.addfile(ti)
            else:
                data = payload if isinstance(payload, bytes) else payload.encode()
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def _sha(b: bytes) -> str:
    return "sha256:" + hashlib.sha256(b).hexdigest()


@pytest.fixture
def d(daemon: Daemon, busybox_image: str) -> Iterator[Daemon]:
    yield daemon
    c = daemon.client()
    for ctr in c.containers.list(all=True):
        c.containers.remove(ctr.id, force=True)


def _sh(daemon: Daemon, script: str, **opts: Any) -> str:
    r = daemon.client().containers.run(
        "busybox", ["sh", "-c", script], detach=False, auto_remove=True, **opts
    )
    assert r.exit_code == 0, (r.exit_code, r.output)
    return r.output.decode()


# -- confinement -----------------------------------------------------------------------

_PROBE = r"""
grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status
echo timers=$(wc -c < /proc/timer_list) keys=$(wc -c < /proc/keys) firmware=$(ls /sys/firmware | wc -l)
echo x > /proc/sys/kernel/domainname 2>/dev/null && echo procsys=rw || echo procsys=ro
echo 1 > /proc/sysrq-trigger 2>/dev/null && echo sysrq=rw || echo sysrq=ro
mount -t tmpfs none /mnt 2>/dev/null && echo mount=yes || echo mount=no
echo pids=$(ls -d /proc/[0-9]* | wc -l)
echo hostpid=$(test -e /proc/HOSTPID/cmdline && cat /proc/HOSTPID/cmdline | tr '\0' ' ' | grep -c podkitd)
echo devs=$(ls /dev | wc -l)
"""


def _probe(d: Daemon, **opts: Any) -> dict[str, str]:
    assert d.proc is not None
    out = _sh(d, _PROBE.replace("HOSTPID", str(d.proc.pid)), **opts)
    facts: dict[str, str] = {}
    for line in out.split("\n"):
        for word in line.replace(":\t", "=").split():
            k, _, v = word.partition("=")
            facts[k] = v
    return facts


def test_a_default_container_is_confined_and_privileged_is_not(d: Daemon) -> None:
    f = _probe(d)
    assert f["Seccomp"] == "2"  # filter mode: the default profile is loaded
    assert f["NoNewPrivs"] == "1"
    assert f["CapEff"] == DOCKER_DEFAULT_CAPS
    # masked (/proc/kcore does not exist on this kernel; /proc/timer_list does)
    assert Path("/proc/timer_list").stat().st_mode and f["timers"] == "0"
    assert (f["keys"], f["firmware"]) == ("0", "0")
    assert f["procsys"] == "ro" and f["sysrq"] == "ro"
    assert f["mount"] == "no"
    # its own pid namespace: sh, the probe's children; never the host's daemon
    assert int(f["pids"]) < 6 and f["hostpid"] in ("", "0")
    assert int(f["devs"]) < 20

    p = _probe(d, privileged=True)
    host_bnd = Path("/proc/self/status").read_text().split("CapBnd:\t")[1][:16]
    assert p["CapEff"] == host_bnd and p["Seccomp"] == "0"
    assert p["mount"] == "yes"
    assert int(p["devs"]) > int(f["devs"])  # the host's devices
    # privileged still gets its own pid namespace
    assert int(p["pids"]) < 6 and p["hostpid"] in ("", "0")


def test_cap_drop_all_and_no_new_privileges_hold_for_setuid_binaries(d: Daemon) -> None:
    f = _probe(d, cap_drop=["ALL"])
    assert f["CapEff"] == "0000000000000000" and f["NoNewPrivs"] == "1"


# -- cp through symlinks that name host paths ---------------------------------------------


def test_cp_never_reads_or_writes_the_host_through_container_symlinks(d: Daemon, workdir: Path) -> None:
    host = workdir / "host-secrets"
    host.mkdir()
    (host / "secret").write_text("host-only\n")
    c = d.client()
    c.containers.run("busybox", ["sleep", "300"], name="cpsym", init=True)
    # Symlinks in the container naming host paths, as an image or the container's own
    # process could make them: absolute to a host dir, to /, relative climbing out.
    c.containers.put_archive(
        "cpsym",
        "/tmp",
        _tar(
            ("abs", "sym", str(host)),
            ("root", "sym", "/"),
            ("climb", "sym", "../../../../../../" + str(host)),
            ("file", "sym", str(host / "secret")),
        ),
    )

    # Copy OUT: each resolves inside the container, where nothing of the host exists.
    for path in ("/tmp/abs/secret", "/tmp/root" + str(host / "secret"), "/tmp/climb/secret"):
        with pytest.raises(errors.NotFound):
            c.containers.get_archive("cpsym", path)
    # A link named as the source is copied as the link (docker's cp), or with follow_link
    # (cp -L) followed inside the container: either way the host file is never read.
    data, stat = c.containers.get_archive("cpsym", "/tmp/file")
    assert stat["link_target"] == str(host / "secret") and b"host-only" not in data
    with pytest.raises(errors.NotFound):
        c.containers.get_archive("cpsym", "/tmp/file", follow_link=True)

    # Copy IN to a destination that is such a link: never lands on the host.
    before = sorted(os.listdir(host))
    for dest in ("/tmp/root" + str(workdir), "/tmp/climb"):
        with pytest.raises(errors.NotFound):  # no such directory inside the container
            c.containers.put_archive("cpsym", dest, _tar(("planted", "file", b"x")))
    # an archive that makes a link to the host and then writes through it
    c.containers.put_archive("cpsym", "/tmp", _tar(("via", "sym", str(host)), ("via/planted", "file", b"x")))
    # a hard link to a host file (absolute, or through a symlink the archive made)
    with pytest.raises(errors.UnsafeContent):
        c.containers.put_archive("cpsym", "/tmp", _tar(("hl", "lnk", str(host / "secret"))))
    c.containers.put_archive("cpsym", "/tmp", _tar(("s", "sym", str(host / "secret"))))
    with pytest.raises(errors.PodkitError):
        c.containers.put_archive("cpsym", "/tmp", _tar(("hl2", "lnk", "s")))
    assert sorted(os.listdir(host)) == before
    assert (host / "secret").read_text() == "host-only\n"
    assert os.stat(host / "secret").st_nlink == 1  # nothing hard-linked to it
    # what was written through "via" stayed inside the destination (links in the archive
    # resolve inside the destination directory)
    r = c.containers.exec("cpsym", ["find", "/tmp", "-name", "planted", "-type", "f"])
    assert r.stdout.decode().strip() == "/tmp" + str(host / "planted")


# -- names used in paths ------------------------------------------------------------------


@pytest.mark.parametrize("name", ["../x", "a/b", "..", ".", "-x", "x" * 300, "a\nb", "a\x00b", "é"])
def test_names_that_could_be_paths_are_refused(daemon: Daemon, name: str) -> None:
    c = daemon.client()
    for create in (c.volumes.create, c.networks.create, c.pods.create):
        with pytest.raises(errors.InvalidArgument):
            create(name)
    with pytest.raises(errors.InvalidArgument):
        c.containers.create("nonexistent-image", ["true"], name=name)
    assert c.volumes.list() == [] and c.pods.list() == []
    assert [n.name for n in c.networks.list()] == ["podkit"]


# -- mount and device options -------------------------------------------------------------


@pytest.mark.parametrize(
    "opts",
    [
        {"volumes": ["/nonexistent-podkit-src:/x"]},
        {"volumes": ["/etc:relative"]},
        {"volumes": ["/etc:/x:ro,nonsense"]},
        {"volumes": ["a:b:c:d"]},
        {"tmpfs": ["relative"]},
        {"tmpfs": ["/x:mode=abc"]},
        {"tmpfs": ["/x:size=-5"]},
        {"devices": ["/dev/nonexistent-podkit"]},
        {"devices": ["relative"]},
        {"devices": ["/dev/null:/dev/x:rwz"]},
        {"devices": ["/etc/passwd"]},
    ],
)
def test_bad_mount_and_device_options_are_refused_at_create(d: Daemon, opts: dict[str, Any]) -> None:
    c = d.client()
    with pytest.raises(errors.InvalidArgument):
        c.containers.create("busybox", ["true"], **opts)
    assert c.containers.list(all=True) == []


# -- hostile image archives (podkit load) ------------------------------------------------

_LAYER = _tar(("hello", "file", b"hi\n"))
_CFG = json.dumps(
    {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [_sha(_LAYER)]}}
).encode()
_MF = json.dumps(
    {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": _sha(_CFG),
            "size": len(_CFG),
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": _sha(_LAYER),
                "size": len(_LAYER),
            }
        ],
    }
).encode()


def _docker(manifest: Any, *extra: tuple[str, str, bytes | str], cfg: bytes = _CFG) -> bytes:
    return _tar(
        ("manifest.json", "file", json.dumps(manifest).encode()),
        ("c.json", "file", cfg),
        ("l.tar", "file", _LAYER),
        *extra,
    )


def _oci(index: Any, *blobs: tuple[str, str, bytes | str]) -> bytes:
    return _tar(
        ("oci-layout", "file", b'{"imageLayoutVersion":"1.0.0"}'),
        ("index.json", "file", json.dumps(index).encode()),
        *blobs,
    )


def _index(digest: str, size: int = len(_MF)) -> dict[str, Any]:
    return {
        "schemaVersion": 2,
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "size": size}
        ],
    }


_GOOD_BLOBS = [(f"blobs/sha256/{_sha(b)[7:]}", "file", b) for b in (_CFG, _LAYER, _MF)]

_HOSTILE: dict[str, bytes] = {
    "config path climbs": _docker([{"Config": "../../../../etc/shadow", "Layers": ["l.tar"]}]),
    "config path absolute": _docker([{"Config": "/etc/shadow", "Layers": ["l.tar"]}]),
    "layer path absolute": _docker([{"Config": "c.json", "Layers": ["/etc/shadow"]}]),
    "config symlink to host": _docker(
        [{"Config": "s.json", "Layers": ["l.tar"]}], ("s.json", "sym", "/etc/shadow")
    ),
    "config symlink climbs": _docker(
        [{"Config": "s.json", "Layers": ["l.tar"]}], ("s.json", "sym", "../../../../etc/shadow")
    ),
    "layer hard link to host": _docker(
        [{"Config": "c.json", "Layers": ["h.tar"]}], ("h.tar", "lnk", "/etc/shadow")
    ),
    "config path is a number": _docker([{"Config": 1, "Layers": ["l.tar"]}]),
    "layer path is a number": _docker([{"Config": "c.json", "Layers": [1]}]),
    "manifest is an object": _docker({"Config": "c.json", "Layers": ["l.tar"]}),
    "config is a list": _docker([{"Config": "c.json", "Layers": []}], cfg=b"[1]"),
    "rootfs is a string": _docker([{"Config": "c.json", "Layers": ["l.tar"]}], cfg=b'{"rootfs": "x"}'),
    "diff id names a path": _docker(
        [{"Config": "c.json", "Layers": ["l.tar"]}],
        cfg=b'{"rootfs": {"diff_ids": ["sha256:../../../../etc"]}}',
    ),
    "diff id wrong": _docker(
        [{"Config": "c.json", "Layers": ["l.tar"]}],
        cfg=json.dumps({"rootfs": {"diff_ids": [_sha(b"x")]}}).encode(),
    ),
    "oci digest climbs": _oci(_index("sha256:../../../../etc/shadow"), *_GOOD_BLOBS),
    "oci blob differs from its digest": _oci(
        _index(_sha(_MF), len(_MF) + 1),
        *_GOOD_BLOBS[:2],
        (f"blobs/sha256/{_sha(_MF)[7:]}", "file", _MF + b" "),
    ),
    "oci blob symlink to host": _oci(
        _index(_sha(_MF)), (f"blobs/sha256/{_sha(_MF)[7:]}", "sym", "/etc/passwd")
    ),
    "oci manifest not JSON": _oci(_index(_sha(b"xx"), 2), (f"blobs/sha256/{_sha(b'xx')[7:]}", "file", b"xx")),
    "oci index is a list": _oci([], *_GOOD_BLOBS),
    "oci manifests are numbers": _oci({"manifests": [1]}, *_GOOD_BLOBS),
}


def test_hostile_archives_are_refused_and_leave_nothing(daemon: Daemon) -> None:
    c = daemon.client()
    blobs = daemon.root / "content" / "blobs" / "sha256"
    before = set(os.listdir(blobs))
    shadow = os.stat("/etc/shadow")
    for what, data in _HOSTILE.items():
        with pytest.raises(errors.PodkitError) as e:
            c.images.load(io.BytesIO(data))
        assert e.value.status < 500 or isinstance(e.value, errors.DigestMismatch), (what, e.value)
        assert c.images.list() == [], what
    # nothing of the host was read into the store, nothing touched
    for name in set(os.listdir(blobs)) - before:
        assert (blobs / name).read_bytes() != Path("/etc/shadow").read_bytes()
    assert os.stat("/etc/shadow").st_mtime == shadow.st_mtime
    assert list((daemon.root / "content" / "ingest").iterdir()) == []
    # the well-formed archive the hostile ones were made from loads
    assert c.images.load(io.BytesIO(_oci(_index(_sha(_MF)), *_GOOD_BLOBS)))


# -- what a container leaves behind -------------------------------------------------------


def test_a_container_cannot_make_itself_unremovable_with_a_deep_tree(d: Daemon) -> None:
    # Deeper than Python's recursion limit: a recursive delete of the container's
    # writable layer would fail (RecursionError, a 500) and leave it behind for good.
    c = d.client()
    deep = "i=0; while [ $i -lt 1500 ]; do mkdir d; cd d; i=$((i+1)); done; touch leaf"
    r = c.containers.run(
        "busybox",
        ["sh", "-c", f"({deep}) && cd /data && {deep}"],
        detach=False,
        name="deep",
        volumes=["deepvol:/data"],
    )
    assert r.exit_code == 0, r.output
    c.containers.remove("deep", force=True)  # its writable layer
    assert c.containers.list(all=True) == []
    c.volumes.remove("deepvol")  # and a volume
    assert c.volumes.list() == []
    assert not list((d.root / "volumes").rglob("leaf"))


def test_cp_out_of_a_deep_tree_is_whole_or_an_error(d: Daemon) -> None:
    c = d.client()
    r = c.containers.run(
        "busybox",
        ["sh", "-c", "cd /tmp; i=0; while [ $i -lt 1100 ]; do mkdir d; cd d; i=$((i+1)); done; touch leaf"],
        detach=False,
        name="deepcp",
    )
    assert r.exit_code == 0
    try:
        data, _ = c.containers.get_archive("deepcp", "/tmp/d")
    except (errors.PodkitError, OSError, ValueError):
        return  # refusing is fine; a silent partial copy is not
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        names = tf.getnames()
    assert len(names) == 1101 and names[-1].endswith("/leaf")


def _image_archive(tag: str, config: Any, tarball: Path) -> bytes:
    layer = tarball.read_bytes()
    cfg = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": config,
            "rootfs": {"type": "layers", "diff_ids": [_sha(layer)]},
        }
    ).encode()
    return _tar(
        (
            "manifest.json",
            "file",
            json.dumps([{"Config": "c.json", "Layers": ["l.tar"], "RepoTags": [tag]}]).encode(),
        ),
        ("c.json", "file", cfg),
        ("l.tar", "file", layer),
    )


@pytest.mark.parametrize(
    "config",
    [
        {"Volumes": {"/../../../etc/podkit-sec-pwn": {}}, "Cmd": ["true"]},
        {"WorkingDir": "/../../../tmp/podkit-sec-pwn", "Cmd": ["true"]},
        {"WorkingDir": "relative", "Cmd": ["true"]},
        {"User": "99999999999", "Cmd": ["true"]},
        {"Env": ["=x"], "Cmd": ["true"]},
        {"StopSignal": "SIGNOPE", "ExposedPorts": {"abc/tcp": {}}, "Labels": {"a": 1}, "Cmd": ["true"]},
    ],
)
def test_odd_image_configs_run_confined_or_are_refused(
    daemon: Daemon, busybox_tarball: Path, config: dict[str, Any]
) -> None:
    c = daemon.client()
    c.images.load(io.BytesIO(_image_archive("odd:1", config, busybox_tarball)))
    try:
        r = c.containers.run("odd:1", detach=False, auto_remove=True)
        assert r.exit_code == 0
    except errors.PodkitError as e:
        assert e.status < 500, e
    finally:
        for x in c.containers.list(all=True):
            c.containers.remove(x.id, force=True)
    assert not Path("/etc/podkit-sec-pwn").exists() and not Path("/tmp/podkit-sec-pwn").exists()


@pytest.mark.parametrize("config", [["x"], {"Cmd": [1, 2]}])
def test_image_configs_of_the_wrong_shape_are_a_clear_400(
    daemon: Daemon, busybox_tarball: Path, config: Any
) -> None:
    c = daemon.client()
    try:
        # Refused when the image is loaded or, at the latest, when it is used.
        with pytest.raises(errors.InvalidArgument):
            c.images.load(io.BytesIO(_image_archive("shape:1", config, busybox_tarball)))
            c.containers.create("shape:1")
            c.containers.start(c.containers.list(all=True)[0].id)
    finally:
        for x in c.containers.list(all=True):
            c.containers.remove(x.id, force=True)


def test_the_store_is_not_readable_by_other_users(daemon: Daemon) -> None:
    # Container configs in metadata.db hold environment values; blobs may be private images.
    daemon.client().volumes.create("touch-the-db")
    for p in (daemon.root / "metadata.db", daemon.root / "metadata.db-wal"):
        if p.exists():
            assert os.stat(p).st_mode & 0o077 == 0, (p, oct(os.stat(p).st_mode))
    assert os.stat(daemon.root / "content").st_mode & 0o077 == 0
