"""The I/O edge: every module that reads or writes files, runs programs or opens connections.

One job a module:

* :mod:`~sevref.edge.files`: bounded reads, private files, the build lock and the atomic swap;
* :mod:`~sevref.edge.debian`: obtaining Debian packages with apt-get and checking their control files;
* :mod:`~sevref.edge.packages`: files streamed out of .deb and .rpm files, bounded, each package indexed once;
* :mod:`~sevref.edge.repo`: an RPM's URL from a repository's metadata;
* :mod:`~sevref.edge.descriptors`: the QEMU firmware descriptors a package ships, and the one naming a file;
* :mod:`~sevref.edge.pin`: ``sevref pin``, the source stanza for a file inside a package;
* :mod:`~sevref.edge.sources`: the inputs a manifest pins, one module per source kind;
* :mod:`~sevref.edge.inputs`: the file cache and engine of ``sevref digest``;
* :mod:`~sevref.edge.download`: files a manifest names by URL, bounded, pinned and cached by sha256;
* :mod:`~sevref.edge.publish`: writing a publication (streamed, in parallel) and signing it;
* :mod:`~sevref.edge.signing`: signing a publication after the build: read back, checked, pages made again;
* :mod:`~sevref.edge.keys`: key files and the publisher's key-chain folder;
* :mod:`~sevref.edge.hsm`: signing keys that stay in a PKCS#11 token (an HSM);
* :mod:`~sevref.edge.remote`: reading a publication from a folder or over HTTP(S);
* :mod:`~sevref.edge.state`: the verifier's memory between runs.

Everything else in sevref takes bytes and returns values.
"""
