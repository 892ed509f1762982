"""Images: references, the registry client, pull and push, layer unpacking, archives
(import, load, save), and the image service (records, unpack into snapshots, rmi, GC)."""
