#!/usr/bin/env python3
"""Pull benchmark: podkit vs skopeo (no unpack) vs containerd's ctr (fetch + unpack).

Builds a multi-layer image of a few hundred MB (random bytes mixed with text, so it
neither compresses to nothing nor is all noise), pushes it with skopeo to Debian's
docker-registry started on 127.0.0.1, then times, round after round and side by
side, a cold pull (fresh store each time) with:

  podkit pull         into a fresh podkitd root (fetch, verify, unpack into overlayfs)
  skopeo copy dir:    fetch and verify only, no unpack
  ctr images pull     containerd 1.6 with its own root/state/socket (fetch + unpack),
                      when containerd is installed (apt-get install containerd)

and also the `podkit version` round trip (CLI start + one API call) and podkitd's
idle RSS. Prints medians and ratios. Usage: bench/pull.py [--runs N] [--mb SIZE]
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import random
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

BIN = Path(sys.executable).parent


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait(cond, timeout: float, what: str) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.02)


# -- the image ------------------------------------------------------------------------


def _compress(data: bytes) -> bytes:
    try:
        from isal import igzip

        return igzip.compress(data, compresslevel=2)
    except ImportError:
        return gzip.compress(data, compresslevel=1)


def build_image(layout: Path, total_mb: int, n_layers: int = 6) -> int:
    """An OCI layout with n_layers layers of ~total_mb MB together; returns compressed bytes."""
    rnd = random.Random(20261127)
    words = [rnd.randbytes(rnd.randint(2, 9)).hex()[: rnd.randint(3, 12)] for _ in range(5000)]
    text = " ".join(rnd.choice(words) for _ in range(300_000)).encode()  # ~2.5 MB of "text"
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def put(data: bytes) -> dict:
        d = hashlib.sha256(data).hexdigest()
        (blobs / d).write_bytes(data)
        return {"digest": f"sha256:{d}", "size": len(data)}

    per_layer = total_mb * (1 << 20) // n_layers
    layers, diff_ids, packed = [], [], 0
    for i in range(n_layers):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
            left, j = per_layer, 0
            d = tarfile.TarInfo(f"layer{i}")
            d.type, d.mode = tarfile.DIRTYPE, 0o755
            tf.addfile(d)
            while left > 0:
                size = min(left, rnd.randint(64 << 10, 4 << 20))
                if j % 2:
                    off = rnd.randrange(0, len(text) - 1)
                    data = (text[off:] + text)[:size]
                else:
                    data = rnd.randbytes(size)
                ti = tarfile.TarInfo(f"layer{i}/f{j:04d}.{'txt' if j % 2 else 'bin'}")
                ti.size, ti.mode, ti.mtime = len(data), 0o644, 1_700_000_000
                tf.addfile(ti, io.BytesIO(data))
                left -= size
                j += 1
        raw = buf.getvalue()
        diff_ids.append("sha256:" + hashlib.sha256(raw).hexdigest())
        z = _compress(raw)
        packed += len(z)
        layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **put(z)})
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }
    cdesc = {"mediaType": "application/vnd.oci.image.config.v1+json", **put(json.dumps(config).encode())}
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": cdesc,
        "layers": layers,
    }
    mdesc = {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        **put(json.dumps(manifest).encode()),
        "annotations": {"org.opencontainers.image.ref.name": "latest"},
    }
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [mdesc]}))
    return packed


# -- the parts --------------------------------------------------------------------------


class Proc:
    def __init__(self, argv: list[str], logfile: Path) -> None:
        with open(logfile, "ab") as f:
            self.p = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)

    def alive(self) -> bool:
        return self.p.poll() is None

    def stop(self) -> None:
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(30)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.p.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0


def start_registry(base: Path) -> tuple[Proc, str]:
    port = free_port()
    cfg = base / "registry.yml"
    cfg.write_text(
        "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {base / 'registry-data'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    p = Proc(["/usr/bin/docker-registry", "serve", str(cfg)], base / "registry.log")
    host = f"127.0.0.1:{port}"

    def up() -> bool:
        try:
            urllib.request.urlopen(f"http://{host}/v2/", timeout=1).close()
            return True
        except (OSError, urllib.error.URLError):
            if not p.alive():
                raise SystemExit("docker-registry exited; see " + str(base / "registry.log")) from None
            return False

    wait(up, 15, "docker-registry")
    return p, host


# (bridge, subnet) of every podkitd started: its pre-warmed sandboxes make the bridge
# and rules at start-up, which outlive the daemon; dropped at the end (drop_networks).
_NETWORKS: list[tuple[str, str]] = []


def drop_networks() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.fixtures.network import scrub_subnet

    for bridge, subnet in _NETWORKS:
        if os.path.exists(f"/sys/class/net/{bridge}"):
            subprocess.run(["ip", "link", "del", bridge], capture_output=True)
        scrub_subnet(subnet)
    _NETWORKS.clear()


def start_podkitd(base: Path, extra_config: str = "") -> tuple[Proc, str]:
    base.mkdir(parents=True)
    n = secrets.randbelow(8 * 256)
    cfg = base / "podkitd.toml"
    bridge, subnet = f"pkb{secrets.token_hex(4)}", f"10.{200 + n // 256}.{n % 256}.0/24"
    _NETWORKS.append((bridge, subnet))
    cfg.write_text(f'[network]\ndefault_bridge = "{bridge}"\ndefault_subnet = "{subnet}"\n' + extra_config)
    sock = base / "state" / "podkit.sock"
    p = Proc(
        [
            str(BIN / "podkitd"),
            "--config",
            str(cfg),
            "--root",
            str(base / "root"),
            "--state",
            str(base / "state"),
            "--socket",
            str(sock),
        ],
        base / "podkitd.log",
    )
    host = f"unix://{sock}"

    def up() -> bool:
        if not p.alive():
            raise SystemExit("podkitd exited:\n" + (base / "podkitd.log").read_text()[-3000:])
        return (
            sock.exists()
            and subprocess.run([str(BIN / "podkit"), "-H", host, "version"], capture_output=True).returncode
            == 0
        )

    wait(up, 30, "podkitd")
    return p, host


def start_containerd(base: Path) -> tuple[Proc, str]:
    base.mkdir(parents=True)
    addr = base / "containerd.sock"
    cfg = base / "config.toml"
    # Only what a pull needs: no CRI plugin (it would look for CNI configs).
    cfg.write_text('version = 2\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\n')
    p = Proc(
        [
            "containerd",
            "--config",
            str(cfg),
            "--root",
            str(base / "root"),
            "--state",
            str(base / "state"),
            "--address",
            str(addr),
        ],
        base / "containerd.log",
    )

    def up() -> bool:
        if not p.alive():
            raise SystemExit("containerd exited:\n" + (base / "containerd.log").read_text()[-3000:])
        return (
            addr.exists()
            and subprocess.run(["ctr", "-a", str(addr), "version"], capture_output=True).returncode == 0
        )

    wait(up, 30, "containerd")
    return p, str(addr)


def umount_under(path: Path) -> None:
    mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
    for m in sorted((m for m in mounts if m.startswith(str(path) + "/")), key=len, reverse=True):
        subprocess.run(["umount", "-l", m], capture_output=True)


def timed(argv: list[str]) -> float:
    t = time.perf_counter()
    r = subprocess.run(argv, capture_output=True, text=True)
    dt = time.perf_counter() - t
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return dt


def settle() -> None:
    """Flush dirty pages of the previous round so it does not slow the next one.
    (The page cache is not dropped: that would hit everyone on this shared machine.)"""
    subprocess.run(["sync"])


# -- rounds ----------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5, help="pulls per tool (default 5)")
    ap.add_argument("--mb", type=int, default=240, help="uncompressed image size in MB (default 240)")
    ap.add_argument("--no-containerd", action="store_true", help="skip ctr even if installed")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root (podkitd and containerd unpack into overlayfs)")
    have_ctr = not args.no_containerd and bool(shutil.which("containerd") and shutil.which("ctr"))
    tmp = Path(tempfile.mkdtemp(prefix="podkit-bench-pull-", dir="/var/tmp"))
    procs: list[Proc] = []
    try:
        log(f"building a {args.mb} MB, 6-layer image ...")
        packed = build_image(tmp / "oci", args.mb)
        reg, host = start_registry(tmp)
        procs.append(reg)
        ref = f"{host}/bench/big:latest"
        subprocess.run(
            [
                "skopeo",
                "--insecure-policy",
                "copy",
                "-q",
                "--dest-tls-verify=false",
                f"oci:{tmp / 'oci'}:latest",
                f"docker://{ref}",
            ],
            check=True,
        )
        log(
            f"pushed {ref}: {packed / 1e6:.0f} MB compressed; {args.runs} rounds"
            + ("" if have_ctr else " (containerd not installed: ctr skipped)")
        )
        times: dict[str, list[float]] = {"podkit pull": [], "skopeo copy (no unpack)": []}
        if have_ctr:
            times["ctr images pull"] = []
        # Pulling again what is already there: the registry is asked, nothing is fetched.
        warm: dict[str, list[float]] = {"podkit pull": []}
        if have_ctr:
            warm["ctr images pull"] = []
        for i in range(args.runs):
            # podkit: a fresh daemon and store each round (not timed), then the pull.
            base = tmp / f"podkit-{i}"
            d, dhost = start_podkitd(base)
            settle()
            times["podkit pull"].append(timed([str(BIN / "podkit"), "-H", dhost, "pull", "-q", ref]))
            warm["podkit pull"].append(timed([str(BIN / "podkit"), "-H", dhost, "pull", "-q", ref]))
            d.stop()
            umount_under(base)
            shutil.rmtree(base, ignore_errors=True)

            dest = tmp / f"skopeo-{i}"
            settle()
            times["skopeo copy (no unpack)"].append(
                timed(
                    [
                        "skopeo",
                        "--insecure-policy",
                        "copy",
                        "-q",
                        "--src-tls-verify=false",
                        f"docker://{ref}",
                        f"dir:{dest}",
                    ]
                )
            )
            shutil.rmtree(dest, ignore_errors=True)

            if have_ctr:
                base = tmp / f"containerd-{i}"
                c, addr = start_containerd(base)
                settle()
                ctr_pull = ["ctr", "-a", addr, "images", "pull", "--plain-http", ref]
                times["ctr images pull"].append(timed(ctr_pull))
                warm["ctr images pull"].append(timed(ctr_pull))
                c.stop()
                umount_under(base)
                shutil.rmtree(base, ignore_errors=True)
            log(f"round {i + 1}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in times.items()))

        # podkit version round trip and idle memory. Like for like: the CRI is off on
        # both sides (containerd's plugin is disabled above), each engine answers 15
        # version calls, then both get the same settling wait.
        d, dhost = start_podkitd(tmp / "podkit-idle", "\n[cri]\nenabled = false\n")
        procs.append(d)
        rtt = [timed([str(BIN / "podkit"), "-H", dhost, "version"]) for _ in range(15)]
        ctr_idle: Proc | None = None
        if have_ctr:
            ctr_idle, ctr_addr = start_containerd(tmp / "containerd-idle")
            procs.append(ctr_idle)
            for _ in range(15):
                timed(["ctr", "-a", ctr_addr, "version"])
        from podkit.daemon.memory import QUIET

        # Idle means settled: podkitd trims its heap once quiet (podkit.daemon.memory),
        # containerd's Go runtime returns memory on its own schedule; the same wait for
        # both. A measurement delay, not synchronisation.
        time.sleep(2 * QUIET + 1)
        rss = d.rss_mb()
        ctr_rss = ctr_idle.rss_mb() if ctr_idle is not None else None

        med = {k: statistics.median(v) for k, v in times.items()}
        print(
            f"\nImage: 6 layers, {args.mb} MB uncompressed, {packed / 1e6:.0f} MB compressed; "
            f"medians of {args.runs} cold pulls from docker-registry on 127.0.0.1\n"
        )
        for k, v in med.items():
            print(f"  {k:<30} {v:6.2f} s   ({packed / 1e6 / v:5.0f} MB/s)")
        wmed = {k: statistics.median(v) for k, v in warm.items()}
        for k, v in wmed.items():
            print(f"  {k + ' (up to date)':<30} {v * 1000:6.0f} ms")
        print(f"  {'podkit version round trip':<30} {statistics.median(rtt) * 1000:6.0f} ms")
        print(
            f"  {'podkitd idle RSS':<30} {rss:6.0f} MB"
            + (f"   (containerd idle: {ctr_rss:.0f} MB)" if ctr_rss else "")
        )
        print("\nRatios (lower is better for podkit):")
        p = med["podkit pull"]
        if have_ctr:
            print(f"  podkit pull / ctr images pull           = {p / med['ctr images pull']:.2f}")
        print(f"  podkit pull / skopeo copy (no unpack)   = {p / med['skopeo copy (no unpack)']:.2f}")
        if have_ctr:
            print(
                f"  up-to-date pull, podkit / ctr           = "
                f"{wmed['podkit pull'] / wmed['ctr images pull']:.2f}"
            )
        if ctr_rss:
            print(f"  podkitd idle RSS / containerd idle RSS  = {rss / ctr_rss:.2f}")
        return 0
    finally:
        for pr in reversed(procs):
            pr.stop()
        drop_networks()
        umount_under(tmp)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
