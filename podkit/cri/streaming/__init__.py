"""The CRI streaming server: where Exec, Attach and PortForward's URLs lead.

The CRI's Exec/Attach/PortForward calls do not stream themselves: they answer with
a URL (``StreamingServer.exec_url`` and friends) carrying a one-time token that
expires, and the client (kubelet's proxy, crictl, kubectl) connects there and
upgrades the connection to SPDY/3.1 (``spdy``, ``session``) or a WebSocket
(``websocket``), speaking Kubernetes' remotecommand protocols
(``remotecommand``, ``spdy_remotecommand``) or port forwarding (``portforward``).
The server runs in podkitd's event loop (``server``).

    class StreamingServer:
        def __init__(self, services, *, address="127.0.0.1", port=0, token_ttl=60.0)
        async def start(self) -> None;  async def stop(self) -> None
        def exec_url(self, namespace, container_id, cmd, *, tty, stdin, stdout, stderr) -> str
        def attach_url(self, namespace, container_id, *, tty, stdin, stdout, stderr) -> str
        def port_forward_url(self, namespace, pod_id, ports) -> str
"""

from __future__ import annotations

from podkit.cri.streaming.server import StreamingServer

__all__ = ["StreamingServer"]
