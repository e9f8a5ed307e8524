"""``artdb.indexer``'s exceptions, translated into :mod:`artdb.core.errors` at the core boundary.

``artdb.indexer`` imports nothing from core, so it raises its own ``VectorIndexError`` family.
Core code that calls the indexer does so under :func:`indexer_errors` (a context manager, or a
decorator), so the CLI and the stages above ``core.vectors`` catch one hierarchy
(:class:`~artdb.core.errors.ArtdbError`) and never import the indexer's exceptions.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import artdb.core.errors as core_errors
import artdb.indexer.errors as ix_errors


@contextlib.contextmanager
def indexer_errors() -> Iterator[None]:
    """Re-raise an indexer exception as its core counterpart (message kept, original chained)."""
    try:
        yield
    except ix_errors.IndexMismatchError as exc:
        raise core_errors.IndexMismatchError(str(exc)) from exc
    except ix_errors.IndexCorruptError as exc:
        raise core_errors.IndexCorruptError(str(exc)) from exc
    except ix_errors.VectorIndexError as exc:
        raise core_errors.VectorIndexError(str(exc)) from exc
