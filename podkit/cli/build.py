"""`podkit build`: the context (a directory, a tar on stdin, or just a Dockerfile on
stdin with `-f -`) sent as a tar, the daemon's progress printed as it comes."""

from __future__ import annotations

import os
import sys

from podkit import errors

TYPE_CHECKING = False  # not typing's: it stays out of the CLI's start-up (podkit/cli/main.py)
if TYPE_CHECKING:
    import argparse
    import tempfile

    from podkit.cli.main import Subparsers
    from podkit.client import Client

_DOCKERFILE_IN_TAR = ".podkit-build-dockerfile"


def register(sub: Subparsers) -> None:
    p = sub.add_parser("build", help="build an image from a Dockerfile")
    p.add_argument("context", help="directory, or - for a tar on stdin")
    p.add_argument("-t", "--tag", action="append", default=[], help="name:tag (repeatable)")
    p.add_argument("-f", "--file", help="the Dockerfile (default CONTEXT/Dockerfile; - for stdin)")
    p.add_argument(
        "--build-arg", action="append", default=[], help="KEY=VALUE (or KEY: from the environment)"
    )
    p.add_argument("--target", help="the stage to build")
    p.add_argument("--no-cache", action="store_true", help="do not use the build cache")
    p.add_argument("--pull", action="store_true", help="pull the base images")
    p.add_argument("--network", help="network of RUN steps (default: the default network)")
    p.add_argument("--label", action="append", default=[], help="KEY=VALUE for the image")
    p.add_argument("--platform", help="only this host's platform")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the image id")
    p.add_argument("--iidfile", help="write the image id to this file")
    p.add_argument("--progress", default="plain", help="accepted for docker compatibility (always plain)")
    p.set_defaults(func=cmd_build, engine_exit=1)


def _pairs(items: list[str], what: str, env_fallback: bool) -> dict[str, str]:
    out: dict[str, str] = {}
    for it in items:
        k, sep, v = it.partition("=")
        if not k:
            raise errors.InvalidArgument(f"--{what} {it!r}: expected KEY=VALUE")
        if not sep:
            if not env_fallback:
                v = ""
            elif k in os.environ:
                v = os.environ[k]
            else:
                continue
        out[k] = v
    return out


def _context_tar(args: argparse.Namespace, out: tempfile._TemporaryFileWrapper[bytes]) -> str:
    """Write the context tar to ``out``; the Dockerfile's path in it."""
    import tarfile

    dockerfile_text: bytes | None = None
    if args.file == "-":
        if args.context == "-":
            raise errors.InvalidArgument("stdin cannot be both the context and the Dockerfile")
        dockerfile_text = sys.stdin.buffer.read()
    if args.context == "-":
        while chunk := sys.stdin.buffer.read(1 << 20):
            out.write(chunk)
        out.flush()
        return args.file or "Dockerfile"
    root = os.path.abspath(args.context)
    if not os.path.isdir(root):
        raise errors.NotFound(f"build context {args.context}: not a directory")
    name = "Dockerfile"
    if args.file and args.file != "-":
        path = os.path.abspath(args.file)
        if not os.path.isfile(path):
            raise errors.NotFound(f"Dockerfile {args.file}: no such file")
        rel = os.path.relpath(path, root)
        if rel.startswith(".."):
            with open(path, "rb") as f:
                dockerfile_text = f.read()
        else:
            name = rel
    elif not os.path.isfile(os.path.join(root, "Dockerfile")) and dockerfile_text is None:
        raise errors.NotFound(f"cannot find a Dockerfile in {args.context} (use -f)")
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tf:
        for entry in sorted(os.listdir(root)):
            tf.add(os.path.join(root, entry), arcname=entry)
        if dockerfile_text is not None:
            import io

            ti = tarfile.TarInfo(_DOCKERFILE_IN_TAR)
            ti.size = len(dockerfile_text)
            ti.mode = 0o644
            tf.addfile(ti, io.BytesIO(dockerfile_text))
            name = _DOCKERFILE_IN_TAR
    out.flush()
    return name


def cmd_build(args: argparse.Namespace, client: Client) -> int:
    if args.platform:
        import platform as _p

        arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(_p.machine(), _p.machine())
        if args.platform not in (f"linux/{arch}", "linux"):
            raise errors.InvalidArgument(
                f"--platform {args.platform}: podkit builds for this host only (linux/{arch})"
            )
    build_args = _pairs(args.build_arg, "build-arg", True)
    labels = _pairs(args.label, "label", False)
    import tempfile  # (shutil, random: for `build` only, not every command's start)

    with tempfile.TemporaryFile() as tmp:
        dockerfile = _context_tar(args, tmp)  # type: ignore[arg-type]
        tmp.seek(0)

        def out(text: str) -> None:
            sys.stdout.write(text)
            sys.stdout.flush()

        try:
            iid = client.build(
                tmp,
                tags=args.tag,
                dockerfile=dockerfile,
                build_args=build_args,
                target=args.target,
                no_cache=args.no_cache,
                labels=labels,
                network=args.network,
                pull=args.pull,
                quiet=args.quiet,
                on_output=None if args.quiet else out,
            )
        except KeyboardInterrupt:
            print("build cancelled", file=sys.stderr)
            return 130
    if args.quiet:
        print(iid)
    if args.iidfile:
        with open(args.iidfile, "w") as f:
            f.write(iid)
    return 0
