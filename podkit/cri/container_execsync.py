"""ExecSync: run a command in the container, return its output and exit code. When the
timeout expires the process is killed and the call fails with DeadlineExceeded."""

from __future__ import annotations

import asyncio
import logging

from cri_api.v1 import api_pb2 as pb

from podkit.cri.context import CRI
from podkit.cri.errors import DeadlineExceeded, FailedPrecondition
from podkit.errors import CannotExecute, CommandNotFound, Conflict, InvalidArgument

log = logging.getLogger(__name__)

# The kubelet's probes read a bounded output; so does this (containerd: 16 MiB).
MAX_OUTPUT = 16 * 1024 * 1024


async def handle(cri: CRI, req: pb.ExecSyncRequest) -> pb.ExecSyncResponse:
    rec = cri.container(req.container_id)
    if not req.cmd:
        raise InvalidArgument("cmd is empty")
    if req.timeout < 0:
        raise InvalidArgument("timeout must not be negative")
    try:
        ex = await cri.containers.exec_create(cri.ns, rec.id, {"cmd": list(req.cmd)})
        try:
            sess = await cri.containers.exec_attach(cri.ns, ex.id)
        except (CommandNotFound, CannotExecute) as e:
            # As runc reports it through containerd: the exec fails to start.
            return pb.ExecSyncResponse(stderr=e.message.encode(), exit_code=e.exit_code)
    except Conflict as e:
        raise FailedPrecondition(e.message) from None
    out: dict[int, bytearray] = {1: bytearray(), 2: bytearray()}  # by stream id

    async def collect() -> None:
        while True:
            item = await sess.read()
            if item is None:
                return
            stream, data = item
            buf = out.get(stream)
            if buf is not None and len(buf) < MAX_OUTPUT:
                buf.extend(data[: MAX_OUTPUT - len(buf)])

    try:
        if req.timeout:
            await asyncio.wait_for(collect(), req.timeout)
        else:
            await collect()
        code = await cri.containers.exec_wait(cri.ns, ex.id)
    except TimeoutError:
        try:
            sess.kill()
        except ProcessLookupError:
            pass  # it ended on its own just now
        except Exception as e:
            log.warning("ExecSync: killing exec %s after its timeout failed: %s", ex.id[:12], e)
        try:
            await asyncio.wait_for(cri.containers.exec_wait(cri.ns, ex.id), 10)
        except Exception as e:
            log.warning("ExecSync: waiting for killed exec %s failed: %s", ex.id[:12], e)
        raise DeadlineExceeded(f"command {list(req.cmd)} timed out after {req.timeout}s: killed") from None
    return pb.ExecSyncResponse(stdout=bytes(out[1]), stderr=bytes(out[2]), exit_code=code)
