"""The OCI distribution client: host settings, credentials and auth, the HTTP client,
and where pulled blobs came from.

    hosts.py     RegistryHosts / Endpoint: [registries."host"] settings, loopback = plain HTTP
    auth.py      Credentials, docker config.json lookup, X-Registry-Auth, WWW-Authenticate
    client.py    RegistryClient (session, proxies, TLS, token cache); re-exports Repository
    transport.py RepositoryTransport: endpoints, auth challenges, retries, errors
    repository.py Repository (the /v2/ API): manifests, blobs, uploads, manifest pushes
    sources.py   BlobSources: (registry, repository) a blob was pulled from, for mounts
"""

from podkit.images.registry.auth import Credentials
from podkit.images.registry.client import RegistryClient, Repository
from podkit.images.registry.hosts import Endpoint, RegistryHosts

__all__ = ["Credentials", "Endpoint", "RegistryClient", "RegistryHosts", "Repository"]
