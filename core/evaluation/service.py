"""What ``artdb evaluate`` calls: pick the data, add peers and models, run, write the outputs.

Backbone features are computed (once, in the private data dir; with ``--from-db`` in the
catalog's own store, as ``artdb train`` would) only when a requested system or a scored model reads
them.

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
from artdb.core.evaluation.systems import Fitted
from artdb.core.features.backbone import BackboneConfig
from artdb.core.features.frontend.config import FrontendConfig
from artdb.core.ingest.service import ensure_backbone_features
from artdb.core.learn.adapt import fitted_on
from artdb.core.learn.backbone import SERVED_KEY
from artdb.core.learn.embedders import BackboneEmbedder, load_embedder
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
             out_prefix: str | Path | None = None, workers: int = 2, device: str = "cpu",
             progress: Progress | None = None) -> dict:
    """Evaluate on a labelled catalog folder (ingested privately) or on the user's catalog.

    ``cfg.models`` are looked up in ``user_catalog``'s registry and scored as they are (their
    front-end is used to extract the evaluation catalog's features). ``peer="musicnn"`` runs the
    peer in ``peer_python`` (or reuses ``peer_file`` if it exists) and scores it as ``file:musicnn``.
    Backbone features (``cfg.backbone_config()``, or a scored backbone model's config) are
    computed on ``device``. Returns the report; with ``out_prefix`` also writes PREFIX.json/.md/.png
    (``report["files"]``).
    """
    if (catalog_dir is None) == (not from_db):
        raise ConfigError("give exactly one of a catalog folder or --from-db")
    fitted, frontend, backbone, model_backbone = {}, None, cfg.backbone_config(), None
    served = {}  # backbone models: restandardised on the evaluation catalog, the one they serve
    for name in cfg.models:
        if user_catalog is None:
            raise ConfigError("scoring a registered model needs the catalog it is registered in")
        row = get_model(user_catalog, name)
        emb = load_embedder(row, paths=user_paths)
        if isinstance(emb, BackboneEmbedder):  # reads backbone features; its log-mels are the catalog's
            bb = BackboneConfig.from_dict(emb.frontend)
            if cfg.backbone_patches is not None and cfg.backbone_patches != bb.patches_per_track:
                raise ConfigError(f"model {name!r} reads {bb.patches_per_track} backbone patches per track, "
                                  f"not --backbone-patches {cfg.backbone_patches}")
            if model_backbone is not None and model_backbone != bb:
                raise ConfigError("models that read different backbone features cannot be scored in one run")
            # the backbone systems of this run then read the model's features too
            model_backbone = backbone = bb
            fe_dict = (row.config or {}).get("frontend")
            fitted[name] = Fitted(_chunked_embed(emb), {"dim": emb.dim}, input="backbone_features")
            # the tracks its statistics now describe: its home catalog's (refitted there) or the
            # ones it was trained on
            own = (row.config or {}).get(SERVED_KEY) or {}
            served[name] = emb, int(own.get("n_tracks") or (row.metrics or {}).get("n_tracks") or 0)
        else:
            fe_dict = emb.frontend
            fitted[name] = _chunked_embed(emb)
        fe = FrontendConfig.from_dict(fe_dict) if fe_dict else None
        if frontend is not None and fe is not None and fe != frontend:
            raise ConfigError("models with different front-ends cannot be scored in one run")
        frontend = frontend or fe
    with contextlib.ExitStack() as stack:
        if from_db:
            if user_catalog is None:
                raise ConfigError("--from-db needs a catalog")
            if backbone is not None:  # computed once into the catalog's store, as artdb train does
                ensure_backbone_features(user_catalog, user_paths, backbone, workers=workers, device=device,
                                         progress=progress)
            ds = catalog_dataset(user_catalog, user_paths, frontend, stack=stack, backbone=backbone)
            ingest = None
        else:
            ds, ingest = stack.enter_context(open_catalog_dataset(
                catalog_dir, workdir=workdir, frontend=frontend, workers=workers, progress=progress,
                backbone=backbone, device=device))
        n_seeds = len(cfg.seeds)
        report(progress, "evaluate", 0, n_seeds, event="dataset", **ds.summary())
        for name, (emb, n_trained) in served.items():
            # the standardisation describes a catalog (learn.adapt): refitted on every evaluation
            # track (labels unused) pooled with the tracks the model was trained on
            state = fitted_on(ds.backbone_features, emb.model, prior_tracks=n_trained)
            fitted[name].info["standardisation"] = (
                f"refitted on the {len(ds.backbone_features)} evaluation tracks pooled with the "
                f"{n_trained} training tracks" if n_trained else
                f"refitted on the {state['n_tracks']} evaluation tracks")
        if peer:
            if peer != "musicnn":
                raise ConfigError(f"unknown peer {peer!r} (known: musicnn)")
            path = Path(peer_file) if peer_file else None
            if path is None or not path.exists():
                if not peer_python:
                    raise ConfigError("--peer musicnn needs --peer-python (the peer venv's python) "
                                      "or an existing --peer-file")
                if path is None:
                    tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="artdb-peer-"))
                    path = Path(tmp) / "musicnn.npz"
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
