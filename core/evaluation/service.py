"""What ``artdb evaluate`` calls: pick the data, add peers and models, run, write the outputs.

Progress (:mod:`artdb.core.progress`): the private ingest's stages, then ``"evaluate"`` events
(``event="dataset"``, ``"peer"``, then the runner's ``"split"``, ``"train"``, ``"scored"``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import tempfile
from pathlib import Path

import numpy as np

from artdb.core.errors import ConfigError
from artdb.core.evaluation.dataset import catalog_dataset, open_catalog_dataset
from artdb.core.evaluation.peers import run_musicnn
from artdb.core.evaluation.report import write_outputs
from artdb.core.evaluation.runner import EvalConfig, run_evaluation
from artdb.core.features.frontend.config import FrontendConfig
from artdb.core.learn.embedders import load_embedder
from artdb.core.learn.registry import get_model
from artdb.core.progress import Progress, report
from artdb.core.synth.catalog import generate_catalog
from artdb.core.synth.config import SynthConfig

SYNTH_SECONDS = 20.0  # track length of ``artdb evaluate --synth``'s catalog
QUICK_SYNTH_SECONDS = 10.0  # ... with --quick


def synth_catalog(out: str | Path, artists: int, seed: int = 0, quick: bool = False, **kwargs) -> Path:
    """Generate (once) a synthetic catalog with truth.json under ``out`` (shorter tracks when ``quick``)."""
    kwargs.setdefault("seconds", QUICK_SYNTH_SECONDS if quick else SYNTH_SECONDS)
    out = Path(out)
    if not (out / "truth.json").exists():
        cfg = SynthConfig(artists=artists, seed=seed, homonym_groups=0, synonym_pairs=0, **kwargs)
        generate_catalog(out, cfg.validate())
    return out


def evaluate(cfg: EvalConfig, *, catalog_dir: str | Path | None = None, user_catalog=None,
             user_paths=None, from_db: bool = False, workdir: str | Path | None = None,
             peer: str | None = None, peer_python: str | None = None, peer_file: str | None = None,
             out_prefix: str | Path | None = None, workers: int = 2,
             progress: Progress | None = None) -> dict:
    """Evaluate on a labelled catalog folder (ingested privately) or on the user's catalog.

    ``cfg.models`` are looked up in ``user_catalog``'s registry and scored as they are (their
    front-end is used to extract the evaluation catalog's features). ``peer="musicnn"`` runs the
    peer in ``peer_python`` (or reuses ``peer_file`` if it exists) and scores it as ``file:musicnn``.
    Returns the report; with ``out_prefix`` also writes PREFIX.json/.md/.png (``report["files"]``).
    """
    if (catalog_dir is None) == (not from_db):
        raise ConfigError("give exactly one of a catalog folder or --from-db")
    fitted, frontend = {}, None
    for name in cfg.models:
        if user_catalog is None:
            raise ConfigError("scoring a registered model needs the catalog it is registered in")
        emb = load_embedder(get_model(user_catalog, name))
        fe = FrontendConfig.from_dict(emb.frontend) if emb.frontend else None
        if frontend is not None and fe is not None and fe != frontend:
            raise ConfigError("models with different front-ends cannot be scored in one run")
        frontend = frontend or fe
        fitted[name] = _chunked_embed(emb)
    with contextlib.ExitStack() as stack:
        if from_db:
            if user_catalog is None:
                raise ConfigError("--from-db needs a catalog")
            ds = catalog_dataset(user_catalog, user_paths, frontend, stack=stack)
            ingest = None
        else:
            ds, ingest = stack.enter_context(open_catalog_dataset(
                catalog_dir, workdir=workdir, frontend=frontend, workers=workers, progress=progress))
        n_seeds = len(cfg.seeds)
        report(progress, "evaluate", 0, n_seeds, event="dataset", **ds.summary())
        if peer:
            if peer != "musicnn":
                raise ConfigError(f"unknown peer {peer!r} (known: musicnn)")
            path = Path(peer_file) if peer_file else None
            if path is None or not path.exists():
                if not peer_python:
                    raise ConfigError("--peer musicnn needs --peer-python (the peer venv's python) "
                                      "or an existing --peer-file")
                if path is None:
                    path = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="artdb-peer-"))) / "musicnn.npz"
                report(progress, "evaluate", 0, n_seeds, event="peer", peer=peer, tracks=len(ds))
                run_musicnn(ds.paths, peer_python, path)
            cfg = dataclasses.replace(cfg, embeddings=tuple(cfg.embeddings) + (("musicnn", str(path)),))
        result = run_evaluation(ds, cfg, progress=progress, fitted_models=fitted)
        if ingest is not None:
            result["ingest"] = {k: ingest[k] for k in ("counts", "seconds", "errors") if k in ingest}
    if out_prefix is not None:
        result["files"] = write_outputs(result, out_prefix)
    return result


def _chunked_embed(embedder, chunk: int = 128):
    def run(features):
        n = features.shape[0]
        parts = [embedder.embed(np.asarray(features[np.arange(i, min(n, i + chunk))]))
                 for i in range(0, n, chunk)]
        return np.concatenate(parts) if parts else np.zeros((0, embedder.dim), np.float32)

    return run
