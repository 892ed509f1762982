"""``Client``: the entry point of the SDK; one attribute per API area."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from podkit.client._transport import Transport


class Client:
    """A connection to one podkitd, in one namespace.

    Areas: ``images``, ``containers``, ``volumes``, ``networks``, ``pods``.
    """

    def __init__(
        self, host: str | None = None, namespace: str | None = None, timeout: float | None = 600
    ) -> None:
        self._t = Transport(host, namespace, timeout)
        self._areas: dict[str, Any] = {}

    @property
    def host(self) -> str:
        return self._t.host

    @property
    def namespace(self) -> str:
        return self._t.namespace

    def _area(self, module: str, cls: str) -> Any:
        if cls not in self._areas:
            mod = __import__(f"podkit.client.{module}", fromlist=[cls])
            self._areas[cls] = getattr(mod, cls)(self._t)
        return self._areas[cls]

    @property
    def images(self) -> Any:
        return self._area("images", "ImagesAPI")

    @property
    def containers(self) -> Any:
        return self._area("containers", "ContainersAPI")

    @property
    def volumes(self) -> Any:
        return self._area("volumes", "VolumesAPI")

    @property
    def networks(self) -> Any:
        return self._area("networks", "NetworksAPI")

    @property
    def pods(self) -> Any:
        return self._area("pods", "PodsAPI")

    def ping(self) -> bool:
        conn, resp = self._t.open("GET", "/_ping")
        try:
            return resp.read() == b"OK"
        finally:
            conn.close()

    def version(self) -> dict[str, Any]:
        return self._t.get("/version")

    def info(self) -> dict[str, Any]:
        return self._t.get("/info")

    def events(
        self, since: float | None = None, until: float | None = None, type: str | None = None
    ) -> Iterator[dict[str, Any]]:
        return self._t.stream("GET", "/events", params={"since": since, "until": until, "type": type})

    def openapi(self) -> dict[str, Any]:
        return self._t.get("/openapi.json")
