"""The Docker Engine API, served by podkitd on its own unix socket.

A thin translation layer: each module maps one area of docker's API (system,
containers, exec, images, networks, volumes) onto the public methods of podkit's
services, in podkit namespace ``default``, so that ``docker ps`` and ``podkit ps``
show the same containers. Nothing here owns state.
"""

from podkit.dockerapi.app import API_VERSION, MIN_API_VERSION, NAMESPACE, make_app

__all__ = ["API_VERSION", "MIN_API_VERSION", "NAMESPACE", "make_app"]
