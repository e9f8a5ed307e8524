"""A labelled evaluation set: stored log-mel features plus the *true* artist of every track.

Sources of truth, in order:

1. ``truth.json`` of a synthetic catalog (``artdb synth``): true artist, album and label per
   track (its artist pages are deliberately wrong on the planted homonyms);
2. any other catalog: the artist tags (or a ``manifest.csv``'s ``artist`` column) are trusted as
   truth; a manifest's ``source_package``/``source``/``label`` column names the track's source
   (same game, label or production), else the album's label, else the album itself.

:func:`open_catalog_dataset` ingests a folder into a *private* data dir (temporary by default,
or ``workdir`` to reuse between runs: ingest is idempotent), so evaluation never touches the
user's catalog. :func:`catalog_dataset` reads an already opened catalog (``--from-db``).

Backbone features (``open_catalog_dataset(..., backbone=BackboneConfig(...))``): the pretrained
backbone's patch vectors ``[n, patches, dim]``, row-aligned with the log-mels, computed by the
same private ingest (one composite feature stage, so a rerun in ``workdir`` recomputes nothing)
and read only when asked for; tracks that have log-mels but no backbone features are left out
(``EvalDataset.notes`` says how many), so every system sees the same tracks.
"""

from __future__ import annotations

import contextlib
import csv
import json
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select

from artdb.core.analysis.metadata import album_metadata
from artdb.core.config import Paths
from artdb.core.errors import CatalogError
from artdb.core.features.backbone import BackboneConfig, BackboneExtractor
from artdb.core.features.frontend.config import FrontendConfig
from artdb.core.features.frontend.pipeline import FeatureExtractor
from artdb.core.features.store import (
    FeatureStoreError,
    StoreFeatureArray,
    open_backbone_store,
    open_feature_store,
)
from artdb.core.ingest.pipeline import IngestOptions, ingest
from artdb.core.ingest.service import CompositeFeatureStage, StoreFeatureStage
from artdb.core.learn.registry import default_frontend_config
from artdb.core.progress import Progress
from artdb.db.models import Album, ArtistPage, Genre, Label, Track, TrackCredit
from artdb.db.session import Catalog, DatabaseError

SOURCE_COLUMNS = ("source_package", "source", "production", "label")
IN_MEMORY_LIMIT = 4 << 30  # features above this stay in the feature store, read on demand


@dataclass
class EvalDataset:
    """Row-aligned per-track arrays; ``features`` is ``[n, k, mels, frames]`` (numpy or store view).

    ``backbone_features``: ``[n, patches, dim]`` (numpy or store view) of the backbone described by
    the :class:`BackboneConfig` dict ``backbone``, or ``None`` when not computed.
    """

    features: Any
    artists: np.ndarray  # true artist (str)
    albums: np.ndarray  # album key (str), unique across artists
    genres: np.ndarray  # genre (str, "" when unknown)
    sources: np.ndarray  # source / label / production (str)
    track_ids: np.ndarray  # catalog ids
    paths: list[str]  # absolute audio paths
    frontend: dict = field(default_factory=dict)
    root: str | None = None
    truth: str = "tags"  # where the artist labels came from
    backbone_features: Any = None
    backbone: dict | None = None  # BackboneConfig.to_dict() of backbone_features
    notes: list = field(default_factory=list)  # what was left out, and why
    # album key -> its catalog metadata (AlbumMeta), for fused scores; None when not read
    album_meta: dict | None = None

    def __post_init__(self):
        n = len(self.track_ids)
        for name in ("artists", "albums", "genres", "sources"):
            setattr(self, name, np.asarray(getattr(self, name)).astype(str))
            if len(getattr(self, name)) != n:
                raise CatalogError(f"dataset field {name} has {len(getattr(self, name))} rows, expected {n}")
        self.track_ids = np.asarray(self.track_ids, dtype=np.int64)
        if self.backbone_features is not None:
            if self.backbone is None:
                raise CatalogError("backbone features need their BackboneConfig (dataset field backbone)")
            shape = tuple(self.backbone_features.shape)
            dim = BackboneConfig.from_dict(self.backbone).dim
            if len(shape) != 3 or shape[0] != n or shape[2] != dim:
                raise CatalogError(f"backbone features have shape {shape}, expected ({n}, patches, {dim})")

    def backbone_config(self) -> BackboneConfig | None:
        return BackboneConfig.from_dict(self.backbone) if self.backbone is not None else None

    def backbone_layer_slices(self) -> dict[str, tuple[int, int]]:
        """Where each stored backbone layer sits in a patch vector: ``{layer: (start, stop)}``."""
        cfg = self.backbone_config()
        if cfg is None:
            raise CatalogError("the dataset has no backbone features")
        return {k: (v.start, v.stop) for k, v in cfg.layer_slices().items()}

    def __len__(self) -> int:
        return len(self.track_ids)

    def subset(self, rows) -> EvalDataset:
        rows = np.asarray(rows, dtype=np.int64)
        bb = None if self.backbone_features is None else _SubsetFeatures(self.backbone_features, rows)
        return EvalDataset(_SubsetFeatures(self.features, rows), self.artists[rows], self.albums[rows],
                           self.genres[rows], self.sources[rows], self.track_ids[rows],
                           [self.paths[i] for i in rows], self.frontend, self.root, self.truth,
                           bb, self.backbone, list(self.notes), self.album_meta)

    def summary(self) -> dict:
        a, n_alb = np.unique(self.artists, return_counts=False), len(np.unique(self.albums))
        per_artist = np.unique(self.artists, return_counts=True)[1]
        albums_per_artist = np.array([len(np.unique(self.albums[self.artists == x])) for x in a])
        return {"tracks": len(self), "artists": int(len(a)), "albums": int(n_alb),
                "genres": int(len(np.unique(self.genres))), "sources": int(len(np.unique(self.sources))),
                "tracks_per_artist": {"min": int(per_artist.min()), "median": float(np.median(per_artist)),
                                      "max": int(per_artist.max())} if len(a) else {},
                "artists_with_2plus_albums": int((albums_per_artist >= 2).sum()),
                "truth": self.truth, "root": self.root,
                **({"backbone": {k: self.backbone[k] for k in ("name", "model", "patches_per_track")}}
                   if self.backbone is not None else {}),
                **({"notes": list(self.notes)} if self.notes else {})}


class _SubsetFeatures:
    """A row subset of a features array (keeps store-backed arrays lazy)."""

    def __init__(self, base, rows: np.ndarray):
        self.base, self.rows = base, rows
        self.shape = (len(rows), *tuple(base.shape)[1:])
        self.dtype = getattr(base, "dtype", np.float16)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key):
        if isinstance(key, tuple):
            r, e = key
            return self.base[self.rows[np.atleast_1d(r)], e]
        return self.base[self.rows[np.atleast_1d(key)] if not isinstance(key, slice) else self.rows[key]]

    def __array__(self, dtype=None, copy=None):
        x = np.asarray(self.base[self.rows])
        return x.astype(dtype) if dtype is not None else x


def from_arrays(features, artists, albums=None, genres=None, sources=None, paths=None,
                track_ids=None, backbone_features=None,
                backbone: BackboneConfig | dict | None = None,
                album_meta: dict | None = None) -> EvalDataset:
    """A dataset from in-memory arrays (tests, benchmarks, ``synthetic_training_data``).

    ``album_meta``: album key (``"artist/album"``) -> :class:`AlbumMeta`, for fused scores.

    ``backbone_features`` ``[n, patches, dim]``, with ``backbone`` the config they were computed
    with (default: :class:`BackboneConfig` with ``patches`` patches, its default layers, or the
    ``penultimate`` layer alone when ``dim`` is that layer's).
    """
    n = len(artists)
    if backbone_features is not None:
        backbone = _backbone_of(backbone_features, backbone)
    artists = np.asarray(artists).astype(str)
    albums = np.char.add(np.char.add(artists, "/"), np.asarray(albums).astype(str)) if albums is not None \
        else np.char.add(artists, "/album")
    return EvalDataset(
        features, artists, albums,
        np.asarray(genres).astype(str) if genres is not None else np.full(n, ""),
        np.asarray(sources).astype(str) if sources is not None else albums,
        np.arange(n) if track_ids is None else track_ids,
        [str(p) for p in paths] if paths is not None else [f"track-{i}" for i in range(n)],
        backbone_features=backbone_features, backbone=backbone, album_meta=album_meta,
    )


def _backbone_of(features, backbone: BackboneConfig | dict | None) -> dict:
    if isinstance(backbone, BackboneConfig):
        return backbone.to_dict()
    if backbone is not None:
        return BackboneConfig.from_dict(backbone).to_dict()
    shape = tuple(features.shape)
    if len(shape) != 3:
        raise CatalogError(f"backbone features must be [n, patches, dim], got shape {shape}")
    # the stored default, what the default model reads, the peer's layer alone
    for layers in (BackboneConfig().layers, ("penultimate", "mean_pool"), ("penultimate",)):
        config = BackboneConfig(patches_per_track=shape[1], layers=layers)
        if shape[2] == config.dim:
            return config.to_dict()
    raise CatalogError(f"backbone features of dim {shape[2]}: pass the BackboneConfig they were "
                       "computed with")


# -- from a catalog --------------------------------------------------------------------------------
def _read_manifest(root: Path, manifest: str | Path | None) -> dict[str, dict]:
    path = Path(manifest) if manifest else root / "manifest.csv"
    if not path.exists():
        return {}
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    base = root.resolve()
    return {str((base / r["path"]).resolve()): r for r in rows if r.get("path")}


def _synth_truth(root: Path) -> dict[str, dict] | None:
    p = root / "truth.json"
    if not p.exists():
        return None
    try:
        t = json.loads(p.read_text(encoding="utf-8"))
    except ValueError:
        return None
    if not isinstance(t, dict) or not isinstance(t.get("tracks"), list):
        return None  # e.g. realcat's {artist: [tracks]}: its manifest carries the same truth
    albums = {a["id"]: a for a in t.get("albums", [])}
    base = root.resolve()
    out = {}
    for tr in t["tracks"]:
        alb = albums.get(tr["album_id"], {})
        out[str((base / tr["path"]).resolve())] = {
            "artist": tr["artist_id"], "album": tr["album_id"], "genre": alb.get("genre", ""),
            "source": alb.get("label") or tr["album_id"]}
    return out


def catalog_dataset(catalog, paths, frontend=None, root: str | Path | None = None,
                    manifest: str | Path | None = None, max_memory_bytes: int = IN_MEMORY_LIMIT,
                    stack: contextlib.ExitStack | None = None,
                    backbone: BackboneConfig | None = None) -> EvalDataset:
    """Tracks of ``catalog`` that have features, with truth as described in the module doc.

    With features larger than ``max_memory_bytes`` the feature store stays open on ``stack``.
    ``backbone``: also read these backbone features (stored beside the log-mels); tracks without
    them are left out (see ``notes``).
    """
    frontend = frontend or default_frontend_config(catalog)
    with catalog.session() as s:
        rows = s.execute(
            select(Track.id, Track.audio_path, ArtistPage.display_name, Album.id, Album.title,
                   Genre.name, Label.name)
            .join(Album, Album.id == Track.album_id)
            .join(TrackCredit, (TrackCredit.track_id == Track.id) & (TrackCredit.position == 0))
            .join(ArtistPage, ArtistPage.id == TrackCredit.page_id)
            .outerjoin(Genre, Genre.id == Album.genre_id)
            .outerjoin(Label, Label.id == Album.label_id)
            .order_by(Track.id)
        ).all()
    root_p = Path(root) if root else None
    synth = _synth_truth(root_p) if root_p else None
    man = _read_manifest(root_p, manifest) if root_p else {}
    store = open_feature_store(paths, frontend, mode="r")
    notes: list[str] = []
    bb_feats = None
    try:
        rows = [r for r in rows if int(r[0]) in store]
        if not rows:
            raise CatalogError("no catalogued tracks with features to evaluate on")
        if backbone is not None:
            rows, bb_feats = _read_backbone(paths, backbone, rows, max_memory_bytes, stack, notes)
        artists, albums, genres, sources = [], [], [], []
        for _tid, path, page, album_id, album_title, genre, label in rows:
            key = str(Path(path).resolve())
            if synth is not None:
                t = synth.get(key)
                if t is None:
                    raise CatalogError(f"{path}: not in {root_p / 'truth.json'}")
                artists.append(t["artist"]), albums.append(t["album"])
                genres.append(t["genre"] or genre or ""), sources.append(t["source"])
                continue
            m = man.get(key, {})
            artist = m.get("artist") or page
            artists.append(artist)
            albums.append(f"{artist}/{m.get('album') or album_title}#{album_id}")
            genres.append(m.get("genre") or genre or "")
            src = next((m[c] for c in SOURCE_COLUMNS if m.get(c)), None)
            sources.append(src or label or f"album:{album_id}")
        ids = np.array([int(r[0]) for r in rows], dtype=np.int64)
        catalog_album = {key: int(r[3]) for key, r in zip(albums, rows)}
        with catalog.session() as s:
            meta = album_metadata(s, set(catalog_album.values()))
        album_meta = {key: meta[a] for key, a in catalog_album.items() if a in meta}
        # A manifest's source (source_package, source, label) stands for the label where the tags
        # have none: on the dev catalog one package is one artist's or one game's music. (Not a
        # synthetic truth's: its label is known even where the tags leave it out.)
        for key, src in zip(albums, sources if synth is None else []):
            m = album_meta.get(key)
            if m is not None and m.label is None and src and not src.startswith("album:"):
                album_meta[key] = replace(m, label=src)
        feats = _materialize(store, ids, max_memory_bytes, stack, "features")
    except BaseException:
        store.close()
        raise
    return EvalDataset(feats, np.array(artists), np.array(albums), np.array(genres), np.array(sources),
                       ids, [str(r[1]) for r in rows], frontend.to_dict(),
                       str(root_p) if root_p else None,
                       "truth.json" if synth is not None else ("manifest" if man else "tags"),
                       bb_feats, backbone.to_dict() if backbone is not None else None, notes,
                       album_meta)


def _read_backbone(paths, backbone: BackboneConfig, rows: list, max_memory_bytes: int,
                   stack: contextlib.ExitStack | None, notes: list[str]):
    """``rows`` that have ``backbone``'s features, and those features (in memory, or a store view
    kept open on ``stack`` when larger than ``max_memory_bytes``)."""
    try:
        store = open_backbone_store(paths, backbone, mode="r")
    except FeatureStoreError as exc:
        raise CatalogError(f"no {backbone.name} backbone features to evaluate on ({exc}); compute them "
                           f"with `artdb index --backbone {backbone.name}`") from exc
    try:
        kept = [r for r in rows if int(r[0]) in store]
        if len(kept) < len(rows):
            notes.append(f"{len(rows) - len(kept)} of {len(rows)} tracks have no {backbone.name} backbone "
                         "features and are left out")
        if not kept:
            raise CatalogError(f"no catalogued track has {backbone.name} backbone features")
        ids = np.array([int(r[0]) for r in kept], dtype=np.int64)
        feats = _materialize(store, ids, max_memory_bytes, stack, "backbone features")
    except BaseException:
        store.close()
        raise
    return kept, feats


def _materialize(store, ids: np.ndarray, max_memory_bytes: int, stack: contextlib.ExitStack | None,
                 what: str):
    """``store``'s rows ``ids``: read into memory (and the store closed) when they fit in
    ``max_memory_bytes`` (float16), else a view that keeps the store open until ``stack`` closes."""
    feats = StoreFeatureArray(store, ids)
    size = int(np.prod(feats.shape)) * 2
    if size <= max_memory_bytes:
        feats = np.concatenate([store.get_many(ids[i:i + 256]) for i in range(0, len(ids), 256)])
        store.close()
    elif stack is not None:
        stack.callback(store.close)
    else:
        raise CatalogError(f"{what} take {size / 2**30:.1f} GiB: pass an ExitStack to keep the store "
                           "open, or raise max_memory_bytes")
    return feats


@contextlib.contextmanager
def open_catalog_dataset(root: str | Path, workdir: str | Path | None = None, frontend=None,
                         manifest: str | Path | None = None, workers: int = 2,
                         progress: Progress | None = None, backbone: BackboneConfig | None = None,
                         device: str = "cpu") -> Iterator[tuple[EvalDataset, dict]]:
    """Ingest ``root`` into a private catalog + feature store; yield ``(dataset, ingest summary)``.

    ``workdir``: keep the private data dir there (a rerun re-reads nothing); default a temporary
    directory removed on exit. ``frontend``: the front-end to extract with (a scored model's).
    ``backbone``: also compute (once; a rerun in ``workdir`` computes only what is missing) and
    read these backbone features, on ``device``.
    """
    root = Path(root)
    if not root.is_dir():
        raise CatalogError(f"{root}: not a directory")
    audio_root = root / "audio" if (root / "audio").is_dir() and (root / "manifest.csv").exists() else root
    if manifest is None and (root / "manifest.csv").exists():
        manifest = root / "manifest.csv"
    frontend = frontend or FrontendConfig()
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = stack.enter_context(tempfile.TemporaryDirectory(prefix="artdb-eval-"))
        home = Path(workdir)
        home.mkdir(parents=True, exist_ok=True)
        paths = Paths(home.resolve())
        try:
            catalog = Catalog.open(f"sqlite:///{paths.home / 'catalog.sqlite'}")
        except DatabaseError as exc:
            raise CatalogError(str(exc)) from exc
        stack.callback(getattr(catalog, "close", lambda: None))
        # The manifest's paths are relative to the audio folder (realcat layout: DIR/audio +
        # DIR/manifest.csv).
        options = IngestOptions(manifest=_rebased_manifest(manifest, root, audio_root, home), workers=workers)
        with contextlib.ExitStack() as stages:
            store = stages.enter_context(open_feature_store(paths, frontend))
            extractor = stages.enter_context(FeatureExtractor(frontend, workers=workers))
            stage = StoreFeatureStage(store, extractor)
            if backbone is not None:  # as index_catalog does it: one pass, each kind only where lacking
                bb_store = stages.enter_context(open_backbone_store(paths, backbone))
                bb_extractor = stages.enter_context(
                    BackboneExtractor(backbone, workers=workers, device=device))
                stage = CompositeFeatureStage([stage, StoreFeatureStage(
                    bb_store, bb_extractor, name=f"backbone features ({backbone.name})")])
            summary = ingest(catalog, audio_root, options, features=stage, progress=progress)
        ds = catalog_dataset(catalog, paths, frontend, root=audio_root,
                             manifest=options.manifest, stack=stack, backbone=backbone)
        ds.root = str(root)
        yield ds, summary.to_dict()


def _rebased_manifest(manifest, root: Path, audio_root: Path, home: Path):
    """The manifest, with paths relative to ``audio_root`` (written into ``home`` if they differ)."""
    if manifest is None:
        return None
    manifest = Path(manifest)
    with open(manifest, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return manifest
    probe = rows[0]["path"]
    if (audio_root / probe).exists() or not (root / probe).exists():
        return manifest
    out = home / "manifest.rebased.csv"
    with open(out, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
        w.writeheader()
        for r in rows:
            r = dict(r)
            r["path"] = str((root / r["path"]).resolve().relative_to(audio_root.resolve()))
            w.writerow(r)
    return out
