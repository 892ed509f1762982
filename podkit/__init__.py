"""podkit: a container and pod engine for one Linux host.

The public Python API is the SDK client::

    import podkit
    client = podkit.Client()            # unix:///run/podkit/podkit.sock
    client.images.pull("busybox")

Everything else lives in private-by-convention packages that the daemon uses.
"""

from podkit._version import __version__
from podkit.errors import PodkitError

TYPE_CHECKING = False  # not typing's: it stays out of the CLI's start-up (podkit/cli/main.py)
if TYPE_CHECKING:
    from podkit.client import Client

__all__ = ["Client", "PodkitError", "__version__"]


def __getattr__(name: str) -> "type[Client]":  # lazy, so that `import podkit` stays cheap for the CLI
    if name == "Client":
        from podkit.client import Client

        return Client
    raise AttributeError(name)
