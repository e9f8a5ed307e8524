"""The vector library's own errors.

``artdb.indexer`` imports nothing from ``artdb.core``, so it cannot raise core's ``ArtdbError``
subclasses. These classes carry the message; ``core`` wraps them (``raise CoreError(str(e)) from e``)
where it needs its own hierarchy.
"""

from __future__ import annotations


class VectorIndexError(Exception):
    """Base class of every error ``artdb.indexer`` raises on purpose (bad input, unsupported type)."""


class IndexCorruptError(VectorIndexError):
    """An index file or its sidecar is missing, truncated, unreadable or disagrees with itself."""


class IndexMismatchError(VectorIndexError):
    """An index is sound but is not the one the caller expected (model, dimension, metric)."""

    def __init__(self, path: str, field: str, found: object, expected: object):
        self.path = str(path)
        self.field = field
        self.found = found
        self.expected = expected
        super().__init__(
            f"{self.path}: index {field} is {found!r} but {expected!r} was expected"
        )
