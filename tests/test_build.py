"""`podkit build` against a real daemon (RUN steps under runc, overlay snapshots): the
core instructions give the config and tree they should, the cache hits on an unchanged
step and misses from a changed file on, --no-cache rebuilds, a failing step names its
Dockerfile line, and no step container, view mount or snapshot is left behind."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import Daemon

DOCKERFILE = """\
FROM busybox
ARG GREETING=hi
ENV APP=/app
WORKDIR $APP
COPY hello.txt sub ./
COPY --chown=1000:1000 --chmod=600 hello.txt /owned
RUN echo "$GREETING" > greet && echo ran-step
LABEL a=b c="d e"
EXPOSE 8080/tcp
USER 1000
ENTRYPOINT ["/bin/cat"]
CMD ["/app/greet"]
"""


@pytest.fixture
def d(daemon: Daemon, busybox_image: str) -> Iterator[Daemon]:
    yield daemon


def _ctx(tmp: Path, dockerfile: str = DOCKERFILE) -> Path:
    ctx = tmp / "ctx"
    (ctx / "sub").mkdir(parents=True, exist_ok=True)
    (ctx / "hello.txt").write_text("hello\n")
    (ctx / "sub" / "a").write_text("s\n")
    (ctx / "Dockerfile").write_text(dockerfile)
    return ctx


def _leftovers(d: Daemon) -> list[str]:
    c = d.client("podkit-build")
    out = [x.id for x in c.containers.list(all=True)]
    with open("/proc/self/mountinfo") as f:
        out += [line.split()[4] for line in f if str(d.base) in line and "/build/" in line]
    return out


def test_build_core_instructions_and_cache(d: Daemon, tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    r = d.cli("build", "-t", "built:1", "--build-arg", "GREETING=bonjour", str(ctx))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Step 7/12 : RUN" in r.stdout and "\nran-step\n" in r.stdout
    assert "Successfully tagged built:1" in r.stdout
    img = d.client().images.get("built:1")
    cfg = img.config["config"]
    assert "APP=/app" in cfg["Env"]
    assert cfg["WorkingDir"] == "/app" and cfg["User"] == "1000"
    assert cfg["Labels"] == {"a": "b", "c": "d e"}
    assert cfg["ExposedPorts"] == {"8080/tcp": {}}
    assert cfg["Entrypoint"] == ["/bin/cat"] and cfg["Cmd"] == ["/app/greet"]
    r = d.cli("run", "--rm", "built:1")
    assert r.returncode == 0 and r.stdout == "bonjour\n", r.stderr
    r = d.cli(
        "run",
        "--rm",
        "--entrypoint",
        "",
        "built:1",
        "sh",
        "-c",
        "cat /app/hello.txt /app/a; stat -c '%u:%g %a' /owned",
    )
    assert r.stdout.split("\n")[:3] == ["hello", "s", "1000:1000 600"], r.stdout + r.stderr

    # all cached
    r = d.cli("build", "-t", "built:2", "--build-arg", "GREETING=bonjour", str(ctx))
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("Using cache") == 10 and "\nran-step" not in r.stdout
    assert d.client().images.get("built:2").id == img.id

    # a changed file: the COPY and everything after miss
    (ctx / "sub" / "a").write_text("changed\n")
    r = d.cli("build", "-q", "--build-arg", "GREETING=bonjour", str(ctx))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() != img.id and r.stdout.strip().startswith("sha256:")

    r = d.cli("build", "--no-cache", "--build-arg", "GREETING=bonjour", str(ctx))
    assert "Using cache" not in r.stdout and "\nran-step" in r.stdout
    assert _leftovers(d) == []


def test_build_failure_names_the_line_and_leaves_nothing(d: Daemon, tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, "FROM busybox\nRUN true\n\nRUN exit 3\nRUN echo never\n")
    r = d.cli("build", str(ctx))
    assert r.returncode != 0
    assert "Dockerfile:4" in r.stderr and "returned a non-zero code: 3" in r.stderr
    assert _leftovers(d) == []
    ctx = _ctx(tmp_path, "FROM busybox\nFOO bar\n")
    r = d.cli("build", str(ctx))
    assert r.returncode != 0 and "Dockerfile:2: unknown instruction: FOO" in r.stderr
    r = d.cli("build", "-f", "-", str(ctx), input=b"FROM scratch\nCOPY nosuch /x\n")
    assert r.returncode != 0 and "Dockerfile:2" in r.stderr and "nosuch" in r.stderr


def test_build_from_scratch_multistage_target_and_stdin(d: Daemon, tmp_path: Path) -> None:
    df = (
        "FROM busybox AS builder\n"
        "RUN mkdir /out && echo built > /out/artifact\n"
        "FROM scratch AS final\n"
        "COPY --from=builder /out/artifact /artifact\n"
        "COPY hello.txt /\n"
        "FROM busybox AS other\n"
        "RUN false\n"
    )
    ctx = _ctx(tmp_path, df)
    r = d.cli("build", "--target", "final", "-t", "tiny", "--iidfile", str(tmp_path / "iid"), str(ctx))
    assert r.returncode == 0, r.stdout + r.stderr
    iid = (tmp_path / "iid").read_text()
    img = d.client().images.get("tiny")
    assert img.id == iid and len(img.diff_ids) == 2
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        tf.add(ctx / "hello.txt", "hello.txt")
        ti = tarfile.TarInfo("Dockerfile")
        data = b"FROM busybox\nCOPY hello.txt /h\nCMD cat /h\n"
        ti.size = len(data)
        tf.addfile(ti, io.BytesIO(data))
    r = d.cli("build", "-t", "fromtar", "-", input=buf.getvalue())
    assert r.returncode == 0, r.stderr
    r = d.cli("run", "--rm", "fromtar")
    assert r.stdout == "hello\n"
    assert _leftovers(d) == []


def test_build_heredoc_add_tar_onbuild_shell_ignore_and_history(d: Daemon, tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, "")
    with tarfile.open(ctx / "bundle.tar", "w") as tf:
        tf.add(ctx / "hello.txt", "inner/hello.txt")
    (ctx / "secret.key").write_text("no")
    (ctx / ".dockerignore").write_text("*.key\n")
    base = "FROM busybox\nONBUILD RUN echo onbuild-ran > /ob\n"
    (ctx / "Dockerfile").write_text(base)
    assert d.cli("build", "-t", "obbase", str(ctx)).returncode == 0
    df = (
        "FROM obbase\n"
        'SHELL ["/bin/sh", "-ec"]\n'
        "RUN <<EOT\n"
        "echo one > /multi\n"
        "echo two >> /multi\n"
        "EOT\n"
        "COPY <<EOT /inline.txt\n"
        "inline body\n"
        "EOT\n"
        "ADD bundle.tar /unpacked/\n"
        "COPY . /ctx/\n"
        "STOPSIGNAL SIGUSR1\n"
        "HEALTHCHECK NONE\n"
    )
    (ctx / "Dockerfile").write_text(df)
    r = d.cli("build", "-t", "extras", str(ctx))
    assert r.returncode == 0, r.stdout + r.stderr
    r = d.cli(
        "run",
        "--rm",
        "extras",
        "sh",
        "-c",
        "cat /ob /multi /inline.txt /unpacked/inner/hello.txt; ls /ctx",
    )
    out = r.stdout.split("\n")
    assert out[:5] == ["onbuild-ran", "one", "two", "inline body", "hello"], r.stdout + r.stderr
    assert "secret.key" not in r.stdout and "bundle.tar" in r.stdout
    cfg = d.client().images.get("extras").config
    assert cfg["config"]["StopSignal"] == "SIGUSR1" and cfg["config"]["Shell"] == ["/bin/sh", "-ec"]
    assert cfg["config"]["Healthcheck"] == {"Test": ["NONE"]}
    assert not cfg["config"].get("OnBuild")
    r = d.cli("image", "history", "--no-trunc", "extras")
    assert "ADD file" in r.stdout or "ADD" in r.stdout, r.stdout
    assert "STOPSIGNAL SIGUSR1" in r.stdout
    assert _leftovers(d) == []


def test_interrupted_build_leaves_nothing(d: Daemon, tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys

    from tests.helpers import wait_for

    ctx = _ctx(tmp_path, "FROM busybox\nRUN sleep 300\n")
    env = dict(os.environ, PODKIT_HOST=d.host)
    p = subprocess.Popen(
        [str(Path(sys.executable).parent / "podkit"), "build", str(ctx)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        c = d.client("podkit-build")
        wait_for(lambda: any(x.state == "running" for x in c.containers.list(all=True)), timeout=30)
        p.send_signal(signal.SIGINT)
        p.wait(timeout=30)
        assert p.returncode != 0
        wait_for(lambda: _leftovers(d) == [], timeout=30, what="the step container's removal")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def _db_rows(d: Daemon, sql: str, args: tuple[str, ...] = ()) -> list[tuple[object, ...]]:
    import sqlite3

    con = sqlite3.connect(d.root / "metadata.db")
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def _blob(d: Daemon, digest: str) -> bytes:
    return (d.root / "content" / "blobs" / "sha256" / digest.split(":", 1)[1]).read_bytes()


def _chains(d: Daemon, name: str) -> tuple[list[str], list[dict[str, str]]]:
    """The chain IDs and layer descriptors of image ``name`` (of namespace default)."""
    import json

    from podkit.images.image import chain_id_of

    [(digest,)] = _db_rows(
        d, "SELECT digest FROM images WHERE namespace='default' AND name LIKE ?", (f"%{name}",)
    )
    manifest = json.loads(_blob(d, str(digest)))
    cfg = json.loads(_blob(d, manifest["config"]["digest"]))
    chains: list[str] = []
    for diff_id in cfg["rootfs"]["diff_ids"]:
        chains.append(chain_id_of(chains[-1] if chains else None, diff_id))
    return chains, manifest["layers"]


def _tree_entries(root: Path) -> set[tuple[str, str, int, int]]:
    """(path, type, mode, uid) of a snapshot's own tree; a whiteout device is 'w'."""
    import os
    import stat

    out = set()
    for dirpath, dirs, files in os.walk(root):
        for n in dirs + files:
            p = Path(dirpath) / n
            st = os.lstat(p)
            rel = str(p.relative_to(root))
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                out.add((rel, "w", 0, 0))
                continue
            kind = "d" if stat.S_ISDIR(st.st_mode) else "l" if stat.S_ISLNK(st.st_mode) else "f"
            out.add((rel, kind, 0 if kind == "l" else stat.S_IMODE(st.st_mode), st.st_uid))
    return out


def _layer_entries(data: bytes) -> set[tuple[str, str, int, int]]:
    import gzip

    out = set()
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(data))) as tf:
        for m in tf:
            head, _, base = m.name.rstrip("/").rpartition("/")
            if base.startswith(".wh."):
                out.add(((head + "/" if head else "") + base[4:], "w", 0, 0))
                continue
            kind = "d" if m.isdir() else "l" if m.issym() else "f"
            out.add((m.name.rstrip("/"), kind, 0 if kind == "l" else m.mode, m.uid))
    return out


def test_run_step_snapshot_is_committed_as_its_layer(d: Daemon, tmp_path: Path) -> None:
    """A RUN step's snapshot becomes its layer's (committed under the chain ID, not
    unpacked again from the blob), holding just what the layer holds: the runtime's
    mount targets pruned, a deletion a whiteout; the next RUN and a run of the image
    see the same tree."""
    import json

    ctx = _ctx(
        tmp_path,
        "FROM busybox\n"
        "RUN mkdir -p /x/y && echo hi > /x/y/f && echo keep > /x/k && ln -s /x /lnk\n"
        "RUN rm /x/y/f && echo two > /x/two && cat /x/k\n",
    )
    r = d.cli("build", "-t", "layered:1", str(ctx))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "\nkeep\n" in r.stdout
    chains, layers = _chains(d, "layered:1")
    for chain, layer in zip(chains[-2:], layers[-2:], strict=True):
        [(driver, sid, labels)] = _db_rows(
            d, "SELECT driver, id, labels FROM snapshots WHERE key=?", (chain,)
        )
        lab = json.loads(str(labels))
        assert lab.get("podkit/layer") == layer["digest"] and "podkit/extract" not in lab, lab
        assert not any(k.startswith("podkit/container") for k in lab), lab
        tree = d.root / "snapshots" / str(driver) / str(sid) / "fs"
        assert _tree_entries(tree) == _layer_entries(_blob(d, layer["digest"]))
    r = d.cli("run", "--rm", "layered:1", "sh", "-c", "ls /x/y; cat /x/two /lnk/k")
    assert r.returncode == 0 and r.stdout == "two\nkeep\n", r.stdout + r.stderr
    assert _leftovers(d) == []
    from tests.helpers import wait_for

    # `run --rm` returns before its container's removal is over
    wait_for(lambda: _db_rows(d, "SELECT key FROM snapshots WHERE kind != 'committed'") == [], timeout=30)


def test_docker_api_build_cancelled_when_the_client_leaves(d: Daemon, tmp_path: Path) -> None:
    """A Docker API /build whose client closes its connection during a RUN that prints
    nothing more is cancelled at once, not at the next output line (there is none for
    300 s): its step container, snapshot and mounts go."""
    from tests.helpers import wait_for
    from tests.rawhttp import read_until, send_request

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        data = b"FROM busybox\nRUN echo started''-run && sleep 300\n"
        ti = tarfile.TarInfo("Dockerfile")
        ti.size = len(data)
        tf.addfile(ti, io.BytesIO(data))
    s = send_request(
        str(d.state / "docker.sock"),
        "POST",
        "/v1.41/build?t=left:1",
        buf.getvalue(),
        {"Content-Type": "application/x-tar"},
    )
    try:
        assert read_until(s, b"started-run").startswith(b"HTTP/1.1 200")
        c = d.client("podkit-build")
        assert any(x.state == "running" for x in c.containers.list(all=True))
    finally:
        s.close()

    def clean() -> bool:
        active = _db_rows(d, "SELECT key FROM snapshots WHERE kind != 'committed'")
        return _leftovers(d) == [] and active == []

    wait_for(clean, timeout=20, what="the cancelled build's container, snapshot and mounts to go")
    assert [i for i in d.client().images.list() if "left:1" in str(i.name)] == []


def test_build_cut_short_by_a_crash_is_swept_at_start(d: Daemon, tmp_path: Path) -> None:
    """podkitd SIGKILLed during a RUN: the next start removes the step container and the
    work directory (a --from view, mounted only during its COPY, would go too)."""
    import os
    import subprocess
    import sys

    from tests.helpers import wait_for

    ctx = _ctx(
        tmp_path,
        "FROM busybox AS one\nRUN echo x > /x\nFROM busybox\nCOPY --from=one /x /x\nRUN sleep 300\n",
    )
    env = dict(os.environ, PODKIT_HOST=d.host)
    p = subprocess.Popen(
        [str(Path(sys.executable).parent / "podkit"), "build", str(ctx)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        c = d.client("podkit-build")
        wait_for(lambda: any(x.state == "running" for x in c.containers.list(all=True)), timeout=60)
        assert any((d.state / "build").iterdir())
        d.kill()
        p.wait(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    d.restart()
    assert d.client("podkit-build").containers.list(all=True) == []
    assert list((d.state / "build").iterdir()) == []
    assert _db_rows(d, "SELECT key FROM snapshots WHERE kind != 'committed'") == []
    assert _leftovers(d) == []


def test_run_step_snapshot_is_its_layer_on_the_copying_snapshotter(
    tmp_path: Path, busybox_tarball: Path
) -> None:
    """The same on the copying snapshotter (full trees): the RUN step's tree, without the
    runtime's mount targets, is committed as its layer; a run of the image sees the
    deletion and the new file."""
    import json

    from tests.fixtures.images import import_busybox

    (tmp_path / "d").mkdir()
    d = Daemon(tmp_path / "d", extra_config='[images]\nsnapshotter = "native"\n').start()
    try:
        import_busybox(d, busybox_tarball)
        ctx = _ctx(tmp_path, "FROM busybox\nRUN mkdir /x && echo hi > /x/f && rm /etc/group\n")
        r = d.cli("build", "-t", "native:1", str(ctx))
        assert r.returncode == 0, r.stdout + r.stderr
        chains, _ = _chains(d, "native:1")
        [(sid, labels)] = _db_rows(d, "SELECT id, labels FROM snapshots WHERE key=?", (chains[-1],))
        lab = json.loads(str(labels))
        assert "podkit/extract" not in lab and not any(k.startswith("podkit/container") for k in lab)
        tree = d.root / "snapshots" / "native" / str(sid) / "fs"
        assert (tree / "x" / "f").read_text() == "hi\n" and not (tree / "etc" / "group").exists()
        for target in ("etc/hosts", "etc/resolv.conf", "etc/hostname"):  # made by the runtime, empty
            p = tree / target
            assert not p.exists() or p.stat().st_size > 0, target
        r = d.cli("run", "--rm", "native:1", "sh", "-c", "cat /x/f; ls /etc/group")
        assert r.stdout.startswith("hi\n") and r.returncode != 0, r.stdout + r.stderr
    finally:
        d.stop()
        d.drop_host_network()


def test_copy_resolves_symlinks_inside_the_context_and_the_stage(d: Daemon, tmp_path: Path) -> None:
    """A symlink on the way to a COPY source leads inside the context (or the --from
    stage), never to the daemon host's files: an uploaded context's ``evil -> /secret``
    or ``up -> ../../..`` finds nothing, a stage's ``/lnk -> /etc`` is its own /etc."""
    import os

    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "s.txt").write_text("HOST SECRET\n")
    for source, link in (("evil/s.txt", str(secret)), (f"up{secret}/s.txt", "../../../../../../..")):
        ctx = _ctx(tmp_path, f"FROM busybox\nCOPY {source} /s\n")
        name = source.split("/", 1)[0]
        if os.path.lexists(ctx / name):
            os.unlink(ctx / name)
        os.symlink(link, ctx / name)
        r = d.cli("build", str(ctx))
        assert r.returncode != 0 and "no such file or directory in the build context" in r.stderr, r.stdout
        os.unlink(ctx / name)
    ctx = _ctx(
        tmp_path,
        "FROM busybox AS one\nRUN ln -s /etc /lnk\nFROM busybox\nCOPY --from=one /lnk/passwd /p\n"
        'CMD ["cat", "/p"]\n',
    )
    r = d.cli("build", "-t", "links:1", str(ctx))
    assert r.returncode == 0, r.stdout + r.stderr
    ours = d.cli("run", "--rm", "links:1").stdout
    theirs = d.cli("run", "--rm", "busybox", "cat", "/etc/passwd").stdout
    assert ours == theirs and ours != Path("/etc/passwd").read_text()


def test_the_dockerfile_is_read_inside_the_context(d: Daemon) -> None:
    """``dockerfile=../..`` or a Dockerfile that is a symlink to an absolute path reads
    nothing of the daemon's host (its errors would echo the file's lines)."""
    from tests.rawhttp import call

    for name, member in (("../" * 40 + "etc/passwd", None), ("Dockerfile", "/etc/passwd")):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tf:
            ti = tarfile.TarInfo("Dockerfile")
            if member is not None:
                ti.type, ti.linkname = tarfile.SYMTYPE, member
                tf.addfile(ti)
            else:
                data = b"FROM busybox\n"
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))
        status, body = call(
            str(d.socket),
            "POST",
            f"/v1/build?dockerfile={name}",
            buf.getvalue(),
            headers={"Content-Type": "application/x-tar"},
        )
        text = body.decode()
        assert "root:" not in text, text
        assert ("outside the build context" in text) or ("cannot find Dockerfile" in text), text
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        data = b"FROM busybox\n"
        ti = tarfile.TarInfo("Dockerfile")
        ti.size = len(data)
        tf.addfile(ti, io.BytesIO(data))
        ti = tarfile.TarInfo(".dockerignore")
        ti.type, ti.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tf.addfile(ti)
    status, body = call(
        str(d.socket), "POST", "/v1/build", buf.getvalue(), headers={"Content-Type": "application/x-tar"}
    )
    assert ".dockerignore is a symbolic link" in body.decode(), body
