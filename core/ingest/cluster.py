"""``artdb index --executor dask``: the workers analyse, decode, extract and embed; this process writes.

Each file with new audio becomes one task on a Dask worker: :func:`analyze_job` (stat, hash, tags,
probe), then its log-mels (and the backbone features when the active model reads them), then its
vector under the active model. The worker sends back the analysis, the features and the vector;
this process (the client) is the only writer of the catalog, the feature store and the index, in
the same batches and transactions as a local run (:func:`artdb.core.ingest.pipeline.ingest`), so
durability, idempotence and crash safety are those of a local run:

- a batch's features are durable before its rows commit; its vectors are written as embedding rows
  right after (:func:`artdb.core.vectors.index.store_vectors`), and the active index copies them
  from the catalog when the ingest ends (a crash in between: the next sync embeds them here);
- what the workers hold (a decoder, a model) is set up once per worker by a worker plugin
  (:class:`AnalysisPlugin`): the model's checkpoint travels to each worker once, inside it, not
  with every task; the workers need the same artdb install (and musicnn weights, checked by
  fingerprint), and the audio at the same paths (a shared filesystem);
- back-pressure: at most ``window`` tasks in flight (:func:`artdb.core.dask_cluster.bounded_results`);
- a worker lost mid-run: Dask reruns its tasks elsewhere (nothing is written by a worker, so a
  rerun can neither lose nor double a track); a file whose task kills workers repeatedly becomes
  that file's error;
- ``per_worker``: how many files each worker analysed, ``decoded_per_worker`` how many of them it
  decoded (in the ingest report): a touched file whose audio and features the catalog already has is
  hashed on a worker, not decoded again.

:func:`cluster_embedding`: the same plugin embeds batches of stored features for
``--rebuild-index``.
"""

from __future__ import annotations

import logging
import tempfile
import uuid
from collections import Counter, deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import distributed
import numpy as np
import torch
from distributed import Client, WorkerPlugin

from artdb.core.dask_cluster import bounded_results, worker_name
from artdb.core.errors import AudioError, ConfigError
from artdb.core.faults import kill_point
from artdb.core.features.backbone import BackboneConfig, BackboneExtractor
from artdb.core.features.frontend.config import FrontendConfig
from artdb.core.features.frontend.pipeline import FeatureExtractor
from artdb.core.features.provenance import record_content
from artdb.core.ingest.analyze import FileAnalysis, FileFailure, analyze_job
from artdb.core.ingest.pipeline import Analysed, Job
from artdb.core.learn.checkpoint import checkpoint_file
from artdb.core.learn.embedders import load_embedder
from artdb.db.models import Model

log = logging.getLogger(__name__)


@dataclass
class TrackProducts:
    """What a worker made of one file's audio: features per store (0: log-mels, 1: backbone) and
    its vector under the active model (None when the model reads none of them)."""

    features: dict[int, np.ndarray]
    vector: np.ndarray | None


@dataclass(frozen=True)
class ModelSpec:
    """A registered model as a worker needs it: its row's fields and its checkpoint's bytes."""

    id: int
    name: str
    kind: str
    version: str
    config: dict
    checksum: str | None
    dim: int
    checkpoint: bytes | None
    checkpoint_name: str | None

    @classmethod
    def of(cls, model: Model, paths) -> ModelSpec:
        data = name = None
        if model.checkpoint_path:
            path = checkpoint_file(model.checkpoint_path, paths)
            data, name = path.read_bytes(), path.name
        return cls(model.id, model.name, model.kind, model.version, dict(model.config or {}),
                   model.checksum, model.dim, data, name)

    def embedder(self, directory: str | Path, device: str = "cpu"):
        """The model's embedder on ``device``, its checkpoint written once into ``directory``
        (checked against its sha256 on load)."""
        path = None
        if self.checkpoint is not None:
            path = Path(directory) / f"{self.id}-{self.checkpoint_name}"
            path.write_bytes(self.checkpoint)
        row = Model(id=self.id, name=self.name, kind=self.kind, version=self.version, config=self.config,
                    checksum=self.checksum, dim=self.dim, checkpoint_path=str(path) if path else None)
        return load_embedder(row, device)


def worker_device(wanted: str | None, worker: str = "this worker") -> str:
    """The device a worker computes on: ``wanted``, or cuda when this worker has it (None)."""
    has_cuda = torch.cuda.is_available()
    if wanted is None:
        return "cuda" if has_cuda else "cpu"
    if str(wanted).startswith("cuda") and not has_cuda:
        raise ConfigError(f"worker {worker}: --device {wanted} was asked for but it has no CUDA device "
                          "(leave --device out: each worker then uses cuda where it has it)")
    return str(wanted)


class AnalysisPlugin(WorkerPlugin):
    """Set up once per worker: the extractors (decoding in the worker's own thread) and the model.

    ``stores``: the feature configs to compute, in store order; ``reads``: which of them the model
    embeds (None: no vectors); ``device``: where (None: cuda on the workers that have it)."""

    def __init__(self, stores: Sequence[FrontendConfig | BackboneConfig], model: ModelSpec | None,
                 reads: int | None, device: str | None = None):
        self.name = f"artdb-analysis-{uuid.uuid4().hex[:12]}"
        self.stores = list(stores)
        self.fingerprints = [c.fingerprint() for c in self.stores]
        self.model = model
        self.reads = reads
        self.wanted_device = device
        self.device = "cpu"  # resolved on each worker by setup
        self.extractors: list = []
        self.embedder = None
        self.address = "?"
        self.ready = False  # set up completely on this worker
        self._tmp: tempfile.TemporaryDirectory | None = None

    def setup(self, worker) -> None:
        self.address = str(worker.address)
        # One thread per task, as the local pool runs: a machine runs one single-threaded worker
        # process per core (a nanny-started worker has OMP_NUM_THREADS=1 already; one started
        # with --no-nanny would give each process every core).
        torch.set_num_threads(1)
        self.device = worker_device(self.wanted_device, self.address)
        log.info("artdb analysis on worker %s computes on %s", self.address, self.device)
        for config, fingerprint in zip(self.stores, self.fingerprints):
            if config.fingerprint() != fingerprint:  # other weights or code on this worker
                raise ConfigError(f"worker {self.address}: features of {type(config).__name__} would "
                                  f"differ here (fingerprint {config.fingerprint()} != {fingerprint})")
            if isinstance(config, BackboneConfig):
                self.extractors.append(BackboneExtractor(config, workers=0, device=self.device))
            else:
                self.extractors.append(FeatureExtractor(config, workers=0, device=self.device))
        if self.model is not None and self.reads is not None:
            self._tmp = tempfile.TemporaryDirectory(prefix="artdb-model-", dir=worker.local_directory)
            self.embedder = self.model.embedder(self._tmp.name, self.device)
        self.ready = True

    def teardown(self, worker) -> None:
        for extractor in self.extractors:
            extractor.close()
        self.extractors, self.embedder = [], None
        if self._tmp is not None:
            self._tmp.cleanup()

    def products(self, path: str, kinds: Sequence[int] | None = None) -> TrackProducts | str:
        """Features (of the stores ``kinds``; None: all) and vector of one file, or the reason they
        could not be made (worded as a local run words it). The vector needs the kind the model
        reads: without it the writer embeds the track from its stored features."""
        if not self.ready:  # its setup failed here: no half-made features from this worker
            raise ConfigError(f"worker {self.address}: artdb's worker plugin did not set up (see the "
                              "worker's log); this worker cannot compute features")
        parts: dict[int, np.ndarray] = {}
        for n, extractor in enumerate(self.extractors):
            if kinds is not None and n not in kinds:
                continue
            [(_, _, out)] = list(extractor.extract([path]))
            if isinstance(out, AudioError):
                return f"backbone features ({self.stores[n].name}): {out.reason}" if n else out.reason
            parts[n] = out
        vector = None
        if self.embedder is not None and self.reads in parts:
            try:
                vector = np.asarray(self.embedder.embed(parts[self.reads][None]), dtype=np.float32)[0]
            except Exception as exc:  # noqa: BLE001 - the writer embeds it from the stored features
                log.warning("%s: embedding failed on worker %s (%s); embedded by the writer", path,
                            self.address, exc)
        return TrackProducts(parts, vector)


def _plugin(name: str) -> AnalysisPlugin:
    return distributed.get_worker().plugins[name]


# (content hash, kinds of features it lacks) of the track catalogued at a job's path
Catalogued = tuple[str, tuple[int, ...]]


def _analyse_task(args: tuple[str, bool, tuple, Catalogued | None]) -> tuple[Any, Any, str]:
    """On a worker: one file's analysis and its products. ``catalogued``: (content hash, kinds its
    track lacks) of the track at this path; when the file still holds that audio (a touched file)
    only the lacking kinds are made — none at all when it lacks none: nothing is decoded."""
    name, with_products, job, catalogued = args
    result = analyze_job(job)
    products = None
    if with_products and isinstance(result, FileAnalysis):
        kinds = catalogued[1] if catalogued and result.content_hash == catalogued[0] else None
        if kinds != ():
            products = _plugin(name).products(result.path, kinds)
    kill_point("dask worker analysed a file")
    return result, products, worker_name()


def _products_task(args: tuple[str, str]) -> TrackProducts | str:
    name, path = args
    return _plugin(name).products(path)


def _embed_task(args: tuple[str, np.ndarray]) -> np.ndarray:
    name, features = args
    plugin = _plugin(name)
    if not plugin.ready or plugin.embedder is None:
        raise ConfigError(f"worker {plugin.address}: artdb's worker plugin did not set up its model")
    return np.asarray(plugin.embedder.embed(features), dtype=np.float32)


def _killed(exc: BaseException) -> bool:
    return isinstance(exc, distributed.KilledWorker)


class ClusterStage:
    """Ingest's analyser and feature stage on a Dask cluster (see the module doc).

    ``stores``: ``(store, config, name)`` per kind of features, in order (none with
    ``--no-features``); ``model``: the active model whose vectors the workers compute, with the
    index of the store it reads (``reads``), or None. ``store_vectors(track ids and hashes,
    vectors)`` writes the vectors of a committed batch.
    """

    def __init__(self, client: Client, stores: Sequence[tuple[Any, FrontendConfig | BackboneConfig, str]],
                 model: ModelSpec | None = None, reads: int | None = None, window: int = 256,
                 store_vectors=None, device: str | None = None):
        self.client = client
        self.stores = list(stores)
        self.window = window
        self.store_vectors = store_vectors
        self.plugin = AnalysisPlugin([c for _, c, _ in self.stores], model, reads, device)
        self.per_worker: Counter[str] = Counter()
        self.decoded_per_worker: Counter[str] = Counter()
        self._pending: list[tuple[int, str, np.ndarray]] = []
        try:  # a worker whose set-up fails raises here, on the client, with the worker's reason
            client.register_plugin(self.plugin, name=self.plugin.name)
        except BaseException:
            self.close()  # the workers that did set up let go of their model and decoders
            raise

    def close(self) -> None:
        try:
            self.client.unregister_worker_plugin(self.plugin.name)
        except Exception as exc:  # noqa: BLE001 - a closing cluster: nothing left to free
            log.debug("unregistering %s: %s", self.plugin.name, exc)

    def __enter__(self) -> ClusterStage:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- the analyser ------------------------------------------------------------------------------
    def analyse(self, jobs: Iterable[Job]) -> Iterator[Analysed]:
        submitted: deque[tuple[int, tuple]] = deque()  # (number, job) of the tasks in flight

        def tasks() -> Iterator[tuple[str, bool, tuple, Catalogued | None]]:
            for n, job, catalogued in jobs:
                submitted.append((n, job))
                # if the worker finds the catalogued audio (a touched file), the writer keeps what
                # the track has: only the kinds it lacks are worth decoding for
                hint = None
                if catalogued is not None:
                    track, digest = catalogued
                    hint = digest, tuple(k for k, (store, _, _) in enumerate(self.stores)
                                         if track not in store)
                yield self.plugin.name, bool(self.stores), job, hint

        for outcome in bounded_results(self.client, _analyse_task, tasks(), self.window,
                                       on_error=_killed):
            n, job = submitted.popleft()
            if isinstance(outcome, BaseException):  # its task killed worker after worker
                yield n, FileFailure(job[0], job[1], "analysing it killed the Dask worker "
                                     f"processes that tried ({outcome})"), None
                continue
            result, products, worker = outcome
            self.per_worker[worker] += 1
            if products is not None:
                self.decoded_per_worker[worker] += 1
            yield n, result, products

    # -- the feature stage -------------------------------------------------------------------------
    def missing(self, track_ids: Sequence[int]) -> set[int]:
        return {int(t) for t in track_ids if any(int(t) not in store for store, _, _ in self.stores)}

    def extract(self, paths: Sequence[str],
                track_ids: Sequence[int | None] | None = None) -> list[TrackProducts | str]:
        ids = list(track_ids) if track_ids is not None else [None] * len(paths)
        out: list[TrackProducts | str] = []
        tasks = ((self.plugin.name, p) for p in paths)
        for t, products in zip(ids, bounded_results(self.client, _products_task, tasks, self.window,
                                                    on_error=_killed)):
            if isinstance(products, BaseException):
                products = f"computing its features killed the Dask workers that tried ({products})"
            elif isinstance(products, TrackProducts) and t is not None:
                # a catalogued track gets only the kinds it lacks
                products.features = {n: x for n, x in products.features.items()
                                     if int(t) not in self.stores[n][0]}
            out.append(products)
        return out

    def save(self, track_ids: Sequence[int], features: Sequence[TrackProducts],
             content_hashes: Sequence[str] | None = None) -> None:
        hashes = list(content_hashes) if content_hashes is not None else [None] * len(track_ids)
        for n, (store, _, _) in enumerate(self.stores):
            rows = [(int(t), p.features[n], h) for t, p, h in zip(track_ids, features, hashes)
                    if n in p.features]
            if rows:
                store.put_many([t for t, _, _ in rows], np.stack([x for _, x, _ in rows]))
                if content_hashes is not None:  # which audio they were made from, as locally
                    record_content(store.directory, [t for t, _, _ in rows], [h for _, _, h in rows])
        # this batch's vectors, written once its rows are committed (a retried batch saves again)
        self._pending = [(int(t), h, p.vector) for t, p, h in zip(track_ids, features, hashes)
                         if p.vector is not None and h is not None]

    def committed(self) -> None:
        pending, self._pending = self._pending, []
        if pending and self.store_vectors is not None:
            self.store_vectors([(t, h) for t, h, _ in pending], np.stack([v for _, _, v in pending]))

    def remove(self, track_ids: Sequence[int]) -> None:
        for store, _, _ in self.stores:
            store.delete(list(track_ids))

    # -- embedding stored features (``--rebuild-index``) ---------------------------------------------
    def embed(self, batches: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """Vectors of each batch of features, embedded on the workers, in order."""
        tasks = ((self.plugin.name, x) for x in batches)
        yield from bounded_results(self.client, _embed_task, tasks, self.window)


def cluster_embedding(client: Client, paths, window: int = 8, device: str | None = None):
    """An ``embed_many`` for :func:`artdb.core.vectors.index.rebuild_index`: each batch of stored
    features embedded on the cluster's workers by the (staged) model, sent once per worker, on
    ``device`` (None: cuda on the workers that have it)."""

    def embed_many(model: Model, batches: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        with ClusterStage(client, [], ModelSpec.of(model, paths), reads=0, window=window,
                          device=device) as stage:
            yield from stage.embed(batches)

    return embed_many
