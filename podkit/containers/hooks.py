"""Hooks that a higher layer registers with the container service.

The containers layer must not import the layers above it, yet some of them have a
say in a container's life: the pods layer puts a container into a pod when its
create body names one (``pod``), brings the pod's sandbox up before a member
starts, refuses removing an infra container and refreshes the pod's /etc/hosts
as members come and go. Such a layer implements ``ContainerHooks`` and registers
it with ``ContainerService.add_hooks``; the service calls every registered hook,
in registration order, at these points:

- ``before_create(ns, opts) -> opts``: before anything exists (before the image is
  resolved); may fill or change the options (e.g. resolve ``opts.pod`` into
  namespaces, cgroup parent, hosts/resolv/shm paths) or refuse (raise).
- ``after_create(ns, record)``: once the record, snapshot and volumes exist.
- ``before_start(ns, record)``: from ``start`` (the API's, ``restart``), before the
  container's own lock is taken; restart-policy restarts do not call it.
- ``before_remove(ns, record)`` / ``after_remove(ns, record)``: around ``remove``;
  ``before_remove`` may refuse (raise), ``after_remove`` sees the record as it was.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from podkit.containers.options import CreateOptions
    from podkit.containers.store import Record


@runtime_checkable
class ContainerHooks(Protocol):
    async def before_create(self, ns: str, opts: CreateOptions) -> CreateOptions: ...

    async def after_create(self, ns: str, record: Record) -> None: ...

    async def before_start(self, ns: str, record: Record) -> None: ...

    async def before_remove(self, ns: str, record: Record) -> None: ...

    async def after_remove(self, ns: str, record: Record) -> None: ...


class HookChain:
    """The registered hooks, called in order; the service holds one."""

    def __init__(self) -> None:
        self._hooks: list[ContainerHooks] = []

    def add(self, hooks: ContainerHooks) -> None:
        if not isinstance(hooks, ContainerHooks):
            # A partial implementation would fail only when a container reaches the
            # missing point: refuse it at registration instead.
            raise TypeError(f"{type(hooks).__name__} does not implement ContainerHooks")
        self._hooks.append(hooks)

    async def before_create(self, ns: str, opts: CreateOptions) -> CreateOptions:
        for h in self._hooks:
            opts = await h.before_create(ns, opts)
        return opts

    async def after_create(self, ns: str, record: Record) -> None:
        for h in self._hooks:
            await h.after_create(ns, record)

    async def before_start(self, ns: str, record: Record) -> None:
        for h in self._hooks:
            await h.before_start(ns, record)

    async def before_remove(self, ns: str, record: Record) -> None:
        for h in self._hooks:
            await h.before_remove(ns, record)

    async def after_remove(self, ns: str, record: Record) -> None:
        for h in self._hooks:
            await h.after_remove(ns, record)
