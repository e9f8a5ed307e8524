"""``artdb place``: a new album under a shared name goes to the right artist, or to a new one."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from scipy.cluster.hierarchy import linkage as scipy_linkage
from test_curation import THRESHOLD, albums_of, lib, page_id, write_library  # noqa: F401 - lib is a fixture

from artdb.core.analysis.audit import run_audit
from artdb.core.analysis.placement import apply_placement, linkage_distance, place_album
from artdb.core.curation.split import split_page
from artdb.core.errors import CatalogError
from artdb.core.ingest import IngestOptions
from artdb.core.ingest.service import index_catalog
from artdb.db.models import CuratorDecision


@pytest.mark.parametrize("method,metric", [("average", "cosine"), ("complete", "cosine"),
                                           ("single", "cosine"), ("ward", "euclidean")])
def test_linkage_distance_is_the_merge_height(rng, method, metric):
    # a tight cluster merges first; the far point joins last, at linkage_distance
    cluster = np.array([1.0, 0, 0]) + rng.normal(scale=0.02, size=(4, 3))
    x = np.array([0.0, 1.0, 0.2])
    z = scipy_linkage(np.vstack([cluster, x]), method=method, metric=metric)
    assert linkage_distance(x, cluster, method, metric) == pytest.approx(z[-1, 2], rel=1e-9)


def deliver(catalog, paths, root, album, tracks):
    write_library(root, [("Eclipse", album, tracks)])
    index_catalog(catalog, paths, root, IngestOptions(workers=1))


def test_after_a_split_a_new_album_goes_to_its_artist(lib, tmp_path):  # noqa: F811 - lib is test_curation's fixture
    catalog, paths, model, _ = lib
    run_audit(catalog, paths, model)
    split_page(catalog, "Eclipse")
    high, low = page_id(catalog, "Eclipse", "2"), page_id(catalog, "Eclipse")
    deliver(catalog, paths, tmp_path / "new", "High C", [("hc1", 2515), ("hc2", 2502)])
    # the kept page kept the name: the delivery lands on it, and place says where it belongs
    assert albums_of(catalog, low) == ["High C", "Low A", "Low B", "Low C"]
    p = place_album(catalog, paths, model, "Eclipse - High C")
    assert p.decision == "match" and p.best.page_id == high and p.best.page == "Eclipse [2]"
    assert p.best.distance < THRESHOLD < p.candidates[-1].distance
    assert [c.page_id for c in p.candidates] == [high, low]
    # the same album named by its folder
    assert place_album(catalog, paths, model, str(tmp_path / "new" / "Eclipse-High C")).best.page_id == high

    # applying it moves the album and its credits; undo puts them back
    from test_curation import snapshot

    from artdb.core.curation.place import move_album
    from artdb.core.curation.undo import undo_decision

    before = snapshot(catalog)
    dry = apply_placement(catalog, p, dry_run=True)  # says what would move, changes nothing
    assert dry.dry_run and dry.id is None and dry.summary["to"]["page_id"] == high
    assert snapshot(catalog) == before
    d = apply_placement(catalog, p)
    assert d.summary == dry.summary and not d.dry_run
    assert albums_of(catalog, high) == ["High A", "High B", "High C"] and d.summary["credits_moved"] == 2
    assert d.action == "place" and d.summary["to"] == {"page_id": high, "page": "Eclipse [2]"}
    with catalog.session() as s:
        assert s.get(CuratorDecision, d.id).note == f"artdb place: distance {p.best.distance:.4f}"
    with pytest.raises(CatalogError, match="already on"):
        move_album(catalog, p.album_id, high)
    undo_decision(catalog, d.id)
    assert snapshot(catalog) == before

    deliver(catalog, paths, tmp_path / "other", "Solo", [("so1", 5000), ("so2", 5010)])
    p = place_album(catalog, paths, model, "Eclipse - Solo")
    assert p.decision == "new artist" and p.best is None
    assert min(c.distance for c in p.candidates) > THRESHOLD
    assert apply_placement(catalog, p) is None  # nothing to move


def test_a_flagged_page_offers_its_clusters(lib, tmp_path):  # noqa: F811 - lib is test_curation's fixture
    catalog, paths, model, _ = lib
    run_audit(catalog, paths, model)
    deliver(catalog, paths, tmp_path / "new", "Low D", [("ld1", 113), ("ld2", 115)])
    p = place_album(catalog, paths, model, "Eclipse - Low D")
    # clusters numbered as everywhere else: 1 = the largest
    assert [(c.page, c.cluster) for c in p.candidates] == [("Eclipse", 1), ("Eclipse", 2)]
    assert p.best.cluster == 1 and len(p.best.album_ids) == 3  # the low-pitched artist
    assert p.best.margin > 0 > p.candidates[1].margin
    assert apply_placement(catalog, p) is None  # the match is the album's own page: nothing moves


def test_unknown_album_and_cli(lib, tmp_path, monkeypatch):  # noqa: F811 - lib is test_curation's fixture
    catalog, paths, model, root = lib
    with pytest.raises(CatalogError, match="no album"):
        place_album(catalog, paths, model, "Eclipse - Nothing")
    with pytest.raises(CatalogError, match="belong to"):
        place_album(catalog, paths, model, str(root))
    if catalog.engine.dialect.name != "sqlite":
        return
    from artdb.cli.main import cli

    monkeypatch.setenv("ARTDB_HOME", str(paths.home))
    monkeypatch.setenv("ARTDB_DATABASE_URL", catalog.engine.url.render_as_string(hide_password=False))
    r = CliRunner().invoke(cli, ["place", "Nova - Nova One", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["decision"] == "match" and out["best"]["page"] == "Nova"
    r = CliRunner().invoke(cli, ["place", "Nova - Nova One", "--apply"])
    assert r.exit_code == 0 and "→ Nova" in r.output and "nothing applied" in r.output
