"""Containers: metadata and lifecycle, volumes, logs, restart policies, recovery.

``setup(services)`` builds the layer into a daemon: ``services.volumes`` and
``services.containers``, with a start-up hook (recovery, restart policies) and a
shutdown hook that leaves containers running under conmon.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from podkit.daemon.services import Services


def setup(s: Services) -> None:
    from podkit.containers.recovery import recover
    from podkit.containers.restart import RestartManager
    from podkit.containers.runtime_driver import RuntimeDriver
    from podkit.containers.service import ContainerService
    from podkit.containers.volumes import VolumeService

    cfg = s.config
    section = dict(s.config.section("runtime"))
    section.update(s.config.section("containers"))
    # run --use-api-socket binds the Docker API's socket into the container
    section["docker_socket"] = str(cfg.docker_socket or "")
    s.volumes = VolumeService(s.db, cfg.root, publish=s.events.publish)
    driver = RuntimeDriver(s.runtime)
    svc = ContainerService(
        db=s.db,
        root=cfg.root,
        state=cfg.state,
        images=lambda: s.images,
        snapshots=lambda: s.snapshots,
        runtime=driver,
        networks=lambda: s.networks,
        volumes=s.volumes,
        publish=s.events.publish,
        registry=lambda: s.registry,
        config=section,
    )
    svc.restarts = RestartManager(svc.ctx)
    s.containers = svc

    async def startup() -> None:
        _ = svc.images  # registers the "image in use by containers" hook before any rmi
        await recover(svc.ctx)

    s.on_startup(startup)
    s.on_shutdown(svc.shutdown)
