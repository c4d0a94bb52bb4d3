"""Manifests: what a vendor describes, from YAML bytes to a checked model.

* :mod:`~sevref.manifest.loader`: the hardened YAML loader (bytes to a
  :class:`~sevref.manifest.loader.Document` with the position of every node);
* :mod:`~sevref.manifest.prose`: schema errors as one sentence each;
* :mod:`~sevref.manifest.model`: the frozen model;
* :mod:`~sevref.manifest.reader`: documents to the model, checking what they mean.

Nothing here reads a file: the edge reads the bytes, and paths stay paths.
"""
