"""Pulling from a real docker-registry on 127.0.0.1 into a real podkitd."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from podkit import errors
from tests.fixtures.registry import (
    RegistryLink,
    RegistryServer,
    build_layout,
    find_in_snapshots,
    skopeo_inspect,
    skopeo_push,
)
from tests.helpers import Daemon

# Whoever runs the tests: their docker logins stay out of it.
pytestmark = pytest.mark.usefixtures("no_docker_config")


def dist(daemon: Daemon) -> Any:
    """The SDK's registry operations (ImagesAPI when it exists, else the bare mixin)."""
    c = daemon.client()
    try:
        return c.images
    except ImportError:
        from podkit.client.distribution import DistributionMixin

        m = DistributionMixin()
        m._t = c._t
        return m


def _d(image: Any) -> dict[str, Any]:
    return image if isinstance(image, dict) else image.__dict__


def test_pull_records_image_and_applies_layers(
    daemon: Daemon, registry: RegistryServer, workdir: Path
) -> None:
    layout = build_layout(
        workdir / "oci",
        [
            {"etc": None, "etc/one.txt": b"layer one\n", "data": None, "data/gone.txt": b"x"},
            {"etc/two.txt": b"layer two\n", "data/gone.txt": ("whiteout",)},
        ],
    )
    skopeo_push(layout, registry, "test/app:1.0")
    seen: list[dict[str, Any]] = []
    image = _d(dist(daemon).pull(f"{registry.host}/test/app:1.0", progress=seen.append))
    assert image["name"] == f"{registry.host}/test/app:1.0"
    want = skopeo_inspect(registry, "test/app:1.0")
    assert image["digest"] == want["Digest"]
    statuses = {(m.get("id"), m["status"]) for m in seen if "current" in m}
    layer_ids = {m["id"] for m in seen if "current" in m}
    assert len(layer_ids) == 2
    for lid in layer_ids:
        assert (lid, "Pull complete") in statuses
    assert any(m["status"].startswith("Digest: sha256:") for m in seen)
    assert find_in_snapshots(daemon.root, "etc/two.txt")
    assert not list((daemon.root / "content" / "ingest").iterdir())


def test_pull_twice_says_already_exists(daemon: Daemon, registry: RegistryServer, workdir: Path) -> None:
    skopeo_push(build_layout(workdir / "oci"), registry, "again:latest")
    d = dist(daemon)
    d.pull(f"{registry.host}/again")
    gets = registry.requests("GET", "/v2/again/manifests/")
    seen: list[dict[str, Any]] = []
    d.pull(f"{registry.host}/again", progress=seen.append)
    assert [m["status"] for m in seen if "current" in m] == ["Already exists"]
    # Up to date: resolved with one HEAD, nothing downloaded again.
    assert registry.requests("GET", "/v2/again/manifests/") == gets
    assert registry.requests("HEAD", "/v2/again/manifests/latest") == 2


def test_pull_unknown_is_not_found(daemon: Daemon, registry: RegistryServer) -> None:
    with pytest.raises(errors.NotFound) as ei:
        dist(daemon).pull(f"{registry.host}/no/such:thing")
    assert "no/such" in ei.value.message


def test_pull_invalid_reference_is_refused(daemon: Daemon) -> None:
    with pytest.raises(errors.InvalidArgument) as ei:
        dist(daemon).pull("UPPER/Case::bad")
    assert "invalid reference" in ei.value.message


def test_pull_cli_plain_output(daemon: Daemon, registry: RegistryServer, workdir: Path) -> None:
    skopeo_push(build_layout(workdir / "oci"), registry, "cli:v1")
    r = daemon.cli("pull", f"{registry.host}/cli:v1", check=True)
    lines = r.stdout.splitlines()
    assert lines[0] == "v1: Pulling from cli"
    assert any(line.endswith(": Pull complete") for line in lines)
    assert lines[-1] == f"{registry.host}/cli:v1"
    assert "\x1b[" not in r.stdout  # not a terminal: no cursor movement
    assert "Status: Downloaded newer image for" in r.stdout
    again = daemon.cli("pull", f"{registry.host}/cli:v1", check=True)
    assert "Status: Image is up to date for" in again.stdout
    quiet = daemon.cli("pull", "-q", f"{registry.host}/cli:v1", check=True)
    assert quiet.stdout == f"{registry.host}/cli:v1\n"
    alias = daemon.cli("image", "pull", "-q", f"{registry.host}/cli:v1", check=True)
    assert alias.stdout == quiet.stdout
    r = daemon.cli("pull", f"{registry.host}/cli:nope")
    assert r.returncode == 1
    assert r.stderr.startswith("Error: ") and "nope" in r.stderr


def test_pull_stream_api_shape(daemon: Daemon, registry: RegistryServer, workdir: Path) -> None:
    skopeo_push(build_layout(workdir / "oci"), registry, "api:latest")
    lines = list(
        daemon.client()._t.stream("POST", "/images/pull", json_body={"reference": f"{registry.host}/api"})
    )
    assert lines[-1]["status"] == "done"
    assert lines[-1]["image"]["name"] == f"{registry.host}/api:latest"
    for m in lines[:-1]:
        json.dumps(m)
        if "current" in m:
            assert len(m["id"]) == 12 and isinstance(m["total"], int)


def test_pull_by_digest_and_tag_at_digest(daemon: Daemon, registry: RegistryServer, workdir: Path) -> None:
    skopeo_push(build_layout(workdir / "oci"), registry, "dig:1")
    digest = skopeo_inspect(registry, "dig:1")["Digest"]
    images = dist(daemon)
    img = _d(images.pull(f"{registry.host}/dig@{digest}"))
    assert img["name"] == f"{registry.host}/dig@{digest}" and img["digest"] == digest
    img = _d(images.pull(f"{registry.host}/dig:1@{digest}"))
    assert img["digest"] == digest
    wrong = "sha256:" + "0" * 64
    with pytest.raises(errors.NotFound):
        images.pull(f"{registry.host}/dig@{wrong}")


def test_pull_tty_progress_bars(daemon: Daemon, registry: RegistryServer, workdir: Path) -> None:
    """On a terminal the CLI redraws one line per layer in place (ANSI cursor moves)."""
    import os
    import pty
    import subprocess

    from tests.helpers import BIN

    skopeo_push(
        build_layout(workdir / "oci", [{"a.bin": os.urandom(400_000)}, {"b.bin": os.urandom(400_000)}]),
        registry,
        "tty:1",
    )
    master, slave = pty.openpty()
    env = dict(os.environ, PODKIT_HOST=daemon.host)
    p = subprocess.Popen(
        [str(BIN / "podkit"), "pull", f"{registry.host}/tty:1"], stdout=slave, stderr=slave, env=env
    )
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the other side closed
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    assert p.wait(60) == 0
    text = out.decode(errors="replace")
    assert "\x1b[" in text and "\x1b[2K" in text  # lines redrawn in place
    assert text.count("Pull complete") == 2
    assert "Status: Downloaded newer image" in text
    assert text.rstrip().endswith(f"{registry.host}/tty:1")


def test_bad_registry_auth_header_is_refused(daemon: Daemon, registry: RegistryServer) -> None:
    with pytest.raises(errors.InvalidArgument) as ei:
        list(
            daemon.client()._t.stream(
                "POST",
                "/images/pull",
                json_body={"reference": f"{registry.host}/x"},
                headers={"X-Registry-Auth": "%%%"},
            )
        )
    assert "X-Registry-Auth" in ei.value.message


def test_unreachable_registry_is_unavailable(daemon: Daemon) -> None:
    from tests.fixtures.registry import free_port

    r = daemon.cli("pull", f"127.0.0.1:{free_port()}/nothing:1")
    assert r.returncode == 1
    assert "Error: cannot connect to registry 127.0.0.1:" in r.stderr


def test_concurrent_pulls_share_downloads(daemon: Daemon, registry: RegistryServer, workdir: Path) -> None:
    import os
    import threading

    layout = build_layout(workdir / "oci", [{f"f{i}.bin": os.urandom(3 << 20)} for i in range(3)])
    skopeo_push(layout, registry, "shared:1")
    ref = f"{registry.host}/shared:1"
    results: list[Any] = []

    def pull() -> None:
        try:
            results.append(_d(dist(daemon).pull(ref)))
        except BaseException as e:
            results.append(e)

    threads = [threading.Thread(target=pull) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 3 and all(isinstance(r, dict) for r in results), results
    assert len({r["digest"] for r in results}) == 1
    index = json.loads((layout / "index.json").read_text())
    mf = json.loads((layout / "blobs" / "sha256" / index["manifests"][0]["digest"][7:]).read_text())
    for layer in mf["layers"]:
        assert registry.requests("GET", f"/blobs/{layer['digest']}") == 1


def test_pull_docker_schema2_plain_tar_and_zstd_layers(
    daemon: Daemon, registry: RegistryServer, workdir: Path
) -> None:
    skopeo_push(
        build_layout(workdir / "v2", [{"docker.txt": b"schema2\n"}]), registry, "v2s2:1", docker_format=True
    )
    raw = skopeo_inspect(registry, "v2s2:1", raw=True)
    assert raw["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    img = _d(dist(daemon).pull(f"{registry.host}/v2s2:1"))
    assert img["media_type"] == "application/vnd.docker.distribution.manifest.v2+json"
    assert find_in_snapshots(daemon.root, "docker.txt")

    skopeo_push(
        build_layout(workdir / "plain", [{"plain.txt": b"tar\n"}], compress=False), registry, "plain:1"
    )
    dist(daemon).pull(f"{registry.host}/plain:1")
    assert find_in_snapshots(daemon.root, "plain.txt")
    skopeo_push(
        build_layout(workdir / "zstd", [{"zstd.txt": b"zstd\n"}], compress="zstd"), registry, "zstd:1"
    )
    dist(daemon).pull(f"{registry.host}/zstd:1")
    assert find_in_snapshots(daemon.root, "zstd.txt")
    with pytest.raises(errors.InvalidArgument) as ei:
        dist(daemon).pull(f"{registry.host}/plain:1", platform="linux/arm64")
    assert "not the requested platform" in ei.value.message


def test_pull_leaves_no_lease_or_ingest(daemon: Daemon, registry: RegistryServer, workdir: Path) -> None:
    import sqlite3

    skopeo_push(build_layout(workdir / "oci"), registry, "lease:1")
    dist(daemon).pull(f"{registry.host}/lease:1")
    with pytest.raises(errors.NotFound):
        dist(daemon).pull(f"{registry.host}/lease:2")
    db = sqlite3.connect(daemon.root / "metadata.db")
    try:
        assert db.execute("SELECT COUNT(*) FROM leases").fetchone()[0] == 0
        assert db.execute("SELECT COUNT(*) FROM lease_resources").fetchone()[0] == 0
    finally:
        db.close()
    assert not list((daemon.root / "content" / "ingest").iterdir())


def test_pull_busybox_image_from_registry(daemon: Daemon, registry: RegistryServer, workdir: Path) -> None:
    from tests.fixtures.registry import push_busybox

    ref = push_busybox(registry, workdir)
    img = dist(daemon).pull(ref)
    assert img.config["config"]["Cmd"] == ["/bin/sh"]
    sh = find_in_snapshots(daemon.root, "bin/sh")
    assert sh and any(p.is_symlink() for p in sh)


def test_pull_api_refuses_bad_bodies(daemon: Daemon) -> None:
    t = daemon.client()._t
    for body, words in (
        ([1, 2], "JSON object"),
        ({}, "'reference' is required"),
        ({"reference": 5}, "'reference' must be of JSON type string"),
        ({"reference": "busybox", "platform": "a/b/c/d"}, "invalid platform"),
        ({"reference": "busybox", "auth": "x"}, "'auth' must be of JSON type object"),
    ):
        with pytest.raises(errors.InvalidArgument) as ei:
            list(t.stream("POST", "/images/pull", json_body=body))
        assert words in ei.value.message
    with pytest.raises(errors.InvalidArgument):
        t.post("/auth/login", json_body={"serveraddress": "127.0.0.1:1", "username": "u"})


def test_pull_repeated_layer_and_many_layers(daemon: Daemon, registry: RegistryServer, workdir: Path) -> None:
    """The same blob twice in one manifest (as docker's empty layers are), among many."""
    same = {"same.txt": b"same\n"}
    trees = [same, *({f"n{i}.txt": b"%d\n" % i} for i in range(12)), same]
    skopeo_push(build_layout(workdir / "oci", trees), registry, "many:1")
    seen: list[dict[str, Any]] = []
    img = _d(dist(daemon).pull(f"{registry.host}/many:1", progress=seen.append))
    assert len(img["layers"]) == 14
    assert len({m["id"] for m in seen if m.get("status") == "Pull complete"}) == 13
    assert find_in_snapshots(daemon.root, "n11.txt")


class _SlowLink(RegistryLink):
    """A link that sends blobs at ~``rate`` bytes/s, as a slow network would, and counts
    how many blob downloads overlap."""

    def __init__(self, upstream: str, rate: int) -> None:
        self.rate = rate
        self.active = 0
        self.max_active = 0
        self._lock = threading.Lock()
        super().__init__(upstream)

    def send_blob(self, out: BinaryIO, body: bytes) -> None:
        with self._lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            step = max(1, self.rate // 20)
            t0 = time.monotonic()
            for i in range(0, len(body), step):
                out.write(body[i : i + step])
                # The simulated link's pace, not a synchronisation. Paced by the clock:
                # a late wake-up on a busy machine is made up at the next step instead
                # of adding up (24 x sleep(0.05) drifted ~1 s under load, close to the
                # serial time the test must beat).
                ahead = t0 + (i + step) / self.rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
        finally:
            with self._lock:
                self.active -= 1


def test_slow_link_downloads_in_parallel(registry: RegistryServer, workdir: Path) -> None:
    """On a slow link the layer downloads overlap (up to max_concurrent_downloads);
    on a fast one they go bottom layer first (see the staggered start in pull.py)."""
    import os
    import time

    layers = [{f"s{i}.bin": os.urandom(600_000)} for i in range(4)]
    skopeo_push(build_layout(workdir / "oci", layers), registry, "slow:1")
    link = _SlowLink(registry.host, rate=500_000)  # 1.2 s a layer
    (workdir / "d").mkdir()
    d = Daemon(workdir / "d", extra_config="[registries]\nmax_concurrent_downloads = 3\n").start()
    try:
        t0 = time.monotonic()
        dist(d).pull(f"{link.host}/slow:1")
        took = time.monotonic() - t0
    finally:
        d.stop()
        link.close()
    assert link.max_active == 3
    # One after another the transfers alone would take 4.8 s; a loaded machine adds
    # overhead, so only the gross bound is checked.
    assert took < 4 * 1.2


def _rewrite_config(layout: Path, change: Any) -> None:
    """Edit the config of a one-image layout (and the manifest and index that point to it)."""
    import hashlib

    blobs = layout / "blobs" / "sha256"
    index = json.loads((layout / "index.json").read_text())
    mdesc = index["manifests"][0]
    manifest = json.loads((blobs / mdesc["digest"][7:]).read_text())
    config = json.loads((blobs / manifest["config"]["digest"][7:]).read_text())
    change(config)
    data = json.dumps(config).encode()
    (blobs / hashlib.sha256(data).hexdigest()).write_bytes(data)
    manifest["config"].update(digest="sha256:" + hashlib.sha256(data).hexdigest(), size=len(data))
    mdata = json.dumps(manifest).encode()
    (blobs / hashlib.sha256(mdata).hexdigest()).write_bytes(mdata)
    mdesc.update(digest="sha256:" + hashlib.sha256(mdata).hexdigest(), size=len(mdata))
    (layout / "index.json").write_text(json.dumps(index))


def test_pull_refuses_inconsistent_images(daemon: Daemon, registry: RegistryServer, workdir: Path) -> None:
    """A config whose diff IDs do not match the layers is refused, and nothing is named."""
    layout = build_layout(workdir / "a", [{"a.txt": b"a"}, {"b.txt": b"b"}])
    _rewrite_config(layout, lambda c: c["rootfs"]["diff_ids"].pop())
    skopeo_push(layout, registry, "short:1")
    with pytest.raises(errors.InvalidArgument) as ei:
        dist(daemon).pull(f"{registry.host}/short:1")
    assert "2 layers but the config 1 diff_ids" in ei.value.message

    layout = build_layout(workdir / "b", [{"c.txt": b"c"}])
    _rewrite_config(layout, lambda c: c["rootfs"].update(diff_ids=["sha256:" + "1" * 64]))
    skopeo_push(layout, registry, "lying:1")
    with pytest.raises(errors.DigestMismatch):
        dist(daemon).pull(f"{registry.host}/lying:1")
    names = [i.name for i in daemon.client().images.list()]
    assert not any("short" in n or "lying" in n for n in names)
    assert not find_in_snapshots(daemon.root, "c.txt")


def test_pull_of_a_malicious_layer_is_refused(
    daemon: Daemon, registry: RegistryServer, workdir: Path
) -> None:
    """A layer that would write outside its snapshot fails the pull with UnsafeContent."""
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        ti = tarfile.TarInfo("../../escaped-by-podkit-test.txt")
        ti.size = 4
        tf.addfile(ti, io.BytesIO(b"evil"))
    layout = build_layout(workdir / "oci", [], raw_layers=[buf.getvalue()])
    skopeo_push(layout, registry, "evil:1")
    r = daemon.cli("pull", f"{registry.host}/evil:1")
    assert r.returncode == 1 and r.stderr.startswith("Error: ")
    assert not list(daemon.root.parent.glob("**/escaped-by-podkit-test.txt"))
    assert f"{registry.host}/evil:1" not in [i.name for i in daemon.client().images.list()]


def test_pull_is_per_namespace_but_content_is_shared(
    daemon: Daemon, registry: RegistryServer, workdir: Path
) -> None:
    skopeo_push(build_layout(workdir / "oci"), registry, "ns:1")
    ref = f"{registry.host}/ns:1"
    daemon.client(namespace="team-a").images.pull(ref)
    assert ref not in [i.name for i in daemon.client(namespace="team-b").images.list()]
    seen: list[dict[str, Any]] = []
    daemon.client(namespace="team-b").images.pull(ref, progress=seen.append)
    assert [m["status"] for m in seen if "current" in m] == ["Already exists"]
    assert ref in [i.name for i in daemon.client(namespace="team-b").images.list()]


def test_pull_and_push_publish_events(daemon: Daemon, registry: RegistryServer, workdir: Path) -> None:
    import time

    skopeo_push(build_layout(workdir / "oci"), registry, "ev:1")
    t0 = time.time() - 1
    c = daemon.client()
    c.images.pull(f"{registry.host}/ev:1")
    c.images.push(f"{registry.host}/ev:1")
    evs = list(c.events(since=t0, until=time.time(), type="image"))
    actions = [(e["action"], e["id"]) for e in evs]
    pulls = [e for e in evs if e["action"] == "pull"]
    assert len(pulls) == 1, pulls  # one event per pull, from the image service
    assert pulls[0]["attributes"]["name"] == f"{registry.host}/ev:1"
    assert pulls[0]["id"] == c.images.get(f"{registry.host}/ev:1").id
    assert ("push", f"{registry.host}/ev:1") in actions


def test_pull_of_a_non_image_artifact_is_refused(
    daemon: Daemon, registry: RegistryServer, workdir: Path
) -> None:
    """An OCI artifact (here a Helm chart's shape) is not a container image: refused, by name."""
    import asyncio

    from podkit.images.oci import Descriptor
    from podkit.images.reference import parse
    from podkit.images.registry.client import RegistryClient
    from podkit.store import ContentStore

    store = ContentStore(workdir / "store")
    cfg = store.put(b"{}")
    chart = store.put(b"not a tarball of a root file system")
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.cncf.helm.config.v1+json", "digest": cfg, "size": 2},
            "layers": [
                {
                    "mediaType": "application/vnd.cncf.helm.chart.content.v1.tar+gzip",
                    "digest": chart,
                    "size": store.size(chart),
                }
            ],
        }
    ).encode()

    async def push() -> None:
        client = RegistryClient()
        try:
            repo = client.repository(parse(f"{registry.host}/charts/app:1"), push=True)
            for d in (cfg, chart):
                await repo.upload_blob(
                    Descriptor("application/octet-stream", d, store.size(d)), str(store.path(d))
                )
            await repo.put_manifest("1", "application/vnd.oci.image.manifest.v1+json", manifest)
        finally:
            await client.close()

    asyncio.run(push())
    with pytest.raises(errors.InvalidArgument) as ei:
        dist(daemon).pull(f"{registry.host}/charts/app:1")
    assert "not a container image" in ei.value.message and "helm" in ei.value.message
