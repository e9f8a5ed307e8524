"""The model registry: which embedding models exist, which one is active."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select, update

from artdb.core import __version__
from artdb.core.errors import ArtdbError, CatalogError, ConfigError
from artdb.core.features.frontend.config import FrontendConfig
from artdb.core.features.store import open_feature_store
from artdb.core.learn.checkpoint import checkpoint_file
from artdb.core.learn.embedders import StatsEmbedder
from artdb.db.models import Model
from artdb.db.session import Catalog


def json_safe(value: Any) -> Any:
    """``value`` with NaN/inf floats as None: PostgreSQL's JSON type rejects them (SQLite doesn't)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def register_model(catalog: Catalog, *, name: str, kind: str, dim: int, config: dict[str, Any],
                   metrics: dict[str, Any] | None = None, checkpoint_path: str | None = None,
                   checksum: str | None = None, activate: bool = False) -> Model:
    with catalog.session() as s:
        if s.scalar(select(Model.id).where(Model.name == name)) is not None:
            raise CatalogError(f"a model named {name!r} is already registered")
        model = Model(name=name, kind=kind, version=__version__, config=json_safe(config),
                      metrics=json_safe(metrics or {}),
                      checkpoint_path=checkpoint_path, checksum=checksum, dim=dim, active=False)
        s.add(model)
        s.flush()
        if activate:
            s.execute(update(Model).values(active=False))
            model.active = True
        return model


def adopt_checkpoint_paths(catalog: Catalog, paths) -> list[str]:
    """Store the checkpoint paths of this home's models relative to it (``paths``, a
    :class:`~artdb.core.config.Paths`): absolute paths written by an earlier artdb that lie in the
    home, or that name a ``models/NAME`` this home has (it was copied or moved,
    :func:`~artdb.core.learn.checkpoint.checkpoint_file`). Returns the names of the models changed."""
    changed = []
    with catalog.session() as s:
        for model in s.scalars(select(Model).where(Model.checkpoint_path.is_not(None))):
            if not Path(model.checkpoint_path).is_absolute():
                continue
            stored = paths.relative(checkpoint_file(model.checkpoint_path, paths))
            if not Path(stored).is_absolute():
                model.checkpoint_path = stored
                changed.append(model.name)
    return changed


def active_model(catalog: Catalog) -> Model | None:
    with catalog.session() as s:
        return s.scalars(select(Model).where(Model.active.is_(True))).first()


def default_frontend_config(catalog: Catalog) -> FrontendConfig:
    """The front-end config of the active model, else the default one."""
    model = active_model(catalog)
    if model is not None and model.config.get("frontend"):
        return FrontendConfig.from_dict(model.config["frontend"])
    return FrontendConfig()


def get_model(catalog: Catalog, name_or_id: str | int) -> Model:
    with catalog.session() as s:
        if isinstance(name_or_id, int) or str(name_or_id).isdigit():
            model = s.get(Model, int(name_or_id))
        else:
            model = s.scalars(select(Model).where(Model.name == name_or_id)).first()
        if model is None:
            known = ", ".join(s.scalars(select(Model.name).order_by(Model.id))) or "none"
            raise CatalogError(f"no model {name_or_id!r} in the registry (known: {known})")
        return model


def resolve_model(catalog: Catalog, name: str | None = None) -> Model:
    """The model an analysis (audit, placement) uses: ``name`` (a name or id), else the active model.

    Raises:
        ConfigError: no name given and no model is active.
    """
    model = get_model(catalog, name) if name else active_model(catalog)
    if model is None:
        raise ConfigError(
            "no active model: train one (artdb train) or activate one (artdb models activate)")
    return model


def list_models(catalog: Catalog) -> list[Model]:
    with catalog.session() as s:
        return list(s.scalars(select(Model).order_by(Model.id)))


def activate_model(catalog: Catalog, name_or_id: str | int) -> Model:
    model = get_model(catalog, name_or_id)
    with catalog.session() as s:
        s.execute(update(Model).values(active=False))
        s.execute(update(Model).where(Model.id == model.id).values(active=True))
    model.active = True
    return model


def register_mfcc_baseline(catalog: Catalog, name: str = "mfcc", n_mfcc: int = 20,
                           frontend=None, activate: bool = False) -> Model:
    """Register the MFCC mean+std baseline over the (given or default) front-end's log-mels."""
    frontend = frontend or FrontendConfig()
    return register_model(catalog, name=name, kind="mfcc", dim=2 * (n_mfcc - 1),
                          config={"frontend": frontend.to_dict(), "n_mfcc": n_mfcc},
                          activate=activate)


def register_stats_baseline(catalog: Catalog, paths, name: str = "stats", n_mfcc: int = 20,
                            frontend=None, activate: bool = False) -> Model:
    """Register the standardised MFCC + delta baseline (``kind="stats"``).

    The per-dimension mean and std are fitted once on every track in the feature store of
    ``frontend`` (default: the active model's, else the default front-end) and stored in the
    model's config, so embedding is a fixed function, the same for every track embedded later.
    """
    frontend = frontend or default_frontend_config(catalog)
    try:
        store_cm = open_feature_store(paths, frontend, mode="r")
    except ArtdbError as e:
        raise CatalogError(f"the stats baseline is fitted on the catalog's features, and there are "
                           f"none for this front-end (run `artdb index` first): {e}") from None
    with store_cm as store:
        ids = np.sort(np.asarray(store.ids(), dtype=np.int64))
        if len(ids) < 2:
            raise CatalogError(f"the stats baseline is fitted on the catalog's features: {len(ids)} "
                               "track(s) with features (run `artdb index` first)")
        emb = StatsEmbedder.fit(_StoreRows(store, ids), frontend.to_dict(), n_mfcc=n_mfcc)
    config = {**emb.config(), "fitted_on": {"tracks": int(len(ids))}}
    return register_model(catalog, name=name, kind="stats", dim=emb.dim, config=config,
                          activate=activate)


class _StoreRows:
    """``a[rows]`` -> features of the store's ``ids[rows]`` (what ``fit_standardizer`` reads)."""

    def __init__(self, store, ids):
        self.store, self.ids = store, ids
        self.shape = (len(ids), *store.shape)

    def __getitem__(self, rows):
        return self.store.get_many(self.ids[rows])
