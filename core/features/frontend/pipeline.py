"""Decode in worker processes, log-mel in batches: ``extract_features`` for ingest and embedding.

Worker processes run :func:`artdb.core.features.frontend.decode.decode_task` (numpy/soundfile/soxr only)
and send back ``[k, excerpt_samples]`` float32 audio; the calling process stacks a batch of tracks
and runs one :class:`~artdb.core.features.frontend.logmel.LogMel` call on it (CPU or GPU), or the
``transform`` it was given (the backbone features of :mod:`artdb.core.features.backbone`). Results
come back in input order; a file that fails is yielded as an :class:`AudioError`, never raised.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import numpy as np
import torch

from artdb.core.errors import AudioError, ConfigError
from artdb.core.executor import check_start_method, fast_start_method, process_pool
from artdb.core.features.frontend.config import FrontendConfig
from artdb.core.features.frontend.decode import decode_task
from artdb.core.features.frontend.logmel import LogMel
from artdb.core.progress import Progress, report

STAGE = "features"  # progress(STAGE, done, total, path=...): total is None when ``paths`` has no len()
Result = tuple[int, str, "np.ndarray | AudioError"]
# audio [n, k, excerpt_samples] float32 -> features [n, k, ...] (a tensor on any device, or an array)
Transform = Callable[[np.ndarray], "torch.Tensor | np.ndarray"]
NON_FINITE = "the features are not finite (NaN or inf)"


class FeatureExtractor:
    """A reusable decode pool plus a log-mel transform; use as a context manager.

    ``workers=0`` decodes in the calling process (no pool; for tests and debugging).
    ``transform`` replaces the log-mel (default ``LogMel(config, device)``): it maps a batch of
    decoded tracks ``[n, k, excerpt_samples]`` to ``[n, k, ...]`` features, cast to float16 on the
    host. A batch whose transform raises is redone track by track, so only the track that fails
    gets the error; a track whose features are not finite gets an error too.

    ``start_method`` defaults to :func:`~artdb.core.executor.fast_start_method` (``"fork"`` on
    Linux: a pool starts in ~50 ms instead of seconds). Forking a process that holds torch's thread
    pool is safe here because workers only run numpy/libsndfile/soxr code and never touch torch
    (nor CUDA).
    """

    def __init__(
        self,
        config: FrontendConfig,
        workers: int = 2,
        device: str | torch.device = "cpu",
        batch_tracks: int = 16,
        start_method: str | None = None,
        transform: Transform | None = None,
    ):
        if workers < 0 or batch_tracks < 1:
            raise ConfigError(f"need workers >= 0 and batch_tracks >= 1, got {workers}, {batch_tracks}")
        self.config = config
        self.workers = workers
        self.batch_tracks = batch_tracks
        self.start_method = check_start_method(
            fast_start_method() if start_method is None else start_method)
        self.transform = LogMel(config, device) if transform is None else transform
        self._pool: ProcessPoolExecutor | None = None

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = process_pool(self.workers, start_method=self.start_method)
        return self._pool

    def start(self) -> FeatureExtractor:
        """Start the worker processes now (otherwise they start on first use)."""
        if self.workers > 0:
            pool = self._executor()
            list(pool.map(_noop, range(self.workers)))
        return self

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> FeatureExtractor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def decode(self, paths: Iterable[str | os.PathLike]) -> Iterator[tuple[int, str, tuple]]:
        """``(index, path, decode_task result)`` in input order, decoding ahead in the pool.

        If a worker process dies (a decoder crash on a malformed file), the pool is restarted and
        every file that was in flight is decoded again alone, so only the culprit gets an error.
        """
        if self.workers == 0:
            for i, p in enumerate(paths):
                yield i, str(p), decode_task(str(p), self.config)
            return
        ahead = 4 * self.workers + self.batch_tracks
        pending: deque[tuple[int, str, Future | None]] = deque()
        for i, p in enumerate(paths):
            pending.append((i, str(p), self._submit(str(p))))
            while len(pending) >= ahead:
                yield self._collect(pending)
        while pending:
            yield self._collect(pending)

    def _submit(self, path: str) -> Future:
        try:
            return self._executor().submit(decode_task, path, self.config)
        except BrokenProcessPool:
            # A worker died since the last submit; the futures it broke are isolated when
            # collected. New work goes to a fresh pool.
            self._discard_pool()
            return self._executor().submit(decode_task, path, self.config)

    def _collect(self, pending: deque) -> tuple[int, str, tuple]:
        index, path, fut = pending.popleft()
        try:
            return index, path, fut.result()
        except BrokenProcessPool:
            pass
        # The pool is broken: every pending future failed with it. Isolate the culprit by
        # decoding this file alone in a fresh pool, then resubmit the rest.
        self._discard_pool()
        result = self._decode_alone(path)
        for n, (i, p, _) in enumerate(list(pending)):
            pending[n] = (i, p, self._submit(p))
        return index, path, result

    def _decode_alone(self, path: str) -> tuple:
        with process_pool(1, start_method=self.start_method) as alone:
            try:
                return alone.submit(decode_task, path, self.config).result()
            except BrokenProcessPool:
                return "error", "the decoder crashed on this file (worker process died)"

    def _discard_pool(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def extract(
        self, paths: Iterable[str | os.PathLike], progress: Progress | None = None
    ) -> Iterator[Result]:
        """``(index, path, float16 [k, n_mels, frames] | AudioError)`` for each path, in order."""
        total = len(paths) if hasattr(paths, "__len__") else None  # type: ignore[arg-type]
        done = 0
        batch: list[tuple[int, str, tuple]] = []
        for item in self.decode(paths):
            batch.append(item)
            if len(batch) >= self.batch_tracks:
                for result in self._finish(batch):
                    done += 1
                    report(progress, STAGE, done, total, path=result[1])
                    yield result
                batch = []
        for result in self._finish(batch):
            done += 1
            report(progress, STAGE, done, total, path=result[1])
            yield result

    def _finish(self, batch: list[tuple[int, str, tuple]]) -> list[Result]:
        ok = [i for i, (_, _, (status, _)) in enumerate(batch) if status == "ok"]
        feats = self._transform([batch[i][2][1] for i in ok]) if ok else []
        slot = {b: n for n, b in enumerate(ok)}
        out: list[Result] = []
        for b, (index, path, (status, payload)) in enumerate(batch):
            result = feats[slot[b]] if status == "ok" else payload
            out.append((index, path, AudioError(path, result) if isinstance(result, str) else result))
        return out

    def _transform(self, audio: list[np.ndarray]) -> list[np.ndarray | str]:
        """float16 features of each decoded track, or the reason they could not be made."""
        try:
            feats = self.transform(np.stack(audio))  # [n, k, samples] -> [n, k, ...]
            if torch.is_tensor(feats):
                feats = feats.to(torch.float16).cpu().numpy()
            feats = np.asarray(feats, dtype=np.float16)
        except Exception as exc:  # noqa: BLE001 - isolate the track that fails, keep the others
            if len(audio) == 1:
                return [f"computing the features failed: {type(exc).__name__}: {exc}"]
            return [self._transform([a])[0] for a in audio]
        return [f if np.isfinite(f).all() else NON_FINITE for f in feats]


def _noop(_: int) -> None:
    return None


def extract_features(
    paths: Iterable[str | os.PathLike],
    config: FrontendConfig,
    workers: int = 2,
    device: str | torch.device = "cpu",
    progress: Progress | None = None,
    batch_tracks: int = 16,
    start_method: str | None = None,
) -> Iterator[Result]:
    """Features for each path: ``(index, path, float16 [k, n_mels, frames] | AudioError)``.

    Results come in input order; a file that cannot be used is yielded as an :class:`AudioError`
    (``.path``, ``.reason``) so the caller can record it and go on.
    ``progress("features", done, total, path=path)`` is called after each file. The worker pool
    lives as long as the iterator.
    """
    with FeatureExtractor(
        config, workers=workers, device=device, batch_tracks=batch_tracks, start_method=start_method
    ) as fx:
        yield from fx.extract(paths, progress)
