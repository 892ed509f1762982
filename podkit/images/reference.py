"""Image references with Docker's normalisation rules.

    busybox                    -> docker.io/library/busybox:latest
    user/app:1.0               -> docker.io/user/app:1.0
    localhost:5000/app         -> localhost:5000/app:latest
    app:tag@sha256:<hex>       -> docker.io/library/app:tag@sha256:<hex> (digest wins on pull)

The first path component is a registry host when it contains '.' or ':' or is
'localhost'; otherwise the reference is on Docker Hub.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from podkit.errors import InvalidArgument

DEFAULT_REGISTRY = "docker.io"
DEFAULT_TAG = "latest"

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_PATH_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_DOMAIN_RE = re.compile(
    r"^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*"
    r"|\[[0-9a-fA-F:]+\])(?::[0-9]{1,5})?$"
)
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_DIGEST_RE = re.compile(r"^sha256:[a-f0-9]{64}$")
_ID_RE = re.compile(r"^(?:sha256:)?[a-f0-9]{64}$")


@dataclass(frozen=True)
class Reference:
    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """registry/repository, without tag or digest."""
        return f"{self.registry}/{self.repository}"

    def __str__(self) -> str:
        s = self.name
        if self.tag:
            s += f":{self.tag}"
        if self.digest:
            s += f"@{self.digest}"
        return s

    @property
    def object(self) -> str:
        """What to ask the registry's manifest endpoint for: the digest if any, else the tag."""
        return self.digest or self.tag or DEFAULT_TAG

    def with_tag(self, tag: str) -> Reference:
        return Reference(self.registry, self.repository, tag, None)

    def with_digest(self, digest: str) -> Reference:
        return Reference(self.registry, self.repository, None, digest)

    def familiar(self) -> str:
        """The short form docker shows (busybox:latest for docker.io/library/busybox:latest)."""
        name = self.name
        if self.registry == DEFAULT_REGISTRY:
            name = self.repository.removeprefix("library/")
        if self.tag:
            name += f":{self.tag}"
        if self.digest:
            name += f"@{self.digest}"
        return name


def parse(text: str, default_tag: bool = True) -> Reference:
    """Parse and normalise a reference; raise InvalidArgument naming what is wrong."""
    original = text
    if not text or text != text.strip():
        raise InvalidArgument(f"invalid reference format {original!r}: empty or surrounded by spaces")
    if len(text) > 255 * 2:
        raise InvalidArgument(f"invalid reference format: {original[:40]!r}... is too long")
    digest = None
    if "@" in text:
        text, digest = text.rsplit("@", 1)
        if not _DIGEST_RE.fullmatch(digest):
            raise InvalidArgument(
                f"invalid reference format {original!r}: digest must be sha256:<64 lowercase hex>"
            )
    tag = None
    last = text.rsplit("/", 1)[-1]
    if ":" in last:
        text, tag = text.rsplit(":", 1)
        if not _TAG_RE.fullmatch(tag):
            raise InvalidArgument(f"invalid reference format {original!r}: invalid tag {tag!r}")
    if not text:
        raise InvalidArgument(f"invalid reference format {original!r}: no repository name")
    first, sep, rest = text.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first != first.lower()):
        registry, path = first, rest
        if not _DOMAIN_RE.fullmatch(registry):
            raise InvalidArgument(f"invalid reference format {original!r}: bad registry {registry!r}")
    else:
        registry, path = DEFAULT_REGISTRY, text
    if registry in ("index.docker.io", "registry-1.docker.io"):
        registry = DEFAULT_REGISTRY
    if registry == DEFAULT_REGISTRY and "/" not in path:
        path = f"library/{path}"
    if not _PATH_RE.fullmatch(path):
        hint = " (repository names must be lowercase)" if path != path.lower() else ""
        raise InvalidArgument(f"invalid reference format {original!r}: bad repository name {path!r}{hint}")
    if len(registry) + 1 + len(path) > 255:
        raise InvalidArgument(f"invalid reference format {original!r}: repository name too long")
    if tag is None and digest is None and default_tag:
        tag = DEFAULT_TAG
    return Reference(registry, path, tag, digest)


def looks_like_id(text: str) -> bool:
    """A full image id (sha256:<hex> or <hex>); short ids are matched by the image service."""
    return bool(_ID_RE.fullmatch(text))
