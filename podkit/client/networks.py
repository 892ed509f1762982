"""Networks in the SDK: ``client.networks.create/list/get/inspect/remove/prune``."""

from __future__ import annotations

import builtins
import urllib.parse
from dataclasses import dataclass, field

from podkit.client._json import JSONObject
from podkit.client._transport import Transport


@dataclass
class Network:
    name: str
    id: str
    driver: str
    bridge: str
    subnet: str
    gateway: str
    ip_range: str = ""
    ipmasq: bool = True
    internal: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    created: float = 0.0
    default: bool = False
    options: JSONObject = field(default_factory=dict)
    containers: int = 0
    attachments: list[JSONObject] = field(default_factory=list)

    @classmethod
    def from_api(cls, d: JSONObject) -> Network:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})


def _q(name: str) -> str:
    return urllib.parse.quote(name, safe="")


class NetworksAPI:
    def __init__(self, t: Transport) -> None:
        self._t = t

    def create(
        self,
        name: str,
        subnet: str | None = None,
        gateway: str | None = None,
        bridge: str | None = None,
        labels: dict[str, str] | None = None,
        ip_range: str | None = None,
        internal: bool = False,
        options: dict[str, str] | None = None,
    ) -> Network:
        body = {
            "name": name,
            "subnet": subnet,
            "gateway": gateway,
            "bridge": bridge,
            "labels": labels or {},
            "ip_range": ip_range,
            "internal": internal,
            "options": options or {},
        }
        return Network.from_api(self._t.post("/networks", json_body=body))

    def list(self, labels: builtins.list[str] | None = None) -> builtins.list[Network]:
        rows: builtins.list[JSONObject] = self._t.get("/networks", params={"label": labels})
        return [Network.from_api(d) for d in rows]

    def get(self, name_or_id: str) -> Network:
        return Network.from_api(self.inspect(name_or_id))

    def inspect(self, name_or_id: str) -> JSONObject:
        out: JSONObject = self._t.get(f"/networks/{_q(name_or_id)}")
        return out

    def remove(self, name_or_id: str) -> None:
        self._t.delete(f"/networks/{_q(name_or_id)}")

    def connect(
        self,
        name_or_id: str,
        container: str,
        aliases: builtins.list[str] | None = None,
        ip: str | None = None,
    ) -> None:
        """Connect a container (live if it runs: its next interface, eth1...)."""
        body: JSONObject = {"container": container, "aliases": list(aliases or [])}
        if ip:
            body["ip"] = ip
        self._t.post(f"/networks/{_q(name_or_id)}/connect", json_body=body)

    def disconnect(self, name_or_id: str, container: str) -> None:
        self._t.post(f"/networks/{_q(name_or_id)}/disconnect", json_body={"container": container})

    def prune(self, filters: dict[str, builtins.list[str]] | None = None) -> builtins.list[str]:
        """Remove unused networks; ``filters``: until, label, label! (docker's)."""
        return list(self._t.post("/networks/prune", params={"filters": filters or None})["removed"])
