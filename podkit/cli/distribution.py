"""Registry commands: pull, push, login, logout."""

from __future__ import annotations

import sys

from podkit import errors
from podkit.cli.output import err, human_size

TYPE_CHECKING = False  # not typing's: it stays out of the CLI's start-up (podkit/cli/main.py)
if TYPE_CHECKING:
    import argparse
    from typing import Any, TextIO

    from podkit.cli.main import Subparsers
    from podkit.client import Client
    from podkit.client.distribution import DistributionMixin

BAR_WIDTH = 50


def register(sub: Subparsers) -> None:
    register_pull_push(sub)
    _register_registry(sub)


def register_pull_push(sub: Subparsers) -> None:
    """`pull` and `push` (also `image pull`/`image push`)."""
    p = sub.add_parser("pull", help="pull an image from a registry")
    p.add_argument("reference", metavar="REF", help="image reference, e.g. busybox or host:5000/app:1.0")
    p.add_argument("--platform", help="os/arch[/variant] to pull from a multi-platform image")
    p.add_argument(
        "--all-platforms",
        action="store_true",
        help="fetch every platform of a multi-platform image (one is unpacked)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress, only the image name")
    p.set_defaults(func=cmd_pull)

    p = sub.add_parser("push", help="push an image to a registry")
    p.add_argument("reference", metavar="REF", help="image reference, e.g. host:5000/app:1.0")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress")
    p.set_defaults(func=cmd_push)


def _register_registry(sub: Subparsers) -> None:
    """`manifest`, `login`, `logout`."""
    from podkit.cli.main import subcommands

    p = sub.add_parser("manifest", help="look at images in a registry without pulling them")
    msub = subcommands(p, dest="manifest_command", metavar="COMMAND")
    mp = msub.add_parser("inspect", help="print an image's manifest (or index) as the registry has it")
    mp.add_argument("reference", metavar="REF")
    mp.add_argument("-v", "--verbose", action="store_true", help="also the descriptor and platforms")
    mp.set_defaults(func=cmd_manifest_inspect)

    p = sub.add_parser("login", help="log in to a registry")
    p.add_argument(
        "registry",
        metavar="REGISTRY",
        nargs="?",
        default="docker.io",
        help="registry host[:port] (default docker.io)",
    )
    p.add_argument("-u", "--username", help="user name")
    p.add_argument("-p", "--password", help="password (prefer --password-stdin)")
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    p.set_defaults(func=cmd_login)

    p = sub.add_parser("logout", help="forget the credentials stored for a registry")
    p.add_argument("registry", metavar="REGISTRY", nargs="?", default="docker.io")
    p.set_defaults(func=cmd_logout)


class ProgressView:
    """Draws docker-style progress: one line per layer, redrawn in place on a terminal,
    plain lines (one per state change) otherwise."""

    def __init__(self, out: TextIO, tty: bool) -> None:
        self.out = out
        self.tty = tty
        self.order: list[str] = []  # ids of the lines on screen, top to bottom
        self.last: dict[str, str] = {}
        if tty:
            import shutil

            self.width = max(20, shutil.get_terminal_size().columns - 1)

    def __call__(self, msg: dict[str, Any]) -> None:
        ident = msg.get("id")
        status = str(msg.get("status", ""))
        if not ident or "current" not in msg:
            # A line of its own ("latest: Pulling from library/busybox", "Digest: ...").
            text = f"{ident}: {status}" if ident else status
            self.out.write(text + "\n")
            if self.tty:
                self.order.append("")
            self.out.flush()
            return
        line = f"{ident}: {status}"
        if status in ("Downloading", "Pushing") and self.tty:
            line += " " + _bar(int(msg.get("current") or 0), int(msg.get("total") or 0))
        if self.tty:
            line = line[: self.width]  # a wrapped line would break the cursor arithmetic
        previous = self.last.get(ident)
        self.last[ident] = status
        if not self.tty:
            if previous == status:
                return  # plain output: one line per state change, not per byte
            self.out.write(line + "\n")
            self.out.flush()
            return
        if ident not in self.order:
            self.order.append(ident)
            self.out.write(line + "\n")
        else:
            up = len(self.order) - self.order.index(ident)
            self.out.write(f"\x1b[{up}A\r\x1b[2K{line}\x1b[{up}B\r")
        self.out.flush()


def _dist(client: Client) -> DistributionMixin:
    """The SDK's registry operations: ``client.images`` (which mixes them in)."""
    try:
        return client.images
    except ImportError:  # an SDK without the image area: the mixin alone will do
        from podkit.client.distribution import DistributionMixin

        d = DistributionMixin()
        d._t = client._t
        return d


def _bar(current: int, total: int) -> str:
    if total <= 0:
        return human_size(current)
    frac = min(1.0, current / total)
    n = int(frac * BAR_WIDTH)
    arrow = "=" * max(0, n - 1) + (">" if n else "")
    return f"[{arrow.ljust(BAR_WIDTH)}] {human_size(current):>7}/{human_size(total)}"


def cmd_pull(args: argparse.Namespace, client: Client) -> int:
    from podkit.images.reference import parse

    ref = parse(args.reference)
    view = None if args.quiet else ProgressView(sys.stdout, sys.stdout.isatty())
    # getattr: `podkit image pull` (podkit/cli/images.py) reuses this with fewer flags.
    _dist(client).pull(
        args.reference,
        platform=getattr(args, "platform", None),
        progress=view,
        all_platforms=getattr(args, "all_platforms", False),
    )
    if view is not None:
        print(
            f"Status: Image is up to date for {ref.familiar()}"
            if _nothing_new(view)
            else f"Status: Downloaded newer image for {ref.familiar()}"
        )
    print(str(ref))
    return 0


def _nothing_new(view: ProgressView) -> bool:
    return bool(view.last) and all(s == "Already exists" for s in view.last.values())


def cmd_push(args: argparse.Namespace, client: Client) -> int:
    view = None if args.quiet else ProgressView(sys.stdout, sys.stdout.isatty())
    result = _dist(client).push(args.reference, progress=view)
    if args.quiet:
        print(result["digest"])
    return 0


def cmd_manifest_inspect(args: argparse.Namespace, client: Client) -> int:
    from podkit.cli.output import print_json

    info = _dist(client).remote_inspect(args.reference)
    print_json(info if args.verbose else info["manifest"])
    return 0


def cmd_login(args: argparse.Namespace, client: Client) -> int:
    import getpass

    from podkit.client.distribution import credential_store, registry_host

    host = registry_host(args.registry)
    user = args.username
    password = args.password
    if args.password_stdin:
        if password:
            raise errors.InvalidArgument("--password and --password-stdin are mutually exclusive")
        if not user:
            raise errors.InvalidArgument("--password-stdin needs --username")
        password = sys.stdin.read().rstrip("\r\n")
    elif password:
        err("WARNING! Using --password via the CLI is insecure. Use --password-stdin.")
    if not user:
        if not sys.stdin.isatty():
            raise errors.InvalidArgument("no username given: use -u/--username")
        user = input("Username: ").strip()
    if not password:
        if not sys.stdin.isatty():
            raise errors.InvalidArgument("no password given: use -p or --password-stdin")
        password = getpass.getpass("Password: ")
    if not user or not password:
        raise errors.InvalidArgument("login needs a username and a password")
    _dist(client).login(host, user, password)
    store = credential_store(host)
    if not store.startswith("docker-credential-"):
        err(f"WARNING! Your password will be stored unencrypted in {store}.")
    print("Login Succeeded")
    return 0


def cmd_logout(args: argparse.Namespace, client: Client) -> int:
    from podkit.client.distribution import registry_host

    host = registry_host(args.registry)
    if _dist(client).logout(host):
        print(f"Removing login credentials for {host}")
    else:
        print(f"Not logged in to {host}")
    return 0
