"""The gRPC server: RuntimeService and ImageService of runtime.v1 on a unix socket.

Each RPC is ``handle(cri, request)`` in a module of its own (sandbox_run.py,
container_create.py, ...); this module only routes requests to them and turns
podkit's errors into gRPC status codes. It runs in podkitd's own event loop
(grpc.aio), so operations call the services directly.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
from cri_api.v1 import api_pb2 as pb
from cri_api.v1 import api_pb2_grpc as pb_grpc

from podkit.cri.context import CRI
from podkit.cri.errors import status_code
from podkit.errors import PodkitError

log = logging.getLogger(__name__)

# RPC → module holding its handle(). Unary unless listed in _STREAMS.
RUNTIME_RPCS: dict[str, str] = {
    "Version": "version",
    "Status": "status",
    "RuntimeConfig": "runtime_config",
    "UpdateRuntimeConfig": "runtime_config_update",
    "RunPodSandbox": "sandbox_run",
    "StopPodSandbox": "sandbox_stop",
    "RemovePodSandbox": "sandbox_remove",
    "PodSandboxStatus": "sandbox_status",
    "ListPodSandbox": "sandbox_list",
    "PodSandboxStats": "sandbox_stats",
    "ListPodSandboxStats": "sandbox_stats_list",
    "UpdatePodSandboxResources": "sandbox_update_resources",
    "CreateContainer": "container_create",
    "StartContainer": "container_start",
    "StopContainer": "container_stop",
    "RemoveContainer": "container_remove",
    "ListContainers": "container_list",
    "ContainerStatus": "container_status",
    "UpdateContainerResources": "container_update_resources",
    "ReopenContainerLog": "container_log_reopen",
    "ExecSync": "container_execsync",
    "Exec": "container_exec",
    "Attach": "container_attach",
    "PortForward": "sandbox_portforward",
    "ContainerStats": "container_stats",
    "ListContainerStats": "container_stats_list",
    "GetContainerEvents": "container_events",
    "ListMetricDescriptors": "metrics",
    "ListPodSandboxMetrics": "metrics_sandbox",
    "CheckpointContainer": "container_checkpoint",
}
IMAGE_RPCS: dict[str, str] = {
    "ListImages": "image_list",
    "ImageStatus": "image_status",
    "PullImage": "image_pull",
    "RemoveImage": "image_remove",
    "ImageFsInfo": "image_fs_info",
}
_STREAMS = {"GetContainerEvents"}

Handler = Callable[[CRI, Any], Awaitable[Any]]


def _unary(
    cri: CRI, rpc: str, fn: Handler
) -> Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]:
    async def call(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        try:
            return await fn(cri, request)
        except PodkitError as e:
            log.debug("CRI %s: %s: %s", rpc, type(e).__name__, e.message)
            await context.abort(status_code(e), e.message)
        except Exception as e:
            log.exception("CRI %s failed", rpc)
            await context.abort(grpc.StatusCode.INTERNAL, f"{rpc}: {type(e).__name__}: {e}")
        raise AssertionError("unreachable")  # abort raises

    return call


def _stream(
    cri: CRI, rpc: str, fn: Callable[[CRI, Any], AsyncIterator[Any]]
) -> Callable[[Any, grpc.aio.ServicerContext[Any, Any]], AsyncIterator[Any]]:
    async def call(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
        try:
            async for item in fn(cri, request):
                yield item
        except PodkitError as e:
            await context.abort(status_code(e), e.message)

    return call


class _Servicer:
    """Methods named after the RPCs, set from the tables (what add_*_to_server reads)."""


def _servicer(cri: CRI, table: dict[str, str]) -> _Servicer:
    s = _Servicer()
    for rpc, mod_name in table.items():
        mod = importlib.import_module(f"podkit.cri.{mod_name}")
        fn = mod.handle
        setattr(s, rpc, _stream(cri, rpc, fn) if rpc in _STREAMS else _unary(cri, rpc, fn))
    return s


class CRIServer:
    def __init__(self, cri: CRI, socket_path: Path) -> None:
        self.cri = cri
        self.socket_path = socket_path
        self._server: grpc.aio.Server | None = None

    async def start(self) -> None:
        server = grpc.aio.server(
            options=[
                # The kubelet sends up to 16 MiB messages (ListContainers on a big node).
                ("grpc.max_receive_message_length", 16 * 1024 * 1024),
                ("grpc.max_send_message_length", 16 * 1024 * 1024),
            ]
        )
        pb_grpc.add_RuntimeServiceServicer_to_server(_servicer(self.cri, RUNTIME_RPCS), server)  # type: ignore[no-untyped-call]
        pb_grpc.add_ImageServiceServicer_to_server(_servicer(self.cri, IMAGE_RPCS), server)  # type: ignore[no-untyped-call]
        self.socket_path.parent.mkdir(parents=True, exist_ok=True, mode=0o711)
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()  # stale: the daemon's lock says no other owns it
        old = os.umask(0o117)  # born 0660, never briefly world-open
        try:
            server.add_insecure_port(f"unix://{self.socket_path}")
            await server.start()
        finally:
            os.umask(old)
        os.chown(self.socket_path, 0, 0)
        os.chmod(self.socket_path, 0o660)
        self._server = server
        log.info("CRI (runtime.v1) listening on unix://%s", self.socket_path)

    async def stop(self, grace: float = 2.0) -> None:
        if self._server is not None:
            await self._server.stop(grace)
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()


__all__ = ["CRIServer", "pb"]
