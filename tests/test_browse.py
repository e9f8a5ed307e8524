"""``artdb ls`` / ``artdb show``: browsing a real catalog (SQLite and PostgreSQL, real FAISS).

The catalog is test_curation's (a mixed "Eclipse" page, "Nova", two "Youssou" pages; MFCC
baseline active) plus one album tagged with a label, a year and a genre.
"""

from __future__ import annotations

import json
import re

import pytest
from audiofiles import write_audio
from click.testing import CliRunner
from test_curation import lib  # noqa: F401 - a fixture

from artdb.core.analysis.audit import run_audit
from artdb.core.errors import CatalogError, ConfigError
from artdb.core.ingest import IngestOptions
from artdb.core.ingest.service import index_catalog
from artdb.core.reporting.browse import format_row, list_catalog, show


@pytest.fixture
def tagged(lib, tmp_path):  # noqa: F811
    catalog, paths, model, root = lib
    for n, freq in enumerate((720, 724)):
        write_audio(tmp_path / "tagged" / f"{n}.flac", seconds=2.5, freq=freq, seed=90 + n,
                    artist="Nova", album="Nova Three", title=f"Three {n}", label="Kite Records",
                    date="2004", genre="Jazz")
    index_catalog(catalog, paths, tmp_path / "tagged", IngestOptions(workers=1))
    return catalog, paths, model


def names(rows, key="name"):
    return [r[key] for r in rows]


def test_ls_queries(tagged):
    catalog, _, _ = tagged
    pages = list_catalog(catalog, "pages")
    assert names(pages) == ["Eclipse", "Nova", "Youssou N'Dour", "Youssou Ndour"]
    nova = pages[1]
    assert (nova["albums"], nova["tracks"], nova["first_year"], nova["last_year"]) == (3, 6, 2004, 2004)
    assert names(list_catalog(catalog, "albums", ["label:kite"]), "title") == ["Nova Three"]
    assert names(list_catalog(catalog, "albums", ["year:2000..2005"]), "title") == ["Nova Three"]
    assert list_catalog(catalog, "albums", ["year:..1999"]) == []
    assert names(list_catalog(catalog, "pages", ["genre:JAZZ"])) == ["Nova"]
    # plain words match names and titles; every term must match
    assert names(list_catalog(catalog, "albums", ["eclipse", "high"]), "title") == ["High A", "High B"]
    tracks = list_catalog(catalog, "tracks", ["youssou", "dakar"])
    assert sorted(names(tracks, "title")) == ["d1", "d2", "d3"]
    assert all(t["album"] == "Dakar" and t["path"].endswith(".flac") for t in tracks)
    assert names(list_catalog(catalog, "tracks", ["title:hb"]), "title") == ["hb1", "hb2"]
    assert len(list_catalog(catalog, "tracks", limit=4)) == 4
    # a % or _ in a query is a character, not a wildcard
    assert list_catalog(catalog, "pages", ["%"]) == [] and list_catalog(catalog, "pages", ["_"]) == []
    row = list_catalog(catalog, "albums", ["label:kite"])[0]
    assert format_row("$name - ${title} ($year, $genre, $upc)", row) == "Nova - Nova Three (2004, Jazz, -)"
    with pytest.raises(ConfigError, match="unknown field 'colour'.*name, album"):
        list_catalog(catalog, "albums", ["colour:red"])
    with pytest.raises(ConfigError, match="not a year"):
        list_catalog(catalog, "albums", ["year:20x"])
    with pytest.raises(ConfigError, match=r"unknown field \$artist.*\$name"):
        format_row("$artist", row)


def test_show_page_and_album(tagged):
    catalog, paths, model = tagged
    hid = run_audit(catalog, paths, model).findings[0].finding_id
    d = show(catalog, paths, "Eclipse")
    assert d["kind"] == "page" and d["name"] == "Eclipse" and d["tracks"] == 10
    by_title = {a["title"]: a for a in d["albums"]}
    assert {t: a["cluster"] for t, a in by_title.items()} == {
        "Low A": 1, "Low B": 1, "Low C": 1, "High A": 2, "High B": 2}
    assert all(a["tracks"] == 2 for a in d["albums"])
    assert d["open_findings"] == [{"ref": f"h{hid}", "score": pytest.approx(d["open_findings"][0]["score"]),
                                   "n_clusters": 2, "replaces": None}]
    assert len(d["nearest_pages"]) == 3 and d["nearest_pages"][0]["model"] == model.name
    nova = show(catalog, paths, "nova", neighbours=0)
    assert nova["nearest_pages"] == [] and nova["credited_on_other_albums"] == 1  # "feat. Nova"
    # albums by year, those without one last
    assert [a["title"] for a in nova["albums"]] == ["Nova Three", "Nova One", "Nova Two"]
    assert [(a["year"], a["label"]) for a in nova["albums"] if a["title"] == "Nova Three"] == [
        (2004, "Kite Records")]
    album = show(catalog, paths, "Eclipse - High B")
    assert album["kind"] == "album" and album["cluster"] == 2 and album["finding"] == f"h{hid}"
    credits = {t["title"]: t["credits"] for t in album["tracks"]}
    assert credits == {"hb1": ["Eclipse", "Nova (featured)"], "hb2": ["Eclipse"]}
    assert album["nearest_albums"][0]["page"] == "Eclipse"
    assert show(catalog, paths, str(album["id"]), album=True)["title"] == "High B"
    with pytest.raises(CatalogError, match="did you mean 'Eclipse'"):
        show(catalog, paths, "Eclpise")
    with pytest.raises(CatalogError, match="did you mean 'Eclipse - High B'"):
        show(catalog, paths, "Eclipse - Hihg B")


def test_cli_ls_and_show(tagged, catalog_url):
    catalog, paths, model = tagged
    run_audit(catalog, paths, model)
    runner = CliRunner()

    def run(*args):
        from artdb.cli.main import cli

        return runner.invoke(cli, ["--db", catalog_url, "--home", str(paths.home), *args])

    r = run("ls")
    assert r.exit_code == 0, r.output
    assert r.output.splitlines()[0].startswith("Eclipse  (#") and "5 albums, 10 tracks" in r.output
    r = run("ls", "-a", "-f", "$name|$title|$year|$label", "label:kite")
    assert r.output.splitlines() == ["Nova|Nova Three|2004|Kite Records"]
    r = run("ls", "-t", "--json", "dakar")
    assert sorted(t["title"] for t in json.loads(r.stdout)) == ["d1", "d2", "d3"]
    r = run("ls", "colour:red")
    assert r.exit_code == 1 and "unknown field 'colour'" in r.output and len(r.output.splitlines()) == 1
    r = run("show", "Eclipse")
    assert r.exit_code == 0, r.output
    # the commands name this catalog's home and database, which are not the defaults
    assert "cluster 2" in r.output and re.search(
        r"artdb --home \S+ --db \S+ split Eclipse --finding h\d+ --dry-run", r.output), r.output
    assert "nearest pages (model" in r.output
    r = run("show", "Eclipse - Low A", "--json")
    assert json.loads(r.stdout)["kind"] == "album" and json.loads(r.stdout)["cluster"] == 1
    r = run("show", "Nobody")
    assert r.exit_code == 1 and "no artist page named 'Nobody'" in r.output
