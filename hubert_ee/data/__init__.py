"""Corpora (synthetic and real), audio I/O, validation and manifests."""
