"""The podkit Python SDK: a typed client over podkitd's HTTP/JSON API.

from podkit import Client
c = Client()                       # PODKIT_HOST or unix:///run/podkit/podkit.sock
c.images.pull("busybox")
for img in c.images.list(): print(img.name)
"""

from podkit.client._client import Client
from podkit.client._json import JSONObject
from podkit.client._transport import DaemonNotRunning

__all__ = ["Client", "DaemonNotRunning", "JSONObject"]
