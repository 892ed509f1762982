"""The content store and metadata DB: verification, atomic commits, crash leftovers."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from podkit import errors
from podkit.store import ContentStore, Database, Digest


def test_put_read_roundtrip(workdir: Path) -> None:
    cs = ContentStore(workdir)
    d = cs.put(b"hello")
    assert d == "sha256:" + hashlib.sha256(b"hello").hexdigest()
    assert cs.read(d) == b"hello"
    assert cs.size(d) == 5
    assert list(cs) == [d]
    assert os.stat(cs.path(d)).st_mode & 0o777 == 0o444


def test_streamed_write_verifies_digest(workdir: Path) -> None:
    cs = ContentStore(workdir)
    good = Digest.of(b"abcdef")
    w = cs.writer(good, 6)
    w.write(b"abc")
    w.write(b"def")
    assert w.commit() == good
    bad = cs.writer(Digest.of(b"something else"), 6)
    bad.write(b"abcdeX")
    with pytest.raises(errors.DigestMismatch):
        bad.commit()
    # nothing published under the wrong name, nothing left in ingest
    assert not cs.has(Digest.of(b"something else"))
    assert list(cs.ingest_dir.iterdir()) == []


def test_size_mismatch_refused(workdir: Path) -> None:
    cs = ContentStore(workdir)
    w = cs.writer(None, 3)
    with pytest.raises(errors.DigestMismatch):
        w.write(b"toolong")
    short = cs.writer(None, 10)
    short.write(b"abc")
    with pytest.raises(errors.DigestMismatch):
        short.commit()
    assert list(cs.ingest_dir.iterdir()) == []


def test_invalid_digest_refused(workdir: Path) -> None:
    cs = ContentStore(workdir)
    for bad in ("md5:abc", "sha256:xyz", "sha256:" + "A" * 64, "../../etc/passwd"):
        with pytest.raises(errors.InvalidArgument):
            cs.path(bad)


def test_killed_writer_leaves_no_final_blob(workdir: Path) -> None:
    """A process SIGKILLed mid-write leaves only ingest garbage, swept at start-up."""
    data_digest = Digest.of(b"x" * (1 << 20))
    code = f"""
import os, signal
from podkit.store import ContentStore
cs = ContentStore({str(workdir)!r})
w = cs.writer({data_digest!r}, 1 << 20)
w.write(b"x" * (1 << 19))
w._f.flush()
os.kill(os.getpid(), signal.SIGKILL)
"""
    r = subprocess.run([sys.executable, "-c", code], timeout=30)
    assert r.returncode == -9
    cs = ContentStore(workdir)
    assert not cs.has(data_digest)
    assert len(list(cs.ingest_dir.iterdir())) == 1
    assert cs.sweep_ingest() == 1
    assert list(cs.ingest_dir.iterdir()) == []


def test_database_transactions(workdir: Path) -> None:
    db = Database(workdir / "m.db")
    db.schema("t", "CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY, v TEXT)")
    with db.tx() as c:
        c.execute("INSERT INTO t VALUES ('a', '1')")
        with db.tx() as c2:  # nested joins the outer transaction
            c2.execute("INSERT INTO t VALUES ('b', '2')")
    with pytest.raises(RuntimeError), db.tx() as c:
        c.execute("INSERT INTO t VALUES ('c', '3')")
        raise RuntimeError("boom")
    assert [r["k"] for r in db.query("SELECT k FROM t ORDER BY k")] == ["a", "b"]
    assert db.one("PRAGMA journal_mode")[0] == "wal"
    db.ensure_namespace("default")
    db.ensure_namespace("default")
    assert db.namespaces() == ["default"]
    db.close()
