"""One home for defaults and for locating artdb's data directory and database.

- Data directory: ``ARTDB_HOME`` or the platform's user data dir (``~/.local/share/artdb`` on Linux).
  It holds the SQLite catalog, the feature store, vector indexes and model checkpoints.
- Database: ``--db`` / ``ARTDB_DATABASE_URL``; default SQLite file ``<home>/catalog.sqlite``.
  PostgreSQL via ``postgresql+psycopg://user@host:port/dbname`` (optionally ``?options=-csearch_path=...``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

ENV_HOME = "ARTDB_HOME"
ENV_DATABASE_URL = "ARTDB_DATABASE_URL"

# How album (or track) vectors are clustered into artists when nothing else is said: training's
# validation, the audit, placement, the report's dendrograms and the evaluation protocol.
DEFAULT_LINKAGE = "average"
DEFAULT_METRIC = "cosine"


def default_data_home() -> Path:
    """The platform's user data dir for artdb (what ``--home`` and ``ARTDB_HOME`` override)."""
    return Path(platformdirs.user_data_dir("artdb", appauthor=False)).expanduser().resolve()


def home_database_url(home: str | os.PathLike) -> str:
    """The default catalog of data directory ``home``: its SQLite file."""
    return f"sqlite:///{Path(home) / 'catalog.sqlite'}"


def data_home(home: str | os.PathLike | None = None) -> Path:
    """The data directory, created if missing."""
    if home is None:
        home = os.environ.get(ENV_HOME) or default_data_home()
    path = Path(home).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def database_url(url: str | None = None, home: str | os.PathLike | None = None) -> str:
    """The catalog's SQLAlchemy URL: explicit, else the environment, else SQLite in the data dir."""
    if url:
        return url
    env = os.environ.get(ENV_DATABASE_URL)
    if env:
        return env
    return home_database_url(data_home(home))


@dataclass(frozen=True)
class Paths:
    """Where each kind of artifact lives inside the data directory."""

    home: Path

    @property
    def features(self) -> Path:
        return self.home / "features"

    @property
    def indexes(self) -> Path:
        return self.home / "indexes"

    @property
    def models(self) -> Path:
        return self.home / "models"

    @property
    def reports(self) -> Path:
        return self.home / "reports"

    def relative(self, path: str | os.PathLike) -> str:
        """``path`` as the catalog stores it: relative to the home when it lies inside (a copied or
        moved home keeps finding its own files), else absolute."""
        path = Path(path).absolute()
        try:
            return path.relative_to(self.home).as_posix()
        except ValueError:
            return str(path)

    def resolve(self, stored: str | os.PathLike) -> Path:
        """The file a stored path names: relative ones lie in the home (see :meth:`relative`)."""
        path = Path(stored)
        return path if path.is_absolute() else self.home / path

    @classmethod
    def from_home(cls, home: str | os.PathLike | None = None) -> Paths:
        return cls(data_home(home))
