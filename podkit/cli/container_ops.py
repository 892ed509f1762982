"""The SDK's plain container calls for the CLI (no data classes to import: it starts faster)."""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: it stays out of the CLI's start-up (podkit/cli/main.py)
if TYPE_CHECKING:
    from podkit.client import Client
    from podkit.client._container_ops import ContainerOps


def container_ops(client: Client) -> ContainerOps:
    """``ContainerOps`` over the client's connection settings."""
    from podkit.client._container_ops import ContainerOps

    return ContainerOps(client._t)
