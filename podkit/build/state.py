"""What every step of a build shares: the options, the stages as built so far, the
services, the progress callback, and the names the build's own images live under."""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from podkit.containers.service import ContainerService
    from podkit.images.service import Image, ImageService

# Step images and step containers live in a namespace of their own, out of the user's way.
BUILD_NS = "podkit-build"
CACHE_REPO = "localhost/podkit-build-cache"
VIEW_PREFIX = "build-view-"  # snapshot keys (and mount points under <state>/build) of --from views
PREDEFINED_ARGS = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "FTP_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
)
Emit = Callable[[str], Awaitable[None]]


@dataclass
class BuildOptions:
    dockerfile: str = "Dockerfile"
    tags: list[str] = field(default_factory=list)
    build_args: dict[str, str] = field(default_factory=dict)
    target: str = ""
    no_cache: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    network: str = ""
    pull: bool = False
    quiet: bool = False


@dataclass
class Stage:
    name: str
    index: int
    image: Image | None  # None: scratch, nothing yet
    config: dict[str, Any]
    args: dict[str, str]
    shell: list[str] = field(default_factory=lambda: ["/bin/sh", "-c"])


@dataclass
class BuildContext:
    """One build's state, handed to each step's handler."""

    images: ImageService
    containers: ContainerService
    ns: str
    context: Path
    opts: BuildOptions
    emit: Emit
    stages: dict[str, Stage] = field(default_factory=dict)  # by name and by index
    used_args: set[str] = field(default_factory=set)

    async def say(self, text: str) -> None:
        if not self.opts.quiet:
            await self.emit(text)

    def env(self, stage: Stage) -> dict[str, str]:
        """The stage's build args overlaid with its image's Env: what a step expands with."""
        env = dict(stage.args)
        for e in stage.config["config"].get("Env") or []:
            k, _, v = e.partition("=")
            env[k] = v
        return env


def adopt(stage: Stage, img: Image) -> None:
    stage.image = img
    keep_cmd = stage.config.get("_cmd_set")
    stage.config = copy.deepcopy(img.config)
    stage.config["config"] = stage.config.get("config") or {}
    if keep_cmd:
        stage.config["_cmd_set"] = True


def set_field(cfg: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    """``cfg`` with ``key`` set: the change of most config-only steps."""
    cfg[key] = value
    return cfg
