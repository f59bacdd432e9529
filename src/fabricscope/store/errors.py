"""Store errors: one-line messages that name the store (and the file at fault)."""

from __future__ import annotations

from fabricscope.errors import FabricscopeError


class StoreError(FabricscopeError):
    """A store cannot be opened, read or written (exit code 2)."""


class StoreLocked(StoreError):
    """Another process is writing the embedded store."""


class StoreCorrupt(StoreError):
    """A store file is not what it should be (unknown format, damaged file)."""


class StoreVersionError(StoreError):
    """The store was written by a newer fabricscope (its schema version is unknown here)."""


class DiskFull(StoreError):
    """No space left while writing a batch: that batch is not committed, the rest is intact."""
