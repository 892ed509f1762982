#!/usr/bin/env python3
"""Run critest (the CRI validation suite) against a throwaway podkitd, offline.

A local docker-registry holds the stand-in images of ../shared/critest/mkimages.py
(built once, kept in a cache directory keyed by mkimages.py's hash); the podkitd
mirrors registry.k8s.io, gcr.io and docker.io to it. Prints passed/failed/skipped and
each failure with its message; with --benchmark runs ``critest -benchmark`` instead and
leaves its JSON in --out.

    scripts/critest.py [--focus RE] [--skip RE] [--junit FILE]
    scripts/critest.py --benchmark --params FILE --out DIR
Exit status: 0 when no spec failed beyond --allow-fail (a regex), 1 otherwise.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.fixtures.registry import RegistryServer  # noqa: E402
from tests.helpers import Daemon, shared_dir, wait_for  # noqa: E402
from tests.leaks import unmount_all_under  # noqa: E402

SHARED = shared_dir()
CRITEST = Path(os.environ.get("CRITEST", SHARED / "bin" / "critest"))
MKIMAGES = SHARED / "critest" / "mkimages.py"
CACHE = Path(os.environ.get("PODKIT_CRITEST_CACHE", "/var/tmp/podkit-critest-cache"))
MIRRORED = ("registry.k8s.io", "gcr.io", "docker.io", "k8s.gcr.io")

# The two specs that cannot pass offline for any runtime (../shared/critest/README.md).
EXPECTED_FAILURES = r"public image with digest|MaskedPaths"


def find_critest() -> Path | None:
    if CRITEST.is_file() and os.access(CRITEST, os.X_OK) and MKIMAGES.is_file():
        return CRITEST
    return None


def _images_stamp() -> str:
    return hashlib.sha256(MKIMAGES.read_bytes()).hexdigest()[:16]


def start_registry() -> RegistryServer:
    """The registry with the stand-in images, built only when the cache lacks them."""
    CACHE.mkdir(parents=True, exist_ok=True)
    reg = RegistryServer(CACHE / "registry").start()
    stamp = CACHE / f"images-{_images_stamp()}"
    if not stamp.exists():
        print(f"critest: building the offline images into the registry {reg.host} (~1 min)", flush=True)
        env = {**os.environ, "REG": reg.host, "TMPDIR": str(CACHE)}
        r = subprocess.run([sys.executable, str(MKIMAGES)], env=env, capture_output=True, text=True)
        if r.returncode != 0:
            reg.stop()
            raise SystemExit(f"critest: mkimages.py failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
        stamp.touch()
    return reg


def daemon_config(reg: RegistryServer) -> str:
    mirrors = "".join(f'[registries."{h}"]\nmirrors = ["{reg.host}"]\n\n' for h in MIRRORED)
    insecure = f'[registries."{reg.host}"]\nplain_http = true\n\n'
    return "[cri]\nenabled = true\n\n" + mirrors + insecure


def start_daemon(base: Path, reg: RegistryServer) -> Daemon:
    base.mkdir(parents=True, exist_ok=True)
    d = Daemon(base, extra_config=daemon_config(reg)).start(timeout=120)
    sock = d.state / "cri.sock"
    wait_for(sock.exists, 60, what="the CRI socket")
    return d


def stop_daemon(d: Daemon) -> None:
    """Whatever critest left (a failed spec skips its clean-up) goes, then the daemon."""
    try:
        c = d.client("k8s.io")
        for pod in c.pods.list():
            c.pods.remove(pod.id, force=True)
        for ctr in c.containers.list(all=True):
            c.containers.remove(ctr.id, force=True)
    except Exception as e:
        print(f"critest: removing what critest left: {e}", file=sys.stderr)
    d.stop()
    if os.path.exists(f"/sys/class/net/{d.bridge}"):
        subprocess.run(["ip", "link", "del", d.bridge], capture_output=True)
    from tests.fixtures.network import scrub_subnet

    scrub_subnet(d.subnet)


def summarize(junit: Path) -> tuple[int, int, int, list[tuple[str, str]]]:
    root = ET.parse(junit).getroot()
    passed = failed = skipped = 0
    failures: list[tuple[str, str]] = []
    for tc in root.iter("testcase"):
        name = tc.get("name", "")
        if (
            name.startswith("[BeforeSuite]")
            or name.startswith("[AfterSuite]")
            or "[ReportAfterSuite]" in name
        ):
            continue
        if tc.find("skipped") is not None:
            skipped += 1
        elif tc.find("failure") is not None or tc.find("error") is not None:
            failed += 1
            f = tc.find("failure")
            if f is None:
                f = tc.find("error")
            msg = (f.get("message") or f.text or "").strip() if f is not None else ""
            failures.append((name, msg))
        else:
            passed += 1
    return passed, failed, skipped, failures


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--focus", default="")
    p.add_argument("--skip", default="")
    p.add_argument("--junit", default="")
    p.add_argument("--allow-fail", default=EXPECTED_FAILURES)
    p.add_argument("--benchmark", action="store_true")
    p.add_argument("--params", default="")
    p.add_argument("--out", default="")
    p.add_argument("--parallel", type=int, default=1)
    args = p.parse_args(argv)
    critest = find_critest()
    if critest is None:
        print(f"critest: {CRITEST} or {MKIMAGES} not found", file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        print("critest: must run as root (it drives a real podkitd)", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="podkit-critest-", dir="/var/tmp"))
    reg = start_registry()
    d = None
    try:
        d = start_daemon(work / "d", reg)
        ep = f"unix://{d.state / 'cri.sock'}"
        junit = Path(args.junit) if args.junit else work / "junit.xml"
        cmd = [str(critest), "-runtime-endpoint", ep, "-image-endpoint", ep, "-ginkgo.no-color"]
        if args.benchmark:
            cmd += ["-benchmark"]
            if args.params:
                cmd += ["-benchmarking-params-file", args.params]
            if args.out:
                Path(args.out).mkdir(parents=True, exist_ok=True)
                cmd += ["-benchmarking-output-dir", args.out]
        else:
            cmd += [f"-ginkgo.junit-report={junit}"]
            if args.parallel > 1:
                cmd += [f"-parallel={args.parallel}"]
        if args.focus:
            cmd += [f"-ginkgo.focus={args.focus}"]
        if args.skip:
            cmd += [f"-ginkgo.skip={args.skip}"]
        log = work / "critest.log"
        print("critest:", " ".join(cmd), flush=True)
        with open(log, "wb") as f:
            rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=work).returncode
        if args.benchmark:
            print(log.read_text(errors="replace")[-2000:])
            return rc
        if not junit.exists():
            print(log.read_text(errors="replace")[-5000:])
            return 1
        passed, failed, skipped, failures = summarize(junit)
        print(
            f"critest: {passed} passed, {failed} failed, {skipped} skipped (containerd 1.6.20 here: 78/2/5)"
        )
        import re

        unexpected = []
        for name, msg in failures:
            expected = bool(args.allow_fail) and re.search(args.allow_fail, name)
            print(f"  FAIL{' (expected offline)' if expected else ''}: {name}\n      {msg[:400]}")
            if not expected:
                unexpected.append(name)
        if os.environ.get("CRITEST_KEEP_LOG"):
            shutil.copy(log, os.environ["CRITEST_KEEP_LOG"])
        return 1 if unexpected else 0
    finally:
        if d is not None:
            if os.environ.get("CRITEST_KEEP_DAEMON_LOG"):
                shutil.copy(d.log, os.environ["CRITEST_KEEP_DAEMON_LOG"])
            stop_daemon(d)
        reg.stop()
        unmount_all_under(work)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
