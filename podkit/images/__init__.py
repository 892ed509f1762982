"""Images: references, the registry client, layer unpacking, archives, the image service."""
