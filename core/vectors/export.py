"""Embedding files: write a model's vectors out (``artdb export``), read anyone's vectors in.

One on-disk convention, so that ``artdb export`` output, the musicnn peer script and any outside
system can be scored by ``artdb evaluate --embeddings FILE``:

- ``NAME.npy`` (float32 ``[n, d]``) + ``NAME.json``: ``{"format": "artdb-embeddings", "version": 1,
  "model", "level", "dim", "count", "items": [{"id", "path", ...}, ...]}`` (row-aligned items);
- ``NAME.npz``: arrays ``vectors`` and ``paths`` and/or ``ids``;
- ``NAME.csv``: a key column (``path``, ``id`` or ``track_id``) and either a ``vector`` column
  (JSON list or space-separated numbers) or one numeric column per dimension;
- ``NAME.jsonl``: one ``{"path"|"id"|"track_id": ..., "vector": [...]}`` per line;
- ``NAME.parquet`` (written beside the .npy when pyarrow is installed; read when it is).

:func:`export_vectors` reads the active (or named) model's track index — album and artist-page
vectors are the mean-normalised track vectors, as everywhere in artdb.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select

from artdb.core.errors import ArtdbError, CatalogError, ConfigError, MissingExtraError
from artdb.core.learn.registry import active_model, get_model
from artdb.core.recovery import require_folder_of, write_atomically
from artdb.core.vectors.aggregate import mean_normalized
from artdb.core.vectors.index import open_track_index
from artdb.core.vectors.indexer_errors import indexer_errors
from artdb.db.models import Album, ArtistPage, Track, TrackCredit

FORMAT = "artdb-embeddings"
FORMAT_VERSION = 1
KEY_COLUMNS = ("path", "id", "track_id", "key")


class EmbeddingsFileError(ArtdbError):
    """An embeddings file that cannot be read as one of the supported layouts."""


@dataclass
class Embeddings:
    """Vectors with their keys: ``ids`` (catalog ids, may be None) and ``paths`` (may be None)."""

    vectors: np.ndarray
    ids: list | None = None
    paths: list | None = None
    meta: dict | None = None

    def __len__(self) -> int:
        return int(self.vectors.shape[0])

    def items(self) -> list[dict]:
        out = []
        for i in range(len(self)):
            item: dict[str, Any] = {}
            if self.ids is not None:
                item["id"] = self.ids[i]
            if self.paths is not None:
                item["path"] = self.paths[i]
            out.append(item)
        return out


def write_embeddings(out: str | os.PathLike, emb: Embeddings, extra_items: list[dict] | None = None,
                     parquet: bool | None = None) -> list[Path]:
    """Write ``OUT.npy`` + ``OUT.json`` (and ``OUT.parquet`` when pyarrow is importable and
    ``parquet`` is not False); ``OUT`` may carry any of these suffixes. Returns the files written."""
    out = require_folder_of(out)
    if out.suffix in (".npy", ".json", ".parquet"):
        out = out.with_suffix("")
    vectors = np.ascontiguousarray(np.asarray(emb.vectors, dtype=np.float32))
    if vectors.ndim != 2:
        raise ConfigError(f"vectors must be [n, d], got shape {vectors.shape}")
    items = emb.items()
    if extra_items is not None:
        if len(extra_items) != len(items):
            raise ConfigError("extra_items must be row-aligned with the vectors")
        items = [{**a, **b} for a, b in zip(items, extra_items)]
    npy, js = out.with_name(out.name + ".npy"), out.with_name(out.name + ".json")
    write_atomically(npy, lambda f: np.save(f, vectors))
    meta = {"format": FORMAT, "version": FORMAT_VERSION, **(emb.meta or {}),
            "dim": int(vectors.shape[1]), "count": int(len(vectors)), "vectors": npy.name,
            "items": items}
    write_atomically(js, lambda f: f.write(json.dumps(meta, ensure_ascii=False, indent=1).encode()))
    written = [npy, js]
    if parquet is not False:
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            if parquet:
                raise MissingExtraError("Parquet output needs pyarrow: pip install pyarrow") from None
        else:
            cols: dict[str, Any] = {}
            for key in sorted({k for it in items for k in it}):
                cols[key] = [it.get(key) for it in items]
            cols["vector"] = list(vectors)
            pq_path = out.with_name(out.name + ".parquet")
            table = pa.table({k: (pa.array(v, type=pa.list_(pa.float32())) if k == "vector" else v)
                              for k, v in cols.items()})
            write_atomically(pq_path, lambda f: pq.write_table(table, f))
            written.append(pq_path)
    return written


def _key_lists(keys: list, column: str) -> tuple[list | None, list | None]:
    if column == "path":
        return None, [str(k) for k in keys]
    if column in ("id", "track_id"):
        return [int(k) if str(k).lstrip("-").isdigit() else k for k in keys], None
    # generic key: digits are ids, anything else a path
    if all(str(k).lstrip("-").isdigit() for k in keys):
        return [int(k) for k in keys], None
    return None, [str(k) for k in keys]


def read_embeddings(path: str | os.PathLike) -> Embeddings:
    """Read any supported layout (see the module doc); keys are track ids and/or paths."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix in (".npy", ".json") or (not p.exists() and p.with_name(p.name + ".json").exists()):
        return _read_npy_json(p)
    if not p.exists():
        raise EmbeddingsFileError(f"{p}: no such embeddings file")
    try:
        if suffix == ".npz":
            z = np.load(p, allow_pickle=False)
            if "vectors" not in z:
                raise EmbeddingsFileError(f"{p}: .npz needs a 'vectors' array (has {list(z.keys())})")
            ids = [int(x) for x in z["ids"]] if "ids" in z else None
            paths = [str(x) for x in z["paths"]] if "paths" in z else None
            if ids is None and paths is None:
                raise EmbeddingsFileError(f"{p}: .npz needs 'paths' and/or 'ids' beside 'vectors'")
            return Embeddings(np.asarray(z["vectors"], np.float32), ids, paths)
        if suffix == ".csv":
            return _read_csv(p)
        if suffix in (".jsonl", ".ndjson"):
            return _read_jsonl(p)
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            t = pq.read_table(p).to_pydict()
            vecs = np.asarray(t.pop("vector"), dtype=np.float32)
            return Embeddings(vecs, t.get("id"), t.get("path"))
    except (ValueError, KeyError, OSError) as exc:
        raise EmbeddingsFileError(f"{p}: {exc}") from exc
    raise EmbeddingsFileError(f"{p}: unknown embeddings format {suffix!r} (.npy+.json, .npz, .csv, "
                              ".jsonl or .parquet)")


def _read_npy_json(p: Path) -> Embeddings:
    base = p.with_suffix("") if p.suffix.lower() in (".npy", ".json") else p
    js = base.with_name(base.name + ".json")
    npy = base.with_name(base.name + ".npy")
    if not js.exists() or not npy.exists():
        raise EmbeddingsFileError(f"{base}: .npy embeddings need both {npy.name} and {js.name}")
    meta = json.loads(js.read_text(encoding="utf-8"))
    vectors = np.load(npy, allow_pickle=False).astype(np.float32)
    items = meta.pop("items", None)
    if items is None or len(items) != len(vectors):
        raise EmbeddingsFileError(f"{js}: 'items' must list one key per row of {npy.name}")
    ids = [it.get("id", it.get("track_id")) for it in items]
    paths = [it.get("path") for it in items]
    return Embeddings(vectors, ids if any(i is not None for i in ids) else None,
                      paths if any(q is not None for q in paths) else None, meta)


def _parse_vector(text: str) -> list[float]:
    text = text.strip()
    if text.startswith("["):
        return [float(v) for v in json.loads(text)]
    return [float(v) for v in text.replace(",", " ").split()]


def _read_csv(p: Path) -> Embeddings:
    with open(p, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise EmbeddingsFileError(f"{p}: empty CSV")
    cols = list(rows[0].keys())
    key = next((c for c in KEY_COLUMNS if c in cols), None)
    if key is None:
        raise EmbeddingsFileError(f"{p}: CSV needs a key column ({', '.join(KEY_COLUMNS)})")
    if "vector" in cols:
        vecs = np.asarray([_parse_vector(r["vector"]) for r in rows], dtype=np.float32)
    else:
        dims = [c for c in cols if c not in KEY_COLUMNS]
        vecs = np.asarray([[float(r[c]) for c in dims] for r in rows], dtype=np.float32)
    ids, paths = _key_lists([r[key] for r in rows], key)
    if key != "path" and "path" in cols:
        paths = [r["path"] for r in rows]
    return Embeddings(vecs, ids, paths)


def _read_jsonl(p: Path) -> Embeddings:
    recs = [json.loads(line) for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not recs:
        raise EmbeddingsFileError(f"{p}: empty JSONL")
    vecs = np.asarray([r["vector"] for r in recs], dtype=np.float32)
    ids = [r.get("id", r.get("track_id")) for r in recs]
    paths = [r.get("path") for r in recs]
    return Embeddings(vecs, ids if any(i is not None for i in ids) else None,
                      paths if any(q is not None for q in paths) else None)


def match_rows(emb: Embeddings, track_ids=None, paths=None, root: str | os.PathLike | None = None
               ) -> np.ndarray:
    """Row of ``emb`` for each wanted track (-1 where missing): by path (absolute, resolved, or
    relative to ``root``), else by track id."""
    n = len(track_ids) if track_ids is not None else len(paths)
    rows = np.full(n, -1, dtype=np.int64)
    if emb.paths is not None and paths is not None:
        lookup: dict[str, int] = {}
        for i, q in enumerate(emb.paths):
            if q is None:
                continue
            lookup.setdefault(str(q), i)
            if root is not None and not os.path.isabs(str(q)):
                lookup.setdefault(str((Path(root) / q).resolve()), i)
            else:
                lookup.setdefault(str(Path(q).resolve()), i)
        for j, q in enumerate(paths):
            for cand in (str(q), str(Path(q).resolve())):
                if cand in lookup:
                    rows[j] = lookup[cand]
                    break
    if emb.ids is not None and track_ids is not None:
        by_id = {int(k): i for i, k in enumerate(emb.ids) if k is not None}
        for j, t in enumerate(track_ids):
            if rows[j] < 0 and int(t) in by_id:
                rows[j] = by_id[int(t)]
    return rows


# -- export of a registered model's vectors --------------------------------------------------------
LEVELS = ("track", "album", "artist")


@indexer_errors()
def export_vectors(catalog, paths, out: str | os.PathLike, level: str = "track",
                   model_name: str | None = None, parquet: bool | None = None,
                   device: str = "cpu") -> dict:
    """Write the (active or named) model's vectors at ``level`` to ``out`` (see module doc).

    Items carry, per level: track → id, path, album, artist page; album → id, title, page,
    n_tracks; artist → id, name, n_tracks. Returns a summary dict (files, count, dim, model).
    """
    if level not in LEVELS:
        raise ConfigError(f"level must be one of {LEVELS}, got {level!r}")
    model = get_model(catalog, model_name) if model_name else active_model(catalog)
    if model is None:
        raise CatalogError("no active model: train one (`artdb train`), activate one "
                           "(`artdb models activate`) or pass --model")
    index = open_track_index(catalog, paths, model, device=device)
    ids = np.sort(index.index_ids())
    vecs = index.reconstruct(ids) if len(ids) else np.zeros((0, model.dim), np.float32)
    with catalog.session() as s:
        rows = s.execute(
            select(Track.id, Track.audio_path, Track.title, Album.id, Album.title, ArtistPage.id,
                   ArtistPage.display_name)
            .join(Album, Album.id == Track.album_id)
            .join(TrackCredit, (TrackCredit.track_id == Track.id) & (TrackCredit.position == 0))
            .join(ArtistPage, ArtistPage.id == TrackCredit.page_id)
            .where(Track.id.in_([int(i) for i in ids]))
        ).all()
    info = {int(r[0]): r for r in rows}
    keep = np.array([int(i) in info for i in ids], dtype=bool)
    ids, vecs = ids[keep], vecs[keep]
    meta = {"model": model.name, "model_kind": model.kind, "level": level}
    if level == "track":
        emb = Embeddings(vecs, [int(i) for i in ids], [info[int(i)][1] for i in ids], meta)
        extra = [{"title": info[int(i)][2], "album_id": int(info[int(i)][3]),
                  "album": info[int(i)][4], "artist_id": int(info[int(i)][5]),
                  "artist": info[int(i)][6]} for i in ids]
    else:
        col = 3 if level == "album" else 5
        gid = np.array([int(info[int(i)][col]) for i in ids], dtype=np.int64)
        groups, gvecs = mean_normalized(vecs, gid) if len(ids) else (gid, vecs)
        first = {int(g): int(i) for i, g in zip(ids[::-1], gid[::-1])}
        counts = dict(zip(*np.unique(gid, return_counts=True)))
        emb = Embeddings(gvecs, [int(g) for g in groups], None, meta)
        if level == "album":
            extra = [{"title": info[first[int(g)]][4], "artist_id": int(info[first[int(g)]][5]),
                      "artist": info[first[int(g)]][6], "n_tracks": int(counts[g])} for g in groups]
        else:
            extra = [{"name": info[first[int(g)]][6], "n_tracks": int(counts[g])} for g in groups]
    files = write_embeddings(out, emb, extra_items=extra, parquet=parquet)
    return {"model": model.name, "level": level, "count": len(emb), "dim": int(model.dim),
            "files": [str(f) for f in files]}
