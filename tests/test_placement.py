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


def deliver(catalog, paths, root, album, tracks, place=False, artist="Eclipse"):
    write_library(root, [(artist, album, tracks)])
    return index_catalog(catalog, paths, root, IngestOptions(workers=1), place=place)


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


def test_ingest_places_new_releases_among_split_pages(lib, tmp_path):  # noqa: F811 - lib is test_curation's fixture
    """After a split, a release tagged with the shared name goes, at ingest, to the split page it
    sounds like (an undoable decision); one that sounds like none is left where it landed and
    flagged by an audit finding; a release under a merged-away name credits the target page."""
    catalog, paths, model, _ = lib
    run_audit(catalog, paths, model)
    split_page(catalog, "Eclipse")
    high, low = page_id(catalog, "Eclipse", "2"), page_id(catalog, "Eclipse")

    summary = deliver(catalog, paths, tmp_path / "new", "High C", [("hc1", 2515), ("hc2", 2502)],
                      place=True)
    assert albums_of(catalog, high) == ["High A", "High B", "High C"]
    assert albums_of(catalog, low) == ["Low A", "Low B", "Low C"]
    [placed] = summary.placements
    assert placed.outcome == "placed" and placed.page_id == high and placed.landed_page_id == low
    assert placed.distance < THRESHOLD and "sounds like Eclipse [2]" in placed.reason
    out = summary.to_dict()["placements"]
    assert out[0]["decision_id"] == placed.decision_id and out[0]["page"] == "Eclipse [2]"
    with catalog.session() as s:
        d = s.get(CuratorDecision, placed.decision_id)
        assert d.action == "place" and d.note.startswith(f"placed at ingest run #{summary.run_id}")

    # a release that sounds like neither page stays where it landed, flagged with a finding
    summary = deliver(catalog, paths, tmp_path / "far", "Solo", [("so1", 5000), ("so2", 5010)],
                      place=True)
    [flagged] = summary.placements
    assert flagged.outcome == "flagged" and flagged.page_id == low and flagged.decision_id is None
    assert flagged.distance > THRESHOLD and "beyond the threshold" in flagged.reason
    assert albums_of(catalog, low) == ["Low A", "Low B", "Low C", "Solo"]
    assert flagged.finding and flagged.finding.startswith("h")
    from artdb.core.curation.review import open_findings

    found = {f"h{f['id']}": f for f in open_findings(catalog)["homonyms"]}
    assert [a["title"] for c in found[flagged.finding]["clusters"] for a in c["albums"]
            if c["cluster"] == 2] == ["Solo"]

    # the CLI says what it placed and why (text and --json); a rerun places nothing again
    from artdb.cli.main import cli

    write_library(tmp_path / "cli", [("Eclipse", "High D", [("hd1", 2508), ("hd2", 2512)])])
    r = CliRunner().invoke(cli, ["--db", catalog.url, "--home", str(paths.home), "index",
                                 str(tmp_path / "cli"), "--workers", "1", "--no-progress"])
    assert r.exit_code == 0, r.output
    assert "placed: Eclipse - High D -> Eclipse [2]: sounds like Eclipse [2]" in r.output
    assert ": 2 files in " in r.output and " s: 2 tracks added\n" in r.output  # words, not a dict
    r = CliRunner().invoke(cli, ["--db", catalog.url, "--home", str(paths.home), "index",
                                 str(tmp_path / "cli"), "--workers", "1", "--no-progress", "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["placements"] == []

    # after a merge, the merged-away name routes to the target at ingest (no placement needed)
    from artdb.core.curation.merge import merge_pages

    merge_pages(catalog, "Youssou N'Dour", "Youssou Ndour")
    summary = deliver(catalog, paths, tmp_path / "yn", "Later", [("l1", 404)], place=True,
                      artist="Youssou Ndour")
    assert summary.placements == [] and "Later" in albums_of(catalog, page_id(catalog, "Youssou N'Dour"))
