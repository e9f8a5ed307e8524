"""One progress protocol for every long-running stage.

A stage reports ``progress(stage, done, total, **info)``: ``stage`` names the phase ("ingest",
"features", "embed", "train", ...), ``done`` counts finished units, ``total`` is the number expected
(``None`` when unknown) and ``info`` carries stage-specific figures (a training step's loss, a
validation score). Library code never prints: the CLI passes a callable that draws a bar or logs,
tests pass a list's ``append``-like recorder, and ``None`` means "nobody is listening".
"""

from __future__ import annotations

from typing import Any, Protocol


class Progress(Protocol):
    def __call__(self, stage: str, done: int, total: int | None = None, **info: Any) -> None: ...


def report(progress: Progress | None, stage: str, done: int, total: int | None = None,
           **info: Any) -> None:
    """Call ``progress`` when someone listens (stages call this instead of checking for None)."""
    if progress is not None:
        progress(stage, done, total, **info)
