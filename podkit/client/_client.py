"""``Client``: the entry point of the SDK; one attribute per API area."""

from __future__ import annotations

from podkit import errors
from podkit.client._json import JSONObject
from podkit.client._transport import Transport

TYPE_CHECKING = False  # not typing's: it stays out of the CLI's start-up (podkit/cli/main.py)
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import BinaryIO

    # Each area is imported on first use, so that the CLI only pays for the ones a
    # command needs (see docs/architecture.md, "The CLI's import path").
    from podkit.client.containers import ContainersAPI
    from podkit.client.images import ImagesAPI
    from podkit.client.networks import NetworksAPI
    from podkit.client.pods import PodsAPI
    from podkit.client.volumes import VolumesAPI


class Client:
    """A connection to one podkitd, in one namespace.

    Areas: ``images``, ``containers``, ``volumes``, ``networks``, ``pods``.
    """

    def __init__(
        self, host: str | None = None, namespace: str | None = None, timeout: float | None = 600
    ) -> None:
        self._t = Transport(host, namespace, timeout)
        self._images: ImagesAPI | None = None
        self._containers: ContainersAPI | None = None
        self._volumes: VolumesAPI | None = None
        self._networks: NetworksAPI | None = None
        self._pods: PodsAPI | None = None

    @property
    def host(self) -> str:
        return self._t.host

    @property
    def namespace(self) -> str:
        return self._t.namespace

    @property
    def images(self) -> ImagesAPI:
        if self._images is None:
            from podkit.client.images import ImagesAPI

            self._images = ImagesAPI(self._t)
        return self._images

    @property
    def containers(self) -> ContainersAPI:
        if self._containers is None:
            from podkit.client.containers import ContainersAPI

            self._containers = ContainersAPI(self._t)
        return self._containers

    @property
    def volumes(self) -> VolumesAPI:
        if self._volumes is None:
            from podkit.client.volumes import VolumesAPI

            self._volumes = VolumesAPI(self._t)
        return self._volumes

    @property
    def networks(self) -> NetworksAPI:
        if self._networks is None:
            from podkit.client.networks import NetworksAPI

            self._networks = NetworksAPI(self._t)
        return self._networks

    @property
    def pods(self) -> PodsAPI:
        if self._pods is None:
            from podkit.client.pods import PodsAPI

            self._pods = PodsAPI(self._t)
        return self._pods

    def ping(self) -> bool:
        conn, resp = self._t.open("GET", "/_ping")
        try:
            return resp.read() == b"OK"
        finally:
            conn.close()

    def version(self) -> JSONObject:
        """{"version", "api_version", "os", "arch", ...} of the daemon."""
        out: JSONObject = self._t.get("/version")
        return out

    def info(self) -> JSONObject:
        """What `podkit info` shows: storage, runtime, counts."""
        out: JSONObject = self._t.get("/info")
        return out

    def df(self) -> JSONObject:
        """What `podkit system df` shows: images, containers, volumes and build cache
        with their sizes (``{"images": [...], "containers": [...], ...}``)."""
        out: JSONObject = self._t.get("/system/df")
        return out

    def prune(
        self, all: bool = False, volumes: bool = False, filters: dict[str, list[str]] | None = None
    ) -> JSONObject:
        """`podkit system prune`: stopped containers, unused networks, dangling (``all``:
        unused) images and the build cache, with ``volumes`` unused anonymous volumes;
        ``filters``: until, label, label!. What each removed, and the space reclaimed."""
        out: JSONObject = self._t.post(
            "/system/prune", json_body={"all": all, "volumes": volumes, "filters": filters or {}}
        )
        return out

    def events(
        self, since: float | None = None, until: float | None = None, type: str | None = None
    ) -> Iterator[JSONObject]:
        """Events as they happen (or between ``since`` and ``until``): one dict each."""
        return self._t.stream("GET", "/events", params={"since": since, "until": until, "type": type})

    def build(
        self,
        context: BinaryIO,
        *,
        tags: list[str] | None = None,
        dockerfile: str | None = None,
        build_args: dict[str, str] | None = None,
        target: str | None = None,
        no_cache: bool = False,
        labels: dict[str, str] | None = None,
        network: str | None = None,
        pull: bool = False,
        quiet: bool = False,
        on_output: Callable[[str], None] | None = None,
    ) -> str:
        """Build an image from a context tar (its Dockerfile at ``dockerfile``); the image
        id. Progress text goes to ``on_output``; a failed build raises its error."""
        from podkit.client._json import dumps, loads

        params: dict[str, object] = {
            "t": tags or None,
            "dockerfile": dockerfile,
            "buildargs": dumps(build_args) if build_args else None,
            "target": target,
            "nocache": no_cache or None,
            "labels": dumps(labels) if labels else None,
            "networkmode": network,
            "pull": pull or None,
            "q": quiet or None,
        }
        conn, resp = self._t.open(
            "POST",
            "/build",
            params=params,
            body=context,
            headers={"Content-Type": "application/x-tar"},
            timeout=None,
        )
        iid = ""
        try:
            while True:
                line = resp.readline()
                if not line:
                    break
                if not line.strip():
                    continue
                msg = loads(line)
                if "stream" in msg and on_output is not None:
                    on_output(msg["stream"])
                elif "aux" in msg:
                    iid = msg["aux"].get("ID", "")
                elif "error" in msg:
                    raise errors.InvalidArgument(str(msg["error"]))
        finally:
            conn.close()
        if not iid:
            raise errors.Unavailable("build: the daemon ended the stream without a result")
        return iid

    def openapi(self) -> JSONObject:
        out: JSONObject = self._t.get("/openapi.json")
        return out
