"""The index beside the catalog: embedding on ingest, crash repair, re-ingest, mismatches."""

from __future__ import annotations

import numpy as np
import pytest
from audiofiles import write_audio
from sqlalchemy import func, select

from artdb.core.config import Paths
from artdb.core.errors import ArtdbError, IndexMismatchError, VectorIndexError
from artdb.core.features.frontend import FrontendConfig
from artdb.core.features.store import open_feature_store
from artdb.core.ingest import IngestOptions
from artdb.core.ingest.service import index_catalog
from artdb.core.learn.registry import register_model
from artdb.core.vectors import index as vectors
from artdb.db.models import Embedding, Track

FRONTEND = FrontendConfig(excerpt_seconds=1.0, excerpts_per_track=2)


def library(root, n=6, offset=0):
    for i in range(offset, offset + n):
        write_audio(root / f"A{i % 2}" / f"t{i}.flac", seconds=2.5, freq=150 + 90 * i, seed=i,
                    artist=f"Artist {i % 2}", album=f"Album {i % 4}", title=f"T{i}")


@pytest.fixture
def setup(catalog, tmp_path):
    paths = Paths.from_home(tmp_path / "home")
    model = register_model(catalog, name="mfcc-test", kind="mfcc", dim=38,
                           config={"frontend": FRONTEND.to_dict(), "n_mfcc": 20}, activate=True)
    return catalog, paths, model


def n_rows(catalog, model):
    with catalog.session() as s:
        return s.scalar(select(func.count()).select_from(Embedding).where(Embedding.model_id == model.id))


def test_ingest_embeds_into_active_model_index(setup, tmp_path):
    catalog, paths, model = setup
    root = tmp_path / "lib"
    library(root)
    summary = index_catalog(catalog, paths, root, IngestOptions(workers=1))
    assert summary.counts == {"added": 6}
    index = vectors.open_track_index(catalog, paths, model)
    with catalog.session() as s:
        track_ids = sorted(s.scalars(select(Track.id)))
    assert index.index_ids().tolist() == track_ids
    assert n_rows(catalog, model) == 6
    # an exact search returns each track itself first
    v = index.reconstruct(np.array(track_ids))
    _, ids = index.search(v, 1)
    assert ids[:, 0].tolist() == track_ids
    # album and artist levels derive from the track vectors
    albums = vectors.open_level_index(catalog, paths, model, "album")
    assert albums.ntotal == 4
    pages = vectors.open_level_index(catalog, paths, model, "artist")
    assert pages.ntotal == 2


def test_crash_between_catalog_commit_and_index_write_is_repaired(setup, tmp_path, monkeypatch):
    catalog, paths, model = setup
    root = tmp_path / "lib"
    library(root, n=4)
    index_catalog(catalog, paths, root, IngestOptions(workers=1))
    library(root, n=3, offset=4)

    from artdb.indexer import FaissIndex

    real_save = FaissIndex.save

    def killed(self, *a, **k):
        raise SystemExit("killed before the index write")

    monkeypatch.setattr(FaissIndex, "save", killed)
    with pytest.raises(SystemExit):
        index_catalog(catalog, paths, root, IngestOptions(workers=1))
    monkeypatch.setattr(FaissIndex, "save", real_save)
    # the catalog committed 7 embedding rows; the file on disk still holds 4 vectors
    assert n_rows(catalog, model) == 7
    from artdb.indexer import read_sidecar

    assert read_sidecar(vectors.index_path(paths, model)).count == 4
    with pytest.raises(IndexMismatchError):
        vectors.open_track_index(catalog, paths, model, repair=False)
    index = vectors.open_track_index(catalog, paths, model)  # detects and repairs
    assert index.ntotal == 7
    assert read_sidecar(vectors.index_path(paths, model)).count == 7


def test_reingested_file_gets_a_new_vector(setup, tmp_path):
    catalog, paths, model = setup
    root = tmp_path / "lib"
    library(root, n=3)
    index_catalog(catalog, paths, root, IngestOptions(workers=1))
    path = root / "A0" / "t0.flac"
    with catalog.session() as s:
        tid = s.scalars(select(Track.id).where(Track.audio_path == str(path.resolve()))).one()
    before = vectors.open_track_index(catalog, paths, model).reconstruct(np.array([tid]))
    write_audio(path, seconds=2.5, freq=3000, seed=99, artist="Artist 0", album="Album 0", title="T0")
    summary = index_catalog(catalog, paths, root, IngestOptions(workers=1))
    assert summary.counts == {"updated": 1, "unchanged": 2}
    index = vectors.open_track_index(catalog, paths, model)
    after = index.reconstruct(np.array([tid]))
    assert index.ntotal == 3 and not np.allclose(before, after)


def test_deleted_tracks_leave_the_index(setup, tmp_path):
    catalog, paths, model = setup
    root = tmp_path / "lib"
    library(root, n=4)
    index_catalog(catalog, paths, root, IngestOptions(workers=1))
    (root / "A1" / "t1.flac").unlink()
    summary = index_catalog(catalog, paths, root, IngestOptions(workers=1, prune=True))
    assert summary.counts["pruned"] == 1
    assert vectors.open_track_index(catalog, paths, model).ntotal == 3


def test_indexer_exceptions_reach_callers_as_artdb_errors(setup, tmp_path, monkeypatch):
    """A model that emits NaN: the indexer refuses the vectors, core re-raises its own error."""
    from artdb.indexer import VectorIndexError as IndexerError

    catalog, paths, model = setup
    root = tmp_path / "lib"
    library(root, n=2)
    index_catalog(catalog, paths, root, IngestOptions(workers=1))
    real_load = vectors.load_embedder

    def nan_embedder(model, device="cpu", **kwargs):
        embedder = real_load(model, device, **kwargs)
        monkeypatch.setattr(embedder, "embed", lambda x: np.full((len(x), model.dim), np.nan, np.float32))
        return embedder

    monkeypatch.setattr(vectors, "load_embedder", nan_embedder)
    with pytest.raises(VectorIndexError, match="NaN") as caught:
        vectors.rebuild_index(catalog, paths, model)
    assert isinstance(caught.value, ArtdbError) and not isinstance(caught.value, IndexerError)
    assert isinstance(caught.value.__cause__, IndexerError)


def test_index_of_another_model_is_refused(setup, tmp_path):
    catalog, paths, model = setup
    root = tmp_path / "lib"
    library(root, n=2)
    index_catalog(catalog, paths, root, IngestOptions(workers=1))
    from artdb.indexer import FaissIndex

    path = vectors.index_path(paths, model)
    other = FaissIndex(model.dim, model="someone-else", name="track")
    other.save(path)
    with pytest.raises(IndexMismatchError, match="rebuild"):
        vectors.open_track_index(catalog, paths, model)
    report = vectors.rebuild_index(catalog, paths, model)
    assert report.embedded == 2 and vectors.open_track_index(catalog, paths, model).ntotal == 2


def test_index_placed_before_exact_assignment_is_rebuilt_by_the_next_index_run(setup, tmp_path, caplog):
    """A home whose index has an HNSW coarse quantizer and no record of exact assignment (made
    before it: HNSW placed some vectors where no search looks) is rebuilt from its own vectors by
    the next `artdb index`, with a warning; searches then find every track."""
    from artdb.indexer import FaissIndex

    catalog, paths, model = setup
    root = tmp_path / "lib"
    library(root)
    index_catalog(catalog, paths, root, IngestOptions(workers=1))
    good = vectors.open_track_index(catalog, paths, model)
    ids = good.index_ids()
    x = good.reconstruct(ids)
    old = FaissIndex(model.dim, "IVF2_HNSW32,Flat")
    old.train(x)
    old.cpu_index.add_with_ids(x, ids)  # placed by FAISS through HNSW, as before the fix
    old = FaissIndex(model.dim, "IVF2_HNSW32,Flat", model=model.name, name="track", _index=old.cpu_index)
    old.save(vectors.index_path(paths, model), catalog_revision=good.catalog_revision)
    assert not FaissIndex.load(vectors.index_path(paths, model)).assignment_exact

    with caplog.at_level("WARNING", logger="artdb.core.vectors.index"):
        report = vectors.sync_model_index(catalog, paths, model)
    assert report.total == len(ids)
    assert "before vectors were placed in their nearest list exactly" in caplog.text
    rebuilt = FaissIndex.load(vectors.index_path(paths, model))
    assert rebuilt.assignment_exact and rebuilt.factory == "IDMap2,Flat"  # 6 tracks: exact search
    assert rebuilt.index_ids().tolist() == ids.tolist()
    _, found = rebuilt.search(x, 1)
    assert found[:, 0].tolist() == ids.tolist()
    np.testing.assert_allclose(rebuilt.reconstruct(ids), x, atol=1e-6)


def cnn_model(catalog, paths, name="cnn", activate=True):
    """A small untrained CNN registered with its checkpoint in the home (as artdb train does)."""
    from artdb.core.learn.checkpoint import save_checkpoint
    from artdb.core.learn.networks import ModelConfig, build_model

    net = build_model(ModelConfig(n_mels=FRONTEND.n_mels, embedding_dim=16, channels=(4, 8)))
    path = paths.models / f"{name}.pt"
    sha = save_checkpoint(path, net, frontend=FRONTEND)
    return register_model(catalog, name=name, kind="untrained", dim=16,
                          config={"frontend": FRONTEND.to_dict()}, checkpoint_path=paths.relative(path),
                          checksum=sha, activate=activate)


def test_rebuild_with_a_checkpoint_that_does_not_load_changes_nothing(catalog, tmp_path):
    """--rebuild-index loads the model before touching anything: a damaged checkpoint leaves the
    working index and its embedding rows as they were."""
    paths = Paths.from_home(tmp_path / "home")
    model = cnn_model(catalog, paths)
    root = tmp_path / "lib"
    library(root, n=3)
    index_catalog(catalog, paths, root, IngestOptions(workers=1))
    path = vectors.index_path(paths, model)
    before = path.read_bytes(), vectors.open_track_index(catalog, paths, model).index_ids().tolist()
    assert len(before[1]) == 3 and n_rows(catalog, model) == 3
    ckpt = paths.models / "cnn.pt"
    ckpt.write_bytes(ckpt.read_bytes()[:-100])  # damaged: its sha256 no longer matches the row
    with pytest.raises(ArtdbError, match="sha256"):
        vectors.rebuild_index(catalog, paths, model)
    assert path.read_bytes() == before[0]
    assert n_rows(catalog, model) == 3
    assert vectors.open_track_index(catalog, paths, model, repair=False).index_ids().tolist() == before[1]


def test_rebuild_swaps_in_a_complete_index(setup, tmp_path):
    """The new index replaces the old one whole: same tracks, fresh rows, derived levels follow."""
    catalog, paths, model = setup
    root = tmp_path / "lib"
    library(root, n=4)
    index_catalog(catalog, paths, root, IngestOptions(workers=1))
    albums_before = vectors.open_level_index(catalog, paths, model, "album").ntotal
    path = vectors.index_path(paths, model)
    path.write_bytes(b"garbage")  # a corrupt index: the rebuild never needs to read it
    report = vectors.rebuild_index(catalog, paths, model)
    assert report.embedded == report.total == 4
    with catalog.session() as s:
        tracks = sorted(s.scalars(select(Track.id)))
    assert vectors.open_track_index(catalog, paths, model, repair=False).index_ids().tolist() == tracks
    assert n_rows(catalog, model) == 4
    assert vectors.open_level_index(catalog, paths, model, "album").ntotal == albums_before
    assert list(path.parent.glob("*.tmp")) == []


def test_rebuild_killed_after_its_rows_never_mixes_two_configs(catalog, tmp_path, monkeypatch):
    """A rebuild that changes the model's config (as a backbone's refitted standardisation does)
    killed after its rows and config committed, before its index file: the old file holds vectors
    of the old config for the same ids, so it is replaced whole, not patched by ids."""
    from artdb.core.learn.embedders import load_embedder
    from artdb.core.learn.registry import get_model, register_stats_baseline

    paths = Paths.from_home(tmp_path / "home")
    root = tmp_path / "lib"
    library(root, n=4)
    index_catalog(catalog, paths, root, IngestOptions(workers=1))
    model = register_stats_baseline(catalog, paths, frontend=FrontendConfig(), activate=True)
    vectors.sync_active_index(catalog, paths)
    ids = vectors.open_track_index(catalog, paths, model).index_ids()
    old = vectors.open_track_index(catalog, paths, model).reconstruct(ids)
    shifted = {"mean": [m + 3.0 for m in model.config["mean"]]}

    def killed(point, *_):
        if point == "after rebuild rows committed":
            raise KeyboardInterrupt  # stands for the process dying here

    monkeypatch.setattr(vectors, "kill_point", killed)
    with pytest.raises(KeyboardInterrupt):
        vectors.rebuild_index(catalog, paths, model, config_update=shifted)
    monkeypatch.undo()
    model = get_model(catalog, model.id)
    assert model.config["mean"] == shifted["mean"]
    index = vectors.open_track_index(catalog, paths, model)
    assert index.index_ids().tolist() == ids.tolist()
    with open_feature_store(paths, FrontendConfig(), mode="r") as store:
        want = load_embedder(model, paths=paths).embed(store.get_many(ids))
    want /= np.linalg.norm(want, axis=1, keepdims=True)
    got = index.reconstruct(ids)
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert not np.allclose(got, old, atol=1e-3)
