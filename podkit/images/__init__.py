"""Images: references, the registry client, pull and push, layer unpacking, archives
(import, load, save), and the image service (records, unpack into snapshots, rmi, GC).

Other layers use ``ImageService`` (``service``; ``services.images``) and ``Registry``
(``distribution``; ``services.registry``). ``ImageService`` delegates to one module
per operation over a shared ``ImageContext`` (``context``): ``records``, ``resolve``,
``layers``, ``removal``, ``gc``; ``image`` holds ``Image`` and chain IDs.
"""
