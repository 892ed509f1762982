"""Image commands and API against a real podkitd: import, ls, inspect, tag, rmi, prune, GC."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import tarfile
from pathlib import Path

import pytest

from podkit import errors
from tests.fixtures.images import BUSYBOX_REF, tar_bytes
from tests.helpers import BIN, Daemon, wait_for


def blobs(d: Daemon) -> set[str]:
    p = d.root / "content" / "blobs" / "sha256"
    return set(os.listdir(p)) if p.exists() else set()


def snapshots(d: Daemon) -> list[tuple[str, str]]:
    con = sqlite3.connect(d.root / "metadata.db")
    try:
        return con.execute("SELECT key, kind FROM snapshots ORDER BY key").fetchall()
    finally:
        con.close()


def daemon_content(d: Daemon) -> object:
    from podkit.store import ContentStore

    return ContentStore(d.root)


def snapshot_dirs(d: Daemon) -> list[str]:
    base = d.root / "snapshots"
    return [f"{drv}/{n}" for drv in os.listdir(base) for n in os.listdir(base / drv) if not n.startswith(".")]


def test_import_ls_inspect(daemon: Daemon, busybox_image: str) -> None:
    assert busybox_image == BUSYBOX_REF
    r = daemon.cli("images", check=True)
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert lines[1].split()[:2] == ["busybox", "latest"]
    out = json.loads(daemon.cli("image", "inspect", "busybox", check=True).stdout)
    assert isinstance(out, list) and len(out) == 1
    info = out[0]
    assert info["RepoTags"] == ["busybox:latest"]
    assert info["Config"]["Cmd"] == ["sh"]
    assert info["Os"] == "linux" and len(info["RootFS"]["Layers"]) == 1
    assert info["Podkit"]["Unpacked"] is True
    short = info["Id"][7:19]
    # By short id, full id, name@digest: the same image.
    for ref in (short, info["Id"], info["Id"][7:], f"busybox@{info['Podkit']['Digest']}"):
        got = json.loads(daemon.cli("image", "inspect", ref, check=True).stdout)[0]
        assert got["Id"] == info["Id"], ref
    assert daemon.cli("images", "-q", check=True).stdout.split() == [short]
    r = daemon.cli("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}} {{.Size}}", check=True)
    assert r.stdout.split()[:2] == ["busybox:latest", short] and r.stdout.strip().endswith("MB")
    r = daemon.cli("images", "--format", "{{.Nope}}")
    assert r.returncode == 1 and "no field 'Nope'" in r.stderr
    listed = daemon.cli("image", "ls", "--format", "json", check=True).stdout.splitlines()
    first = json.loads(listed[0])  # docker's: a line of JSON an image, its template fields
    assert first["Name"] == BUSYBOX_REF and first["Size"].endswith("MB")
    # The unpacked tree is a busybox root file system.
    chain = info["Podkit"]["ChainID"]
    assert (chain, "committed") in snapshots(daemon)


def test_inspect_missing_and_bad_refs(daemon: Daemon) -> None:
    r = daemon.cli("image", "inspect", "nope")
    assert r.returncode == 1 and "No such image: nope" in r.stderr
    assert daemon.cli("image", "inspect", "-f", "{{.Id}}", "nope").stdout == ""
    r = daemon.cli("tag", "nope", "x:1")
    assert r.returncode == 1 and "No such image: nope" in r.stderr
    with pytest.raises(errors.InvalidArgument, match="invalid reference"):
        daemon.client().images.get("UPPER/Case")


def test_import_changes(daemon: Daemon, busybox_tarball: Path, workdir: Path) -> None:
    r = daemon.cli(
        "image",
        "import",
        str(busybox_tarball),
        "my/app:2",
        "--change",
        "ENTRYPOINT /bin/echo hi",
        "--change",
        'CMD ["a", "b"]',
        "--change",
        "ENV A=1 B=two",
        "--change",
        "ENV C three four",
        "--change",
        "WORKDIR /tmp",
        "--change",
        "USER nobody",
        "--change",
        "EXPOSE 80 53/udp",
        "--change",
        'LABEL k=v "x y"=z',
        "-m",
        "hello",
        check=True,
    )
    image_id = r.stdout.strip()
    assert image_id.startswith("sha256:")
    cfg = json.loads(daemon.cli("image", "inspect", "my/app:2", check=True).stdout)[0]
    c = cfg["Config"]
    assert c["Entrypoint"] == ["/bin/sh", "-c", "/bin/echo hi"] and c["Cmd"] == ["a", "b"]
    assert c["Env"] == ["A=1", "B=two", "C=three four"]
    assert c["WorkingDir"] == "/tmp" and c["User"] == "nobody"
    assert c["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}}
    assert c["Labels"] == {"k": "v", "x y": "z"}
    assert cfg["Comment"] == "hello" and cfg["Id"] == image_id
    r = daemon.cli("image", "import", str(busybox_tarball), "x", "--change", "RUN rm -rf /")
    assert r.returncode == 1 and "unsupported instruction 'RUN'" in r.stderr
    r = daemon.cli("image", "import", str(busybox_tarball), "x", "--change", "CMD [broken")
    # Shell form of a string that merely starts with '[' is not valid JSON: refused.
    assert r.returncode == 1 and "CMD" in r.stderr


def test_import_compressed_from_stdin_without_name(daemon: Daemon, workdir: Path) -> None:
    data = tar_bytes([("bin", "dir"), ("bin/hello", "file", "hi", {"mode": 0o755})], "gzip")
    r = subprocess.run(
        [str(BIN / "podkit"), "image", "import", "-"],
        input=data,
        capture_output=True,
        env=dict(os.environ, PODKIT_HOST=daemon.host),
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    image_id = r.stdout.decode().strip()
    rows = daemon.cli("images", check=True).stdout.splitlines()[1:]
    assert rows[0].split()[:3] == ["<none>", "<none>", image_id[7:19]]
    img = daemon.client().images.get(image_id)
    assert img.layers[0]["mediaType"].endswith("tar+gzip") and img.unpacked


def test_bad_imports_leave_nothing(daemon: Daemon, workdir: Path) -> None:
    junk = workdir / "junk"
    junk.write_bytes(b"definitely not a tarball " * 1000)
    r = daemon.cli("image", "import", str(junk), "junk")
    assert r.returncode == 1 and "not a tar archive" in r.stderr
    evil = workdir / "evil.tar"
    evil.write_bytes(tar_bytes([("ok", "file", "x"), ("../../../../tmp/pwned", "file", "x")]))
    r = daemon.cli("image", "import", str(evil), "evil")
    assert r.returncode == 1 and "climbs out" in r.stderr
    assert not os.path.exists("/tmp/pwned")
    empty = workdir / "empty.tar"
    empty.write_bytes(b"\0" * 10240)
    r = daemon.cli("image", "import", str(empty), "empty")
    assert r.returncode == 1 and "empty tar archive" in r.stderr
    r = daemon.cli("image", "import", str(workdir / "missing.tar"), "x")
    assert r.returncode == 1 and "no such file" in r.stderr
    r = daemon.cli("image", "import", str(junk), "Bad:Name:x")
    assert r.returncode == 1 and "invalid reference" in r.stderr
    assert daemon.client().images.list() == []
    assert blobs(daemon) == set()
    assert snapshots(daemon) == [] and snapshot_dirs(daemon) == []
    assert os.listdir(daemon.root / "content" / "ingest") == []


def test_tag_rmi_and_gc(daemon: Daemon, busybox_tarball: Path) -> None:
    c = daemon.client()
    a = c.images.import_(busybox_tarball, name="a:1", changes=['CMD ["sh"]'])[0]
    b = c.images.import_(busybox_tarball, name="b:1", changes=['CMD ["true"]'])[0]
    assert a.id != b.id and a.chain_id == b.chain_id  # same layer, shared snapshot
    layer = a.layers[0]["digest"][7:]
    daemon.cli("tag", "a:1", "localhost:5000/a:v2", check=True)
    assert {i.name for i in c.images.list()} == {
        "docker.io/library/a:1",
        "docker.io/library/b:1",
        "localhost:5000/a:v2",
    }
    # docker's reference filter: globs in which '*' stops at '/'.
    listed = daemon.cli("images", "--format", "json", "-f", "reference=localhost:5000/*", check=True)
    assert [json.loads(i)["Name"] for i in listed.stdout.splitlines()] == ["localhost:5000/a:v2"]
    top_level = daemon.cli("images", "-q", "-f", "reference=*", check=True).stdout.split()
    assert sorted(top_level) == sorted([b.id[7:19], a.id[7:19]])
    # An id with two names is not removed without -f; a name only untags.
    r = daemon.cli("rmi", a.id[7:19])
    assert r.returncode == 1 and "must be forced" in r.stderr
    r = daemon.cli("rmi", "a:1", check=True)
    assert r.stdout.splitlines() == ["Untagged: a:1"]
    assert a.id[7:] in blobs(daemon)
    r = daemon.cli("rmi", "localhost:5000/a:v2", check=True)
    assert r.stdout.splitlines() == ["Untagged: localhost:5000/a:v2", f"Deleted: {a.id}"]
    # a's config and manifest are gone; the layer stays for b.
    assert a.id[7:] not in blobs(daemon) and layer in blobs(daemon)
    assert [k for k, _ in snapshots(daemon)] == [a.chain_id]
    r = daemon.cli("rmi", "b:1", "nope")
    assert r.returncode == 1 and "Untagged: b:1" in r.stdout and "No such image: nope" in r.stderr
    assert blobs(daemon) == set() and snapshots(daemon) == [] and snapshot_dirs(daemon) == []


def test_dangling_and_prune(daemon: Daemon, busybox_tarball: Path) -> None:
    c = daemon.client()
    old = c.images.import_(busybox_tarball, name="app", changes=['CMD ["old"]'])[0]
    new = c.images.import_(busybox_tarball, name="app", changes=['CMD ["new"]'])[0]
    dangling = c.images.list(filters=["dangling=true"])
    assert [i.id for i in dangling] == [old.id]
    assert daemon.cli("images", "-f", "reference=app", "-q", check=True).stdout.split() == [new.id[7:19]]
    assert daemon.cli("images", "-f", "dangling=false", "-q", check=True).stdout.split() == [new.id[7:19]]
    # No confirmation: nothing removed.
    r = daemon.cli("image", "prune", input=b"n\n", check=True)
    assert "Deleted" not in r.stdout and len(c.images.list()) == 2
    r = daemon.cli("image", "prune", "-f", check=True)
    assert f"deleted: {old.id}" in r.stdout and "Total reclaimed space" in r.stdout
    assert [i.id for i in c.images.list()] == [new.id]
    r = daemon.cli("image", "prune", "-a", "-f", check=True)
    assert "untagged: app:latest" in r.stdout
    assert c.images.list() == [] and blobs(daemon) == set() and snapshots(daemon) == []


def test_image_in_use_by_a_container_snapshot(daemon: Daemon, busybox_image: str) -> None:
    """A container's rootfs snapshot pins its image: rmi refuses, rmi -f only untags, GC keeps.

    The container is stood in for by an active snapshot made the way the containers
    layer makes one (prepare on the image's chain ID with the image label).
    """
    from podkit.snapshots import new_snapshotter
    from podkit.store import Database

    c = daemon.client()
    img = c.images.get("busybox")
    db = Database(daemon.root / "metadata.db")
    sn = new_snapshotter(db, daemon.root, "overlay")
    try:
        sn.prepare("ctr-abc", img.chain_id, labels={"podkit/image": img.id, "podkit/namespace": "default"})
        from podkit.images.service import ImageService

        assert ImageService(db, daemon_content(daemon), sn).chain_in_use(img.chain_id or "") == [
            f"default/{BUSYBOX_REF}",
            "ctr-abc",
        ]
        r = daemon.cli("rmi", "busybox")
        assert r.returncode == 1
        assert "must force" in r.stderr and "ctr-abc" in r.stderr
        r = daemon.cli("image", "prune", "-a", "-f", check=True)
        assert c.images.list() != []
        r = daemon.cli("rmi", "-f", "busybox", check=True)
        assert "Untagged: busybox:latest" in r.stdout
        # The layer snapshot survives GC while the container's snapshot sits on it.
        assert (img.chain_id, "committed") in snapshots(daemon)
        sn.remove("ctr-abc")
    finally:
        db.close()
    c.images.prune()
    # Blobs go at once; the layer snapshot (its chain ID lived in the lost config) only
    # after the GC grace period.
    assert blobs(daemon) == set() and c.images.list() == []


def test_namespaces_are_separate(daemon: Daemon, busybox_tarball: Path) -> None:
    daemon.client("other").images.import_(busybox_tarball, name="only-here")
    assert daemon.client().images.list() == []
    assert daemon.cli("images", "-q").stdout == ""
    r = daemon.cli("--namespace", "other", "images", check=True)
    assert "only-here" in r.stdout


def _big_tarball(path: Path, files: int) -> None:
    """Many small files: slow to apply for their size, so a kill lands mid-apply."""
    import io

    blob = os.urandom(4096)
    with tarfile.open(path, "w") as tf:
        for i in range(files):
            ti = tarfile.TarInfo(f"data/d{i % 50}/f{i}")
            ti.size = len(blob)
            tf.addfile(ti, io.BytesIO(blob))


def test_sigkill_during_import_leaves_a_consistent_store(daemon: Daemon, workdir: Path) -> None:
    big = workdir / "big.tar"
    _big_tarball(big, 3000)
    proc = subprocess.Popen(
        [str(BIN / "podkit"), "image", "import", str(big), "big"],
        env=dict(os.environ, PODKIT_HOST=daemon.host),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        # Kill the daemon in the middle of applying the layer.
        wait_for(
            lambda: any(k.startswith("extract-") for k, _ in snapshots(daemon)) or proc.poll() is not None,
            timeout=60,
            interval=0.005,
            what="the layer apply to start",
        )
        killed_mid_apply = proc.poll() is None
        daemon.kill()
    finally:
        proc.wait(timeout=60)
    assert killed_mid_apply, "the import finished before the daemon could be killed"
    assert proc.returncode != 0
    daemon.start()
    assert not any(k.startswith("extract-") for k, _ in snapshots(daemon))
    assert os.listdir(daemon.root / "content" / "ingest") == []
    for img in daemon.client().images.list():  # whatever made it is whole
        assert img.name.endswith("big:latest")
    # The import works now, and leaves exactly one committed layer.
    daemon.client().images.import_(big, name="big")
    assert [k for k, kind in snapshots(daemon) if kind == "committed"] == [
        daemon.client().images.get("big").chain_id
    ]


def test_gc_spares_in_flight_content(workdir: Path) -> None:
    """Unnamed blobs a pull is still writing survive GC: recent ones, leased ones, and
    everything made while a lease is alive. (In-process: GC is a function of the service.)"""
    from podkit.images.service import ImageService
    from podkit.snapshots import OverlaySnapshotter
    from podkit.store import ContentStore, Database

    db = Database(workdir / "m.db")
    content = ContentStore(workdir)
    svc = ImageService(db, content, OverlaySnapshotter(db, workdir))
    try:
        recent = content.put(b"a blob being pulled")
        assert svc.gc()["blobs"] == 0 and content.has(recent)
        svc.GRACE_SECONDS = 0  # type: ignore[misc]
        with svc.leases.lease("default") as lease:
            svc.leases.add("default", lease, "content", recent)
            during = content.put(b"written while the lease is alive")
            assert svc.gc()["blobs"] == 0
            assert content.has(recent) and content.has(during)
        assert svc.gc()["blobs"] == 2
        assert not content.has(recent) and not content.has(during)
        # An expired lease protects nothing.
        lid = svc.leases.create("default", ttl=-1)
        svc.leases.add("default", lid, "content", content.put(b"x"))
        assert svc.gc()["blobs"] == 1
    finally:
        db.close()


def test_history_and_image_subcommands(daemon: Daemon, busybox_image: str) -> None:
    r = daemon.cli("image", "history", "busybox", check=True)
    lines = r.stdout.splitlines()
    assert lines[0].split()[:3] == ["IMAGE", "CREATED", "CREATED"]
    assert "podkit image import" in lines[1]
    rows = daemon.cli("image", "history", "--format", "json", "busybox", check=True).stdout.splitlines()
    top = json.loads(rows[0])  # docker's historyContext fields, a line a layer
    assert len(top["ID"]) == 12 and top["Size"].endswith("MB")  # -H, the default
    r = daemon.cli("image", check=False)
    assert r.returncode == 1 and "history" in r.stdout
    r = daemon.cli("image", "pull", "--help", check=True)
    assert "--platform" in r.stdout


def test_image_with_lost_content_can_still_be_removed(daemon: Daemon, busybox_image: str) -> None:
    """A record whose blobs went missing (a damaged store) is hidden from ls and removable."""
    c = daemon.client()
    img = c.images.get("busybox")
    daemon.stop()
    (daemon.root / "content" / "blobs" / "sha256" / img.id[7:]).unlink()  # the config
    daemon.start()
    assert c.images.list() == []
    r = daemon.cli("rmi", "busybox", check=True)
    assert r.stdout.strip() == "Untagged: busybox:latest"
    c.images.prune()
    # Blobs go at once; the layer snapshot (its chain ID lived in the lost config) only
    # after the GC grace period.
    assert blobs(daemon) == set() and c.images.list() == []


@pytest.mark.root
def test_native_snapshotter_daemon(workdir: Path, busybox_tarball: Path) -> None:
    """The copying fallback, chosen by config, end to end: import, info, rmi frees it all."""
    (workdir / "n").mkdir()
    d = Daemon(workdir / "n", extra_config='[images]\nsnapshotter = "native"\n').start()
    try:
        c = d.client()
        img = c.images.import_(busybox_tarball, name="bb")[0]
        assert os.listdir(d.root / "snapshots" / "native")
        assert not (d.root / "snapshots" / "overlay").exists()
        assert img.unpacked_size > 1_000_000 or c.images.get("bb").unpacked
        d.cli("rmi", "bb", check=True)
        assert snapshots(d) == [] and os.listdir(d.root / "snapshots" / "native") == []
    finally:
        d.stop()


def test_change_instructions() -> None:
    from podkit.images.changes import apply_changes

    cfg = apply_changes(
        {},
        [
            "ENV PATH=/bin",
            "ENV PATH=/x:$PATH B=${PATH}/y C=\\$HOME",
            "WORKDIR /w/$B",
            'ENTRYPOINT ["/bin/app", "--flag"]',
            "CMD echo hi",
            "STOPSIGNAL SIGINT",
            "VOLUME /data /cache",
            'VOLUME ["/v"]',
            "user 1000:1000",
            "EXPOSE 8080/udp",
        ],
    )
    assert cfg["Env"] == ["PATH=/x:/bin", "B=/bin/y", "C=$HOME"]
    assert cfg["WorkingDir"] == "/w//bin/y" and cfg["User"] == "1000:1000"
    assert cfg["Entrypoint"] == ["/bin/app", "--flag"] and cfg["Cmd"] == ["/bin/sh", "-c", "echo hi"]
    assert cfg["StopSignal"] == "SIGINT" and set(cfg["Volumes"]) == {"/data", "/cache", "/v"}
    assert cfg["ExposedPorts"] == {"8080/udp": {}}
    for bad, why in (
        ("EXPOSE 70000", "invalid port"),
        ("CMD", "needs an argument"),
        ('CMD ["a", 1]', "JSON array of strings"),
        ("LABEL =x", "not key=value"),
        ("FROM scratch", "unsupported instruction"),
    ):
        with pytest.raises(errors.InvalidArgument, match=why):
            apply_changes({}, [bad])


def test_startup_collects_old_orphans(daemon: Daemon, busybox_image: str) -> None:
    """Blobs nothing names and older than the GC grace period (a crash's leftovers) are
    collected after a restart; young ones and named ones stay."""
    import time

    from podkit.store import ContentStore

    daemon.stop()
    content = ContentStore(daemon.root)
    old, young = content.put(b"orphan from a crash"), content.put(b"a pull in flight")
    an_hour_ago = time.time() - 3600
    os.utime(content.path(old), (an_hour_ago, an_hour_ago))
    kept = blobs(daemon) - {old[7:]}
    daemon.start()
    wait_for(lambda: old[7:] not in blobs(daemon), timeout=20, what="the start-up GC")
    assert blobs(daemon) == kept and young[7:] in kept
    assert daemon.client().images.get("busybox").unpacked


def test_concurrent_imports_share_one_layer(daemon: Daemon, busybox_tarball: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    c = daemon.client()
    with ThreadPoolExecutor(4) as pool:
        images = list(
            pool.map(
                lambda i: c.images.import_(busybox_tarball, name=f"par:{i}", changes=[f'CMD ["{i}"]'])[0],
                range(4),
            )
        )
    assert len({i.id for i in images}) == 4 and len({i.chain_id for i in images}) == 1
    assert [k for k, kind in snapshots(daemon)] == [images[0].chain_id]
    assert all(c.images.get(f"par:{i}").unpacked for i in range(4))
    c.images.remove(*[f"par:{i}" for i in range(4)])
    assert snapshots(daemon) == [] and blobs(daemon) == set()


def test_sigkill_during_load(daemon: Daemon, workdir: Path) -> None:
    big = workdir / "big.tar"
    _big_tarball(big, 1500)
    c = daemon.client()
    c.images.import_(big, name="big")
    c.images.save("big", workdir / "big-archive.tar")
    c.images.remove("big")
    assert snapshots(daemon) == []
    proc = subprocess.Popen(
        [str(BIN / "podkit"), "load", "-i", str(workdir / "big-archive.tar")],
        env=dict(os.environ, PODKIT_HOST=daemon.host),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for(
            lambda: any(k.startswith("extract-") for k, _ in snapshots(daemon)) or proc.poll() is not None,
            timeout=60,
            interval=0.005,
            what="the layer apply to start",
        )
        killed_mid_apply = proc.poll() is None
        daemon.kill()
    finally:
        proc.wait(timeout=60)
    assert killed_mid_apply and proc.returncode != 0
    daemon.start()
    assert not any(k.startswith("extract-") for k, _ in snapshots(daemon))
    assert os.listdir(daemon.root / "content" / "ingest") == []
    r = daemon.cli("load", "-i", str(workdir / "big-archive.tar"), check=True)
    assert r.stdout.strip() == "Loaded image: big:latest"
    assert c.images.get("big").unpacked


def test_import_zstd_rootfs(daemon: Daemon, workdir: Path) -> None:
    f = workdir / "root.tar.zst"
    f.write_bytes(tar_bytes([("etc", "dir"), ("etc/os-release", "file", "ID=test\n")], "zstd"))
    daemon.cli("import", str(f), "zst:1", check=True)
    img = daemon.client().images.get("zst:1")
    assert img.layers[0]["mediaType"].endswith("tar+zstd") and img.unpacked
    con = sqlite3.connect(daemon.root / "metadata.db")
    try:
        (sid,) = con.execute("SELECT id FROM snapshots WHERE key=?", (img.chain_id,)).fetchone()
    finally:
        con.close()
    tree = daemon.root / "snapshots" / "overlay" / str(sid) / "fs"
    assert (tree / "etc" / "os-release").read_text() == "ID=test\n"
