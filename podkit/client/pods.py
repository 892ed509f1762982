"""Pods in the SDK: ``client.pods`` (``PodsAPI``) returning typed ``Pod`` objects."""

from __future__ import annotations

import builtins
from collections.abc import Iterator
from dataclasses import dataclass, field

from podkit.client._json import JSONObject
from podkit.client._transport import Transport


@dataclass
class PodContainer:
    id: str
    name: str
    state: str
    infra: bool = False


@dataclass
class Pod:
    """A pod as the daemon reports it (``raw`` holds the full inspect document)."""

    id: str
    name: str
    status: str  # Created | Running | Degraded | Exited | Stopped
    created: float
    hostname: str = ""
    share: list[str] = field(default_factory=list)
    network: str = ""
    ips: list[str] = field(default_factory=list)
    ports: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    infra_id: str = ""
    netns_path: str = ""
    cgroup_path: str = ""
    containers: list[PodContainer] = field(default_factory=list)
    raw: JSONObject = field(default_factory=dict, repr=False)

    @classmethod
    def from_api(cls, d: JSONObject) -> Pod:
        return cls(
            id=d["id"],
            name=d["name"],
            status=d.get("status", ""),
            created=d.get("created", 0.0),
            hostname=d.get("hostname", ""),
            share=list(d.get("share") or []),
            network=d.get("network", ""),
            ips=list(d.get("ips") or []),
            ports=[str(p) for p in d.get("ports_text") or []],
            labels=dict(d.get("labels") or {}),
            infra_id=d.get("infra_id", ""),
            netns_path=d.get("netns_path", ""),
            cgroup_path=d.get("cgroup_path", ""),
            containers=[
                PodContainer(c["id"], c["name"], c.get("state", ""), bool(c.get("infra")))
                for c in d.get("containers") or []
            ],
            raw=d,
        )

    @property
    def ip(self) -> str:
        return self.ips[0].split("/", 1)[0] if self.ips else ""


class PodsAPI:
    def __init__(self, transport: Transport) -> None:
        self._t = transport

    def create(
        self,
        name: str | None = None,
        *,
        ports: list[str] | None = None,
        share: list[str] | None = None,
        hostname: str | None = None,
        memory: int | str | None = None,
        cpus: float | None = None,
        dns: list[str] | None = None,
        dns_search: list[str] | None = None,
        dns_option: list[str] | None = None,
        add_hosts: list[str] | None = None,
        network: str | None = None,
        labels: dict[str, str] | None = None,
        start: bool = False,
        **extra: object,
    ) -> Pod:
        """Create a pod; ``extra`` passes further spec fields (sysctls, cgroup_parent, ...)."""
        body: JSONObject = dict(extra)
        for k, v in (
            ("name", name),
            ("ports", ports),
            ("share", share),
            ("hostname", hostname),
            ("memory", memory),
            ("cpus", cpus),
            ("add_hosts", add_hosts),
            ("network", network),
            ("labels", labels),
        ):
            if v is not None:
                body[k] = v
        if dns or dns_search or dns_option:
            body["dns"] = {"servers": dns or [], "searches": dns_search or [], "options": dns_option or []}
        if start:
            body["start"] = True
        return Pod.from_api(self._t.post("/pods", json_body=body))

    def list(self, labels: builtins.list[str] | None = None) -> builtins.list[Pod]:
        rows: builtins.list[JSONObject] = self._t.get("/pods", params={"label": labels})
        return [Pod.from_api(d) for d in rows]

    def get(self, ref: str) -> Pod:
        return Pod.from_api(self._t.get(f"/pods/{ref}"))

    def inspect(self, ref: str) -> JSONObject:
        out: JSONObject = self._t.get(f"/pods/{ref}")
        return out

    def start(self, ref: str) -> Pod:
        return Pod.from_api(self._t.post(f"/pods/{ref}/start"))

    def stop(self, ref: str, timeout: int | None = None, release_network: bool = False) -> Pod:
        """Stop; with ``release_network`` the pod's IP and ports are given back until it starts."""
        return Pod.from_api(
            self._t.post(
                f"/pods/{ref}/stop", params={"timeout": timeout, "release_network": release_network or None}
            )
        )

    def restart(self, ref: str, timeout: int | None = None) -> Pod:
        return Pod.from_api(self._t.post(f"/pods/{ref}/restart", params={"timeout": timeout}))

    def remove(self, ref: str, force: bool = False, timeout: int | None = None) -> str:
        out: JSONObject = self._t.delete(f"/pods/{ref}", params={"force": force, "timeout": timeout})
        pid: str = out["id"]
        return pid

    def logs(
        self, ref: str, follow: bool = False, tail: int | None = None, timestamps: bool = False
    ) -> Iterator[JSONObject]:
        """Lines as dicts: container (name), stream (stdout|stderr), time, line."""
        return self._t.stream(
            "GET", f"/pods/{ref}/logs", params={"follow": follow, "tail": tail, "timestamps": timestamps}
        )

    def stats(self, ref: str, stream: bool = False) -> Iterator[JSONObject]:
        return self._t.stream("GET", f"/pods/{ref}/stats", params={"stream": stream})

    def top(self, ref: str, ps_args: str = "") -> JSONObject:
        out: JSONObject = self._t.get(f"/pods/{ref}/top", params={"ps_args": ps_args or None})
        return out

    def prune(self) -> builtins.list[str]:
        out: JSONObject = self._t.post("/pods/prune")
        removed: builtins.list[str] = out["removed"]
        return removed

    def play_kube(self, yaml_text: str, start: bool = True) -> JSONObject:
        """Run a Kubernetes YAML file's Pods/Deployments: {pods: [...], warnings: [...]}."""
        out: JSONObject = self._t.post("/play/kube", json_body={"yaml": yaml_text, "start": start})
        return out

    def down_kube(self, yaml_text: str) -> JSONObject:
        out: JSONObject = self._t.post("/play/kube/down", json_body={"yaml": yaml_text})
        return out
