"""The model registry: which embedding models exist, which one is active."""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy import select, update

from artdb.core import __version__
from artdb.core.errors import CatalogError
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


def active_model(catalog: Catalog) -> Model | None:
    with catalog.session() as s:
        return s.scalars(select(Model).where(Model.active.is_(True))).first()


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
    from artdb.core.frontend import FrontendConfig

    frontend = frontend or FrontendConfig()
    return register_model(catalog, name=name, kind="mfcc", dim=2 * (n_mfcc - 1),
                          config={"frontend": frontend.to_dict(), "n_mfcc": n_mfcc},
                          activate=activate)
