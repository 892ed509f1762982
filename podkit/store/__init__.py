"""The lowest layer: blobs by digest (content), names/state in SQLite (metadata), and
leases that keep in-flight content from garbage collection. ``Content`` and
``ContentWriter`` (podkit.store.api) are the content store's face for the layers above."""

from podkit.store.api import Content, ContentWriter
from podkit.store.content import ContentStore, Digest, Writer
from podkit.store.leases import Leases
from podkit.store.metadata import Database

__all__ = ["Content", "ContentStore", "ContentWriter", "Database", "Digest", "Leases", "Writer"]
