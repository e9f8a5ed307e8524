"""A home (catalog, features, indexes, checkpoints) moved or copied elsewhere keeps working.

Paths inside the home are stored relative to it (``Paths.relative``), so the moved home finds its
own checkpoint; rows written by an earlier artdb (absolute paths) are rewritten at the next
``artdb index``.
"""

from __future__ import annotations

import json
import shutil

from click.testing import CliRunner
from sqlalchemy import select
from test_vectors import cnn_model, library

from artdb.cli.main import cli
from artdb.core.config import Paths
from artdb.core.ingest import IngestOptions
from artdb.core.ingest.service import index_catalog
from artdb.core.learn.registry import get_model
from artdb.core.vectors import index as vectors
from artdb.db.models import Embedding, Model, Track
from artdb.db.session import Catalog


def build_home(home, lib, legacy_absolute=False):
    """A SQLite home with a CNN model (checkpoint in the home) and 3 tracks embedded."""
    home.mkdir(parents=True)
    catalog = Catalog.open(f"sqlite:///{home / 'catalog.sqlite'}")
    paths = Paths.from_home(home)
    model = cnn_model(catalog, paths)
    if legacy_absolute:  # as artdb stored it before paths were relative to the home
        with catalog.session() as s:
            s.get(Model, model.id).checkpoint_path = str(paths.models / "cnn.pt")
    library(lib, n=3)
    assert index_catalog(catalog, paths, lib, IngestOptions(workers=1)).counts == {"added": 3}
    catalog.close()


def assert_home_works(home, lib, added: int, total: int, monkeypatch):
    """From ``home``: ingest new tracks (they get embedded with the home's checkpoint), and the
    index agrees with the catalog; then `artdb neighbors` answers from the same place."""
    catalog = Catalog.open(f"sqlite:///{home / 'catalog.sqlite'}")
    paths = Paths.from_home(home)
    try:
        summary = index_catalog(catalog, paths, lib, IngestOptions(workers=1))
        assert summary.counts.get("added", 0) == added, summary.errors
        model = get_model(catalog, "cnn")
        assert model.checkpoint_path == "models/cnn.pt"
        with catalog.session() as s:
            tracks = sorted(s.scalars(select(Track.id)))
            rows = sorted(s.scalars(select(Embedding.track_id).where(Embedding.model_id == model.id)))
        index = vectors.open_track_index(catalog, paths, model, repair=False)
        assert len(tracks) == total and rows == tracks == index.index_ids().tolist()
    finally:
        catalog.close()
    monkeypatch.delenv("ARTDB_DATABASE_URL", raising=False)
    monkeypatch.delenv("ARTDB_HOME", raising=False)
    result = CliRunner().invoke(cli, ["--home", str(home), "neighbors", str(tracks[0]), "-k", "2",
                                      "--json"])
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.output)["neighbors"]) == 2


def test_moved_home_ingests_and_answers(tmp_path, monkeypatch):
    old, new, lib = tmp_path / "old" / "home", tmp_path / "new" / "home", tmp_path / "lib"
    build_home(old, lib)
    new.parent.mkdir()
    shutil.move(old, new)
    assert not old.exists()
    library(lib, n=2, offset=3)
    assert_home_works(new, lib, added=2, total=5, monkeypatch=monkeypatch)


def test_copied_home_with_absolute_rows_uses_its_own_files(tmp_path, monkeypatch):
    """Rows of an earlier artdb (absolute checkpoint paths) in a copied home: the copy uses its own
    checkpoint and the rows are rewritten relative, so deleting the original changes nothing."""
    old, new, lib = tmp_path / "old" / "home", tmp_path / "new" / "home", tmp_path / "lib"
    build_home(old, lib, legacy_absolute=True)
    shutil.copytree(old, new)
    library(lib, n=1, offset=3)
    assert_home_works(new, lib, added=1, total=4, monkeypatch=monkeypatch)
    shutil.rmtree(old)
    library(lib, n=1, offset=4)
    assert_home_works(new, lib, added=1, total=5, monkeypatch=monkeypatch)
