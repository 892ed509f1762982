"""Archives: save read by skopeo and umoci, archives written by skopeo loaded, OCI layouts with
multi-arch indexes, compressed layers, and broken archives refused without leftovers."""

from __future__ import annotations

import hashlib
import io
import json
import os
import sqlite3
import subprocess
import tarfile
import time
from pathlib import Path
from typing import Any

import pytest

from podkit import errors
from podkit.images.oci import Platform
from tests.fixtures.images import tar_bytes
from tests.helpers import Daemon

pytestmark = pytest.mark.skipif(not os.path.exists("/usr/bin/skopeo"), reason="skopeo is not installed")


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def run(*cmd: str) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(list(cmd), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"{' '.join(cmd)}: {r.stderr}"
    return r


def unpacked_file(d: Daemon, chain_id: str, rel: str) -> Path:
    con = sqlite3.connect(d.root / "metadata.db")
    try:
        row = con.execute("SELECT driver, id FROM snapshots WHERE key=?", (chain_id,)).fetchone()
    finally:
        con.close()
    assert row is not None, f"no snapshot {chain_id}"
    return d.root / "snapshots" / row[0] / str(row[1]) / "fs" / rel


class Layout:
    """An OCI image layout written by the test itself."""

    def __init__(self, path: Path) -> None:
        self.path = path
        (path / "blobs" / "sha256").mkdir(parents=True)
        (path / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
        self.index: list[dict[str, Any]] = []

    def blob(self, data: bytes) -> dict[str, Any]:
        d = sha(data)
        (self.path / "blobs" / "sha256" / d[7:]).write_bytes(data)
        return {"digest": d, "size": len(data)}

    def image(self, layers: list[tuple[bytes, str]], platform: Platform, cmd: list[str]) -> dict[str, Any]:
        """layers: (uncompressed tar, compression); returns the manifest descriptor."""
        import gzip

        import zstandard

        descs, diff_ids = [], []
        for raw, comp in layers:
            if comp == "gzip":
                data = gzip.compress(raw)
            elif comp == "zstd":
                data = zstandard.ZstdCompressor().compress(raw)
            else:
                data = raw
            media = "application/vnd.oci.image.layer.v1.tar" + (f"+{comp}" if comp else "")
            descs.append({"mediaType": media, **self.blob(data)})
            diff_ids.append(sha(raw))
        config = {
            "architecture": platform.architecture,
            "os": platform.os,
            "config": {"Cmd": cmd},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }
        cfg = {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            **self.blob(json.dumps(config).encode()),
        }
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": cfg,
            "layers": descs,
        }
        return {
            "mediaType": manifest["mediaType"],
            **self.blob(json.dumps(manifest).encode()),
            "platform": platform.to_dict(),
        }

    def add(self, desc: dict[str, Any], name: str | None, tag: str | None = None) -> None:
        ann = {}
        if name:
            ann["io.containerd.image.name"] = name
        if tag:
            ann["org.opencontainers.image.ref.name"] = tag
        entry = {k: v for k, v in desc.items() if k != "platform"}
        if ann:
            entry["annotations"] = ann
        self.index.append(entry)

    def nested_index(self, manifests: list[dict[str, Any]]) -> dict[str, Any]:
        idx = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": manifests,
        }
        return {"mediaType": idx["mediaType"], **self.blob(json.dumps(idx).encode())}

    def write(self) -> Path:
        (self.path / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": self.index}))
        return self.path

    def tar(self, out: Path) -> Path:
        self.write()
        with tarfile.open(out, "w") as tf:
            for n in sorted(os.listdir(self.path)):
                tf.add(self.path / n, n)
        return out


def test_save_is_read_by_skopeo(daemon: Daemon, busybox_image: str, workdir: Path) -> None:
    img = daemon.client().images.get("busybox")
    out = workdir / "bb.tar"
    daemon.cli("save", "-o", str(out), "busybox", check=True)
    # As a docker-save archive...
    info = json.loads(run("skopeo", "inspect", f"docker-archive:{out}").stdout)
    assert info["Layers"] == [layer["digest"] for layer in img.layers]
    run("skopeo", "copy", f"docker-archive:{out}", f"dir:{workdir / 'from-docker'}")
    assert (workdir / "from-docker" / img.layers[0]["digest"][7:]).stat().st_size == img.layers[0]["size"]
    run("skopeo", "copy", f"docker-archive:{out}", f"oci:{workdir / 'oci'}:copied")
    copied = json.loads((workdir / "oci" / "index.json").read_text())["manifests"][0]
    m = json.loads((workdir / "oci" / "blobs" / "sha256" / copied["digest"][7:]).read_bytes())
    cfg = json.loads((workdir / "oci" / "blobs" / "sha256" / m["config"]["digest"][7:]).read_bytes())
    assert cfg["rootfs"]["diff_ids"] == img.diff_ids and cfg["config"]["Cmd"] == ["sh"]
    # ... and as an OCI archive, byte for byte the same manifest.
    run("skopeo", "copy", f"oci-archive:{out}:latest", f"dir:{workdir / 'dir'}")
    assert sha((workdir / "dir" / "manifest.json").read_bytes()) == img.manifest_digest
    # Saving to stdout gives the same bytes (the archive is reproducible).
    r = subprocess.run(
        [str(Path(os.sys.executable).parent / "podkit"), "save", "busybox"],
        capture_output=True,
        env=dict(os.environ, PODKIT_HOST=daemon.host),
        timeout=60,
    )
    assert r.returncode == 0 and r.stdout == out.read_bytes()


def test_umoci_unpacks_our_oci_layout(daemon: Daemon, busybox_image: str, workdir: Path) -> None:
    if not os.path.exists("/usr/bin/umoci"):
        pytest.skip("umoci is not installed")
    out = workdir / "bb-oci.tar"
    daemon.cli("save", "--format", "oci", "-o", str(out), "busybox", check=True)
    layout = workdir / "layout"
    with tarfile.open(out) as tf:
        names = tf.getnames()
        assert "manifest.json" not in names and "index.json" in names
        tf.extractall(layout)  # our own archive: trusted
    run("umoci", "unpack", "--image", f"{layout}:latest", str(workdir / "bundle"))
    rootfs = workdir / "bundle" / "rootfs"
    assert (rootfs / "bin" / "busybox").is_file()
    assert os.stat(rootfs / "bin" / "sh").st_ino == os.stat(rootfs / "bin" / "busybox").st_ino
    spec = json.loads((workdir / "bundle" / "config.json").read_text())
    assert spec["process"]["args"] == ["sh"]


def test_load_docker_archive_written_by_skopeo(daemon: Daemon, busybox_image: str, workdir: Path) -> None:
    c = daemon.client()
    img = c.images.get("busybox")
    daemon.cli("save", "--format", "oci", "-o", str(workdir / "o.tar"), "busybox", check=True)
    run(
        "skopeo",
        "copy",
        f"oci-archive:{workdir / 'o.tar'}:latest",
        f"docker-archive:{workdir / 'd.tar'}:skopeo/made:v1",
    )
    with tarfile.open(workdir / "d.tar") as tf:
        assert "manifest.json" in tf.getnames() and "oci-layout" not in tf.getnames()
    r = daemon.cli("load", "-i", str(workdir / "d.tar"), check=True)
    assert r.stdout.strip() == "Loaded image: skopeo/made:v1"
    loaded = c.images.get("skopeo/made:v1")
    assert loaded.diff_ids == img.diff_ids and loaded.cmd == ["sh"]
    assert loaded.chain_id == img.chain_id and loaded.unpacked
    # The uploaded archive itself does not stay in the content store.
    assert len(os.listdir(daemon.root / "content" / "blobs" / "sha256")) == len(
        {
            img.id,
            img.manifest_digest,
            loaded.id,
            loaded.manifest_digest,
            *[x["digest"] for x in img.layers + loaded.layers],
        }
    )


def test_multi_arch_layout_dir(daemon: Daemon, workdir: Path) -> None:
    host = Platform.host()
    other = Platform("linux", "arm64" if host.architecture != "arm64" else "amd64")
    lay = Layout(workdir / "layout")
    base = tar_bytes([("etc", "dir"), ("etc/arch", "file", str(host))])
    second = tar_bytes([("etc/second", "file", "zstd!")])
    m_host = lay.image([(base, "gzip"), (second, "zstd")], host, ["host"])
    m_other = lay.image([(tar_bytes([("etc/arch", "file", str(other))]), "")], other, ["other"])
    lay.add(lay.nested_index([m_other, m_host]), "example.com/multi:1.0", "1.0")
    c = daemon.client()
    images = c.images.load(lay.write())  # a directory is streamed as a tar by the SDK
    assert [i.name for i in images] == ["example.com/multi:1.0"]
    img = c.images.get("example.com/multi:1.0")
    assert img.media_type.endswith("index.v1+json")
    assert sorted(img.platforms) == sorted([str(host), str(other)])
    assert img.architecture == host.architecture and img.cmd == ["host"] and img.unpacked
    assert unpacked_file(daemon, img.chain_id or "", "etc/second").read_text() == "zstd!"
    assert unpacked_file(daemon, img.diff_ids[0], "etc/arch").read_text() == str(host)
    arm = c.images.get("example.com/multi:1.0", platform=str(other))
    assert arm.architecture == other.architecture and arm.cmd == ["other"] and arm.id != img.id
    # A save keeps the whole index; skopeo sees both platforms.
    out = workdir / "multi.tar"
    c.images.save("example.com/multi:1.0", out)
    raw = json.loads(run("skopeo", "inspect", "--raw", f"oci-archive:{out}:1.0").stdout)
    assert sorted(m["platform"]["architecture"] for m in raw["manifests"]) == sorted(
        [host.architecture, other.architecture]
    )
    # Loading it into another namespace gives the same image.
    again = daemon.client("other").images.load(out)
    assert again[0].digest == img.digest and again[0].id == img.id


def test_layout_without_names_loads_dangling(daemon: Daemon, workdir: Path) -> None:
    lay = Layout(workdir / "layout")
    lay.add(lay.image([(tar_bytes([("f", "file", "1")]), "")], Platform.host(), ["x"]), None, "latest")
    r = daemon.cli("load", "-i", str(lay.tar(workdir / "l.tar")), check=True)
    assert r.stdout.startswith("Loaded image ID: sha256:")
    assert daemon.client().images.list()[0].dangling


def _leftovers(d: Daemon) -> tuple[list[Any], list[str], list[str]]:
    blobs = os.listdir(d.root / "content" / "blobs" / "sha256")
    con = sqlite3.connect(d.root / "metadata.db")
    try:
        snaps = [r[0] for r in con.execute("SELECT key FROM snapshots")]
    finally:
        con.close()
    return d.client().images.list(), blobs, snaps


def test_broken_archives_leave_nothing(daemon: Daemon, workdir: Path) -> None:
    # A docker-save archive whose layer is missing.
    bad = workdir / "bad.tar"
    with tarfile.open(bad, "w") as tf:
        cfg = json.dumps({"rootfs": {"type": "layers", "diff_ids": [sha(b"x")]}}).encode()
        for name, data in (
            ("cfg.json", cfg),
            (
                "manifest.json",
                json.dumps(
                    [{"Config": "cfg.json", "RepoTags": ["bad:1"], "Layers": ["nope/layer.tar"]}]
                ).encode(),
            ),
        ):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    r = daemon.cli("load", "-i", str(bad))
    assert r.returncode == 1 and "nope/layer.tar" in r.stderr
    # An OCI layout whose layer blob was tampered with.
    lay = Layout(workdir / "layout")
    lay.add(lay.image([(tar_bytes([("f", "file", "1")]), "gzip")], Platform.host(), ["x"]), "tampered:1")
    for p in (lay.path / "blobs" / "sha256").iterdir():
        if p.read_bytes()[:2] == b"\x1f\x8b":
            p.write_bytes(p.read_bytes() + b"junk")
    with pytest.raises(errors.DigestMismatch):
        daemon.client().images.load(lay.write())
    # A root file system tarball is not an archive.
    r = daemon.cli("load", "-i", str(lay.tar(workdir / "l.tar")))
    assert r.returncode == 1
    rootfs = workdir / "rootfs.tar"
    rootfs.write_bytes(tar_bytes([("etc", "dir"), ("etc/x", "file", "1")]))
    r = daemon.cli("load", "-i", str(rootfs))
    assert r.returncode == 1 and "neither a docker-save archive" in r.stderr
    assert _leftovers(daemon) == ([], [], [])


def test_compressed_archive_and_save_by_id(daemon: Daemon, busybox_image: str, workdir: Path) -> None:
    """`docker save | gzip` style archives load; saving by id stores no name (as docker does)."""
    import gzip

    c = daemon.client()
    img = c.images.get("busybox")
    raw = workdir / "by-id.tar"
    c.images.save(img.id[7:19], raw)
    with tarfile.open(raw) as tf:
        entry = json.loads(tf.extractfile("manifest.json").read())[0]  # type: ignore[union-attr]
    assert entry["RepoTags"] == [] and entry["Config"] == f"blobs/sha256/{img.id[7:]}"
    c.images.save("busybox", raw)
    gz = workdir / "bb.tar.gz"
    gz.write_bytes(gzip.compress(raw.read_bytes(), compresslevel=1))
    c.images.remove("busybox")
    assert c.images.list() == []
    r = daemon.cli("load", "-i", str(gz), check=True)
    assert r.stdout.strip() == "Loaded image: busybox:latest"
    assert c.images.get("busybox").id == img.id
    events = list(c.events(since=0, until=time.time(), type="image"))
    assert {"import", "save", "delete", "load"} <= {e["action"] for e in events}


def test_platform_manifests_listed_directly_become_one_image(daemon: Daemon, workdir: Path) -> None:
    """index.json listing one manifest per platform under one name: one multi-platform image."""
    host = Platform.host()
    other = Platform("linux", "arm64" if host.architecture != "arm64" else "amd64")
    lay = Layout(workdir / "layout")
    for plat in (other, host):
        desc = lay.image([(tar_bytes([("p", "file", str(plat))]), "gzip")], plat, [str(plat)])
        lay.index.append(desc | {"annotations": {"io.containerd.image.name": "example.com/flat:1"}})
    images = daemon.client().images.load(lay.write())
    assert len(images) == 1
    img = daemon.client().images.get("example.com/flat:1")
    assert img.media_type.endswith("index.v1+json") and img.cmd == [str(host)] and img.unpacked
    assert sorted(img.platforms) == sorted([str(host), str(other)])
    assert daemon.client().images.list(filters=["dangling=true"]) == []


def test_index_without_the_host_platform(daemon: Daemon, workdir: Path) -> None:
    """An index whose host manifest is not in the store (a --platform pull, a partial archive)
    stands for the platform it has; asking for the host's explicitly is NotFound."""
    host = Platform.host()
    other = Platform("linux", "arm64" if host.architecture != "arm64" else "amd64")
    lay = Layout(workdir / "layout")
    m_host = lay.image([(tar_bytes([("h", "file", "h")]), "")], host, ["host"])
    m_other = lay.image([(tar_bytes([("o", "file", "o")]), "")], other, ["other"])
    (lay.path / "blobs" / "sha256" / m_host["digest"][7:]).unlink()
    lay.add(lay.nested_index([m_host, m_other]), "example.com/partial:1")
    c = daemon.client()
    c.images.load(lay.write())
    img = c.images.get("example.com/partial:1")
    assert img.architecture == other.architecture and img.cmd == ["other"] and img.unpacked
    assert [i.name for i in c.images.list()] == ["example.com/partial:1"]
    with pytest.raises(errors.NotFound, match="no content for platform"):
        c.images.get("example.com/partial:1", platform=str(host))


def test_save_errors(daemon: Daemon, busybox_image: str, workdir: Path) -> None:
    out = workdir / "never.tar"
    r = daemon.cli("save", "-o", str(out), "busybox", "nope")
    assert r.returncode == 1 and "No such image: nope" in r.stderr
    assert not out.exists() and not (workdir / "never.tar.podkit-tmp").exists()
    r = daemon.cli("save", "--format", "xml", "busybox")
    assert r.returncode == 125  # usage error, as docker
    with pytest.raises(errors.InvalidArgument, match="unknown archive format"):
        daemon.client().images.save("busybox", workdir / "x.tar", format="xml")


def test_cli_import_of_a_layout_directory_with_a_name(daemon: Daemon, workdir: Path) -> None:
    lay = Layout(workdir / "layout")
    lay.add(lay.image([(tar_bytes([("f", "file", "1")]), "gzip")], Platform.host(), ["x"]), "orig:1")
    r = daemon.cli("image", "import", str(lay.write()), "renamed:2", check=True)
    image_id = r.stdout.strip()
    assert [i.name for i in daemon.client().images.list()] == ["docker.io/library/renamed:2"]
    assert daemon.client().images.get("renamed:2").id == image_id
    r = daemon.cli("image", "import", str(lay.path), "x:1", "--change", 'CMD ["y"]')
    assert r.returncode == 1 and "--change applies to root file system tarballs" in r.stderr


def test_save_of_an_image_with_missing_content(daemon: Daemon, busybox_image: str, workdir: Path) -> None:
    img = daemon.client().images.get("busybox")
    (daemon.root / "content" / "blobs" / "sha256" / img.layers[0]["digest"][7:]).unlink()
    out = workdir / "broken.tar"
    r = daemon.cli("save", "-o", str(out), "busybox")
    assert r.returncode == 1 and "is not in the content store" in r.stderr
    assert not out.exists()
