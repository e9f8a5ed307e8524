"""Safe, clear curation (SQLite and PostgreSQL, real FAISS): dry runs that change nothing, a split
that keeps the page's name and names the new pages as the curator says, errors naming what works.

The catalog is test_curation's: "Eclipse" mixes a low- and a high-pitched artist, "Nova" is one
artist, "Youssou N'Dour" / "Youssou Ndour" one artist under two names (MFCC baseline).
"""

from __future__ import annotations

import hashlib
import json

import pytest
from click.testing import CliRunner
from sqlalchemy import select, update
from test_curation import albums_of, lib, page_id, snapshot, write_library  # noqa: F401 - lib: fixture

from artdb.core.analysis.audit import run_audit
from artdb.core.analysis.findings import find_pages
from artdb.core.analysis.placement import apply_placement, place_album
from artdb.core.curation.merge import merge_pages
from artdb.core.curation.place import move_album
from artdb.core.curation.split import split_page
from artdb.core.curation.undo import undo_decision
from artdb.core.errors import CatalogError, ConfigError
from artdb.core.ingest import IngestOptions
from artdb.core.ingest.service import index_catalog
from artdb.core.vectors.index import open_level_index
from artdb.db.models import ArtistPage, Base


def all_rows(catalog) -> dict[str, list]:
    """Every row of every table, for "nothing changed" comparisons."""
    with catalog.session() as s:
        return {t.name: sorted((tuple(r) for r in s.execute(select(t))), key=repr)
                for t in Base.metadata.sorted_tables}


def files(root) -> dict[str, str]:
    """Every file under the data dir (feature store, indexes and their sidecars), by content."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def open_indexes(catalog, paths, model):
    """Open (and, if the catalog's pages changed, rebuild) the derived album and artist indexes."""
    for level in ("album", "artist"):
        open_level_index(catalog, paths, model, level)


def test_dry_runs_change_nothing(lib, tmp_path):  # noqa: F811
    catalog, paths, model, _ = lib
    run_audit(catalog, paths, model)
    open_indexes(catalog, paths, model)
    rows, data = all_rows(catalog), files(paths.home)
    split = split_page(catalog, "Eclipse", names={2: "Eclipse (high band)"}, dry_run=True)
    assert split.dry_run and split.id is None and split.to_dict()["dry_run"] is True
    open_indexes(catalog, paths, model)  # a page change would make these rebuild their files
    assert all_rows(catalog) == rows and files(paths.home) == data

    # what the dry run said is exactly what the split does
    real = split_page(catalog, "Eclipse", names={2: "Eclipse (high band)"})
    assert real.summary["pages"][1]["page_id"] is not None and split.summary["pages"][1]["page_id"] is None
    # the same pages and albums (a page the dry run would create has no id yet)
    assert [{**p, "page_id": None if not p["kept"] else p["page_id"]} for p in real.summary["pages"]
            ] == split.summary["pages"]
    assert {k: v for k, v in real.summary.items() if k != "pages"} == {
        k: v for k, v in split.summary.items() if k != "pages"}
    assert split.summary["pages"][1]["page"] == "Eclipse (high band)"

    # a later delivery lands on the kept page (placement at ingest off); placing it and merging
    # two pages, dry
    write_library(tmp_path / "later", [("Eclipse", "High C", [("hc1", 2515)])])
    index_catalog(catalog, paths, tmp_path / "later", IngestOptions(workers=1), place=False)
    open_indexes(catalog, paths, model)
    rows, data = all_rows(catalog), files(paths.home)
    place = apply_placement(catalog, place_album(catalog, paths, model, "Eclipse - High C"),
                            dry_run=True)
    merge = merge_pages(catalog, "Youssou N'Dour", "Youssou Ndour", dry_run=True)
    for d in (place, merge):
        assert d.dry_run and d.id is None and d.to_dict()["dry_run"] is True
    assert (place.summary["from"]["page"], place.summary["to"]["page"]) == (
        "Eclipse", "Eclipse (high band)")
    assert merge.summary["folded"][0]["title"] == "Dakar" and merge.summary["moved"][0]["title"] == "Set"
    open_indexes(catalog, paths, model)
    assert all_rows(catalog) == rows and files(paths.home) == data
    assert move_album(catalog, place.summary["album_id"], place.summary["to"]["page_id"]
                      ).summary == place.summary
    assert merge_pages(catalog, "Youssou N'Dour", "Youssou Ndour").summary == merge.summary


def test_split_keeps_the_name_and_names_new_pages(lib, tmp_path):  # noqa: F811
    catalog, paths, model, _ = lib
    run_audit(catalog, paths, model)
    eclipse = page_id(catalog, "Eclipse")
    before = snapshot(catalog)
    d = split_page(catalog, "Eclipse", names={2: "Eclipse (high band)"})
    kept, new = d.summary["pages"]
    assert (kept["page"], kept["page_id"], new["page"]) == ("Eclipse", eclipse, "Eclipse (high band)")
    with catalog.session() as s:
        assert find_pages(s, "eclipse (HIGH band)") == [new["page_id"]]  # labels fold case
        assert find_pages(s, "Eclipse") == [eclipse]
        assert s.get(ArtistPage, new["page_id"]).disambiguation == "high band"
    assert albums_of(catalog, new["page_id"]) == ["High A", "High B"]
    # a later delivery under the name lands on the kept page
    write_library(tmp_path / "later", [("Eclipse", "Low D", [("ld1", 113)])])
    index_catalog(catalog, paths, tmp_path / "later", IngestOptions(workers=1))
    assert albums_of(catalog, eclipse) == ["Low A", "Low B", "Low C", "Low D"]
    undo_decision(catalog, d.id)
    with catalog.session() as s:
        assert s.get(ArtistPage, eclipse).disambiguation == ""
    after = snapshot(catalog)
    assert after["pages"] == before["pages"]

    # naming the kept page too; numbers for the unnamed
    run_audit(catalog, paths, model)
    d = split_page(catalog, "Eclipse", names={1: "Eclipse (low band)"})
    assert [p["page"] for p in d.summary["pages"]] == ["Eclipse (low band)", "Eclipse [2]"]
    undo_decision(catalog, d.id)


def test_split_names_that_cannot_work_are_refused_with_ones_that_do(lib):  # noqa: F811
    catalog, paths, model, _ = lib
    run_audit(catalog, paths, model)
    before = snapshot(catalog)
    with pytest.raises(ConfigError, match=r"keeps the name 'Eclipse'.*'Eclipse \(Eklipse\)'"):
        split_page(catalog, "Eclipse", names={2: "Eklipse"})
    with pytest.raises(ConfigError, match=r"e.g. 'Eclipse \(Nova\)'"):
        split_page(catalog, "Eclipse", names={2: "Nova (Nova)"})
    with pytest.raises(ConfigError, match="clusters 1 to 2"):
        split_page(catalog, "Eclipse", names={3: "Eclipse (x)"})
    with pytest.raises(ConfigError, match="both be 'Eclipse \\([xX]\\)'"):
        split_page(catalog, "Eclipse", names={1: "Eclipse (x)", 2: "Eclipse (X)"})
    with pytest.raises(ConfigError, match="longer than 50"):
        split_page(catalog, "Eclipse", names={2: f"Eclipse ({'x' * 51})"})
    assert snapshot(catalog) == before


def test_ambiguous_and_unknown_names_suggest_labels_that_work(lib):  # noqa: F811
    catalog, paths, model, _ = lib
    run_audit(catalog, paths, model)
    d = split_page(catalog, "Eclipse")
    kept, new = (p["page_id"] for p in d.summary["pages"])
    with catalog.session() as s:  # a catalog split before pages kept their names: all numbered
        s.execute(update(ArtistPage).where(ArtistPage.id == kept).values(disambiguation="1"))
    with pytest.raises(CatalogError, match=r"use one of 'Eclipse \[1\]' \(#\d+\), 'Eclipse \[2\]'"):
        merge_pages(catalog, "Eclipse", "Nova", dry_run=True)
    assert merge_pages(catalog, "Eclipse [1]", "Nova", dry_run=True).summary["target"]["page_id"] == kept
    with pytest.raises(CatalogError, match=r"did you mean 'Nova'"):
        merge_pages(catalog, "Eclipse [1]", "Novva", dry_run=True)


def test_cli_dry_runs_and_names(lib, monkeypatch):  # noqa: F811
    catalog, paths, model, _ = lib
    if catalog.engine.dialect.name != "sqlite":
        return  # the library tests above run on both back-ends
    from artdb.cli.main import cli

    monkeypatch.setenv("ARTDB_HOME", str(paths.home))
    monkeypatch.setenv("ARTDB_DATABASE_URL", catalog.engine.url.render_as_string(hide_password=False))
    runner = CliRunner()
    run_audit(catalog, paths, model)
    rows = all_rows(catalog)
    r = runner.invoke(cli, ["split", "Eclipse", "--dry-run", "--name", "Eclipse (high band)"])
    assert r.exit_code == 0, r.output
    assert "2 albums and 4 track credits would move" in r.output
    assert "cluster 1 -> Eclipse (#" in r.output and "kept): 3 albums: Low A, Low B, Low C" in r.output
    assert "cluster 2 -> Eclipse (high band) (new): 2 albums: High A, High B" in r.output
    assert "dry run: nothing was changed" in r.output
    r = runner.invoke(cli, ["merge", "Youssou Ndour", "--into", "Youssou N'Dour", "--dry-run", "--json"])
    out = json.loads(r.stdout)
    assert out["dry_run"] is True and out["decision_id"] is None and out["albums_folded"] == 1
    r = runner.invoke(cli, ["place", "Nova - Nova One", "--dry-run"])
    assert r.exit_code == 0 and "nothing applied" in r.output
    r = runner.invoke(cli, ["split", "Eclipse", "--name", "Eklipse"])
    assert r.exit_code == 1 and "'Eclipse (Eklipse)'" in r.output
    assert len(r.output.strip().splitlines()) == 1
    assert all_rows(catalog) == rows
    r = runner.invoke(cli, ["split", "Eclipse", "--name", "2=Eclipse (high band)"])
    assert r.exit_code == 0 and "Eclipse (high band) (#" in r.output and "artdb undo" in r.output
    r = runner.invoke(cli, ["show", "Eclipse (high band)", "--json", "-k", "0"])
    assert [a["title"] for a in json.loads(r.stdout)["albums"]] == ["High A", "High B"]
