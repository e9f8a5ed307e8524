"""Synonym discovery on real files, a real catalog (SQLite and PostgreSQL) and real FAISS.

Known answers: pages whose tracks are the same recordings have identical vectors, so a variant
spelling of one must rank first, an unrelated alias of another must still rank high on audio
alone, and a near-identical name over different audio must rank below both.
"""

from __future__ import annotations

import json

import pytest
from audiofiles import write_audio
from click.testing import CliRunner
from sqlalchemy import func, select, update

from artdb.core.analysis.findings import Partition, page_pair_hash
from artdb.core.analysis.metadata import AlbumMeta
from artdb.core.analysis.synonyms import (
    find_synonyms,
    homonym_clusters,
    metadata_similarity,
    name_similarity,
    synonym_candidates,
)
from artdb.core.config import Paths
from artdb.core.features.frontend import FrontendConfig
from artdb.core.ingest import IngestOptions
from artdb.core.ingest.service import index_catalog
from artdb.core.learn.registry import register_model
from artdb.db.models import Album, ArtistPage, AuditFinding, AuditRun, SynonymCandidate

FRONTEND = FrontendConfig(excerpt_seconds=1.0, excerpts_per_track=2)

# page name -> (album, tone frequency, noise seeds, extra tags). Equal (freq, seeds) = same recording.
KIND = "Kite Records"
PAGES = {
    "Mira Kovač": ("Rivers", 300, (1, 2), {"label": KIND, "date": "2001", "genre": "Jazz"}),
    "Mira Kovac": ("Lakes", 300, (1, 2), {"label": KIND, "date": "2003", "genre": "Jazz"}),
    "Blue Static": ("Wires", 1200, (3, 4), {}),
    "Quiet Harbour": ("Docks", 1200, (3, 4), {}),  # an alias: same audio, unrelated name
    "Mira Kovacs": ("Other", 3200, (5, 6), {"label": KIND, "date": "2002", "genre": "Jazz"}),
    "Low Drone": ("Hum", 80, (7, 8), {}),
    "Glass Bells": ("Chimes", 5000, (9, 10), {}),
    "Middle Road": ("Lanes", 600, (11, 12), {}),
}
# A page mixing two artists, and a page holding the recordings of one of them.
ECLIPSE = {"Dark": (150, (13, 14)), "Bright": (2400, (15, 16))}
DIM = ("Dim Lanterns", "Glow", 2400, (15, 16))


def write_library(root):
    for page, (album, freq, seeds, tags) in PAGES.items():
        for n, seed in enumerate(seeds):
            write_audio(root / page / album / f"{n}.wav", seconds=2.5, freq=freq, seed=seed,
                        artist=page, album=album, title=f"{album} {n}", **tags)
    for album, (freq, seeds) in ECLIPSE.items():
        for n, seed in enumerate(seeds):
            write_audio(root / "Eclipse" / album / f"{n}.wav", seconds=2.5, freq=freq, seed=seed,
                        artist="Eclipse", album=album, title=f"{album} {n}")
    page, album, freq, seeds = DIM
    for n, seed in enumerate(seeds):
        write_audio(root / page / album / f"{n}.wav", seconds=2.5, freq=freq, seed=seed,
                    artist=page, album=album, title=f"{album} {n}")


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    root = tmp_path_factory.mktemp("synlib")
    write_library(root)
    return root


@pytest.fixture
def indexed(catalog, library, tmp_path):
    paths = Paths.from_home(tmp_path / "home")
    model = register_model(catalog, name="mfcc-test", kind="mfcc", dim=38,
                           config={"frontend": FRONTEND.to_dict(), "n_mfcc": 20}, activate=True)
    summary = index_catalog(catalog, paths, library, IngestOptions(workers=1))
    assert summary.counts == {"added": 22}
    return catalog, paths, model


def page_ids(catalog) -> dict[str, int]:
    with catalog.session() as s:
        return dict(s.execute(select(ArtistPage.display_name, ArtistPage.id)).all())


def pair_of(pairs, a, b):
    want = {a, b}
    for rank, p in enumerate(pairs, 1):
        if {p.page_a, p.page_b} == want:
            return rank, p
    return None, None


# -- parts of the score, alone ------------------------------------------------------------------------
def test_name_similarity():
    assert name_similarity("Youssou N'Dour", "Youssou Ndour")[0] == 1.0
    assert name_similarity("The Beatles", "Beatles")[0] == 1.0
    assert name_similarity("Кино", "Kino")[0] == 1.0
    assert name_similarity("Blue Static", "Quiet Harbour")[0] == 0.0
    fuzzy, ev = name_similarity("Mira Kovacs", "Mira Kovač")
    assert 0.5 < fuzzy < 0.9 and not ev["equal"] and ev["ratio"] > 0.9


def test_metadata_similarity():
    a = [AlbumMeta(1, year=2001, label="Kite", genre="Jazz"),
         AlbumMeta(2, year=2004, label="Kite", genre="Jazz")]
    # gap 2: adjacent
    assert metadata_similarity(a, [AlbumMeta(3, year=2006, label="Kite", genre="Jazz")])[0] == 1.0
    score, ev = metadata_similarity(a, [AlbumMeta(4, year=2010, label="Other", genre="Rock")])
    assert ev["year_gap"] == 6 and score == pytest.approx((1 - 4 / 8) / 3)
    assert metadata_similarity(a, [AlbumMeta(5)])[0] == 0.0


def test_proposal_is_read_as_the_audit_writes_it():
    want = {0: [3, 5], 1: [4]}
    # what artdb.core.analysis.audit stores (album ids as JSON keys), read back as a Partition
    stored = {"partition": {"3": 0, "5": 0, "4": 1}, "threshold": 0.3, "linkage": "average",
              "metric": "cosine", "model": "m"}
    p = Partition.from_proposal(stored)
    assert p.clusters() == want and p.cluster_of == {3: 0, 5: 0, 4: 1} and p.n_clusters == 2
    assert (p.threshold, p.linkage, p.metric, p.model) == (0.3, "average", "cosine", "m")
    assert p.to_proposal() == stored  # one writer, one reader: a round trip
    assert Partition.from_proposal({"partition": {"3": 0, "5": 0, "4": 1}}).clusters() == want
    # anything else is not a proposal the audit ever wrote: an empty partition (page vector only)
    for other in ({}, None, {"what": "ever"}, {"3": 0, "5": 0, "4": 1}, {"clusters": [[3, 5], [4]]},
                  {"partition": {"x": 0}}, {"partition": [[3, 5], [4]]}):
        assert not Partition.from_proposal(other) and Partition.from_proposal(other).clusters() == {}


def test_page_pair_hash_follows_albums_not_order():
    h = page_pair_hash(1, 3, 7, [10, 11], [20])
    assert h == page_pair_hash(1, 7, 3, [20], [11, 10])
    assert h != page_pair_hash(1, 3, 7, [10, 11, 12], [20])
    assert h != page_pair_hash(2, 3, 7, [10, 11], [20])


# -- the whole search on a real catalog ------------------------------------------------------------
def test_known_answers_rank_store_reject_merge(indexed):
    catalog, paths, model = indexed
    ids = page_ids(catalog)
    # 10 pages: every pair is scored; min_score 0 keeps them all
    pairs = find_synonyms(catalog, paths, model, k=10, min_score=0.0).pairs

    # identical audio + variant spelling: first, with every part at its maximum
    top = pairs[0]
    assert {top.page_a, top.page_b} == {"Mira Kovač", "Mira Kovac"}
    assert top.audio_score == pytest.approx(1.0, abs=1e-4) and top.name_score == 1.0
    assert top.metadata_score == 1.0 and top.score == pytest.approx(1.0, abs=1e-4)
    # identical audio, unrelated name: carried by audio alone, right behind
    rank_alias, alias = pair_of(pairs, "Blue Static", "Quiet Harbour")
    assert rank_alias == 2, [(p.page_a, p.page_b, round(p.score, 3)) for p in pairs[:5]]
    assert alias.name_score == 0.0 and alias.audio_score == pytest.approx(1.0, abs=1e-4)
    # near-identical name and all the metadata, different audio: below the alias
    for other in ("Mira Kovač", "Mira Kovac"):
        rank, near = pair_of(pairs, "Mira Kovacs", other)
        assert near is not None and near.name_score > 0.5
        assert near.score < alias.score and rank > rank_alias
    # stored: one run, one open row per pair, ranked like the list
    with catalog.session() as s:
        run = s.scalars(select(AuditRun).where(AuditRun.kind == "synonym")).one()
        rows = s.scalars(select(SynonymCandidate).where(SynonymCandidate.run_id == run.id)).all()
    assert run.model_id == model.id and len(rows) == len(pairs)
    assert [p.id for p in synonym_candidates(catalog)] == [p.id for p in pairs]
    assert top.evidence["audio"]["unit_a"]["cluster"] is None
    assert json.loads(json.dumps(top.to_dict()))["page_a_id"] == top.page_a_id

    # a curator rejects the alias: not raised again while the evidence is the same
    with catalog.session() as s:
        s.execute(update(SynonymCandidate).where(SynonymCandidate.id == alias.id).values(status="rejected"))
    again = find_synonyms(catalog, paths, model, k=10, min_score=0.0).pairs
    assert pair_of(again, "Blue Static", "Quiet Harbour") == (None, None)
    assert pair_of(again, "Mira Kovač", "Mira Kovac")[0] == 1
    # the other pairs' candidates were kept (same ids), now confirmed by the new run
    assert {p.id for p in again} == {p.id for p in pairs} - {alias.id}
    assert all(p.change == "unchanged" for p in again)
    with catalog.session() as s:
        statuses = set(s.scalars(select(SynonymCandidate.status).where(SynonymCandidate.run_id == run.id)))
    assert statuses == {"rejected"}

    # a merged pair is never proposed; --page restricts to one page's pairs
    with catalog.session() as s:
        s.execute(update(ArtistPage).where(ArtistPage.id == ids["Mira Kovac"])
                  .values(merged_into_id=ids["Mira Kovač"]))
    merged = find_synonyms(catalog, paths, model, k=5, store=False, min_score=0.0).pairs
    assert all(ids["Mira Kovac"] not in (p.page_a_id, p.page_b_id) for p in merged)
    only = find_synonyms(catalog, paths, model, page="Mira Kovacs", store=False, min_score=0.0).pairs
    assert only and all(ids["Mira Kovacs"] in (p.page_a_id, p.page_b_id) for p in only)


def test_homonym_clusters_are_candidate_artists(indexed):
    catalog, paths, model = indexed
    ids = page_ids(catalog)
    before = pair_of(find_synonyms(catalog, paths, model, store=False, min_score=0.0).pairs,
                     "Eclipse", "Dim Lanterns")[1]
    with catalog.session() as s:
        albums = dict(s.execute(select(Album.title, Album.id).where(Album.page_id == ids["Eclipse"])).all())
        run = AuditRun(model_id=model.id, kind="homonym", params={"threshold": 0.3})
        s.add(run)
        s.flush()
        s.add(AuditFinding(run_id=run.id, page_id=ids["Eclipse"], n_clusters=2, score=0.9,
                           proposal={"partition": {str(albums["Dark"]): 0, str(albums["Bright"]): 1}},
                           evidence_hash="x", status="open"))
    # clusters as people see them: "1" the largest (stored label 0)
    assert homonym_clusters(catalog) == {ids["Eclipse"]: {"1": [albums["Dark"]], "2": [albums["Bright"]]}}
    after = pair_of(find_synonyms(catalog, paths, model, store=False, min_score=0.0).pairs,
                    "Eclipse", "Dim Lanterns")[1]
    # the page vector mixes both artists; its "Bright" cluster is the Dim Lanterns recordings
    assert after.audio_score == pytest.approx(1.0, abs=1e-4)
    assert before is None or before.audio_score < after.audio_score - 0.1
    side = "unit_a" if after.page_a == "Eclipse" else "unit_b"
    assert after.evidence["audio"][side] == {"cluster": "2", "albums": [albums["Bright"]]}


def test_cli_synonyms(indexed, catalog_url):
    catalog, paths, model = indexed
    runner = CliRunner()
    base = ["--db", catalog_url, "--home", str(paths.home)]
    r = runner.invoke(cli(), [*base, "synonyms", "--dry-run", "--json"])
    assert r.exit_code == 0, r.output
    dry = json.loads(r.stdout)
    assert dry["run_id"] is None and synonym_candidates(catalog) == []  # a dry run stores nothing
    r = runner.invoke(cli(), [*base, "synonyms", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    # the cut calibrated on the catalog's pages keeps exactly the two pairs of identical recordings
    # (a variant spelling, an alias) out of every pair scored
    assert [{p["page_a"], p["page_b"]} for p in out["pairs"]] == [
        {"Mira Kovač", "Mira Kovac"}, {"Blue Static", "Quiet Harbour"}]
    assert out["scored"] > 10 and "trusted pages" in out["min_score_source"]
    assert out["candidates"] == dry["candidates"] == len(synonym_candidates(catalog)) == 2
    r = runner.invoke(cli(), [*base, "synonyms", "--top", "1", "--json"])
    out = json.loads(r.stdout)  # --top limits what is shown; every pair above the cut is stored
    assert out["shown"] == len(out["pairs"]) == 1 and out["candidates"] == 2
    assert {out["pairs"][0]["page_a"], out["pairs"][0]["page_b"]} == {"Mira Kovač", "Mira Kovac"}
    assert out["pairs"][0]["kind"] == "variant" and out["pairs"][0]["ref"] == f"s{out['pairs'][0]['id']}"
    assert all(p["score"] >= out["min_score"] for p in out["pairs"])
    r = runner.invoke(cli(), [*base, "synonyms", "--kind", "alias", "--min-score", "0", "--json"])
    aliases = json.loads(r.stdout)["pairs"]
    assert aliases and all(p["kind"] == "alias" and p["name_score"] == 0 for p in aliases)
    assert {aliases[0]["page_a"], aliases[0]["page_b"]} == {"Blue Static", "Quiet Harbour"}
    r = runner.invoke(cli(), [*base, "synonyms", "--top", "2"])
    assert r.exit_code == 0 and "Quiet Harbour" in r.output and "s" in r.output
    # a run for one page reconciles that page's open candidates only
    before = {p.id for p in synonym_candidates(catalog)}
    r = runner.invoke(cli(), [*base, "synonyms", "Blue Static", "--min-score", "0", "--json"])
    assert r.exit_code == 0, r.output
    page_run = {p["id"] for p in json.loads(r.stdout)["pairs"]}
    current = synonym_candidates(catalog)
    assert {p.id for p in current if "Blue Static" in (p.page_a, p.page_b)} == page_run
    assert {p.id for p in current} - page_run  # the full run's other pairs are still open
    assert before & page_run  # the pairs the full run already had kept their refs
    assert len({(p.page_a_id, p.page_b_id) for p in current}) == len(current)
    # neighbors is read-only: the old spelling gets a pointer and changes nothing
    stored = {p.id for p in synonym_candidates(catalog)}
    r = runner.invoke(cli(), [*base, "neighbors", "--synonyms", "--top", "3"])
    assert r.exit_code == 2 and "artdb synonyms" in r.output and len(r.output.splitlines()) == 1
    assert {p.id for p in synonym_candidates(catalog)} == stored
    # review: filters, and by default no more candidates than pages
    r = runner.invoke(cli(), [*base, "review", "--json", "--kind", "variant"])
    listed = json.loads(r.stdout)
    assert listed["synonyms"] and all(c["kind"] == "variant" for c in listed["synonyms"])
    assert len(listed["synonyms"]) <= listed["pages"]
    r = runner.invoke(cli(), [*base, "review", "--json", "--top", "1", "--min-score", "0.5"])
    listed = json.loads(r.stdout)
    assert len(listed["synonyms"]) == 1 and listed["synonyms"][0]["score"] >= 0.5


def cli():
    from artdb.cli.main import cli as group

    return group


# -- planted pairs on a small synthetic catalog --------------------------------------------------------
def test_planted_synonym_pairs_rank_high(sqlite_url, tmp_path):
    """Variant spellings rank at the top with the MFCC baseline; an alias is scored, lower.

    Measured on this config (12 artists, 2 variants + 1 alias, 1 s excerpts), seeds 0, 1, 2: both
    variants are the top 2 of 84/74/74 scored pairs; the alias ranks 14, 3 and 7. Only what holds
    for every seed is asserted. docs/synonyms.md has figures on larger catalogs.
    """
    from artdb.core.analysis.synonyms import planted_recall
    from artdb.core.synth import SynthConfig, generate_catalog
    from artdb.db.session import Catalog

    truth = generate_catalog(tmp_path / "lib", SynthConfig(
        artists=12, albums_per_artist=2, tracks_per_album=2, seconds=3, genres=3, homonym_groups=1,
        synonym_pairs=3, seed=0, workers=1))
    catalog = Catalog.open(sqlite_url)
    try:
        paths = Paths.from_home(tmp_path / "home")
        model = register_model(catalog, name="mfcc", kind="mfcc", dim=38,
                               config={"frontend": FRONTEND.to_dict(), "n_mfcc": 20}, activate=True)
        index_catalog(catalog, paths, tmp_path / "lib", IngestOptions(workers=1))
        pairs = find_synonyms(catalog, paths, model, min_score=0.0).pairs
        variants = [tuple(p.names) for p in truth.synonym_pairs if p.kind == "variant"]
        aliases = [tuple(p.names) for p in truth.synonym_pairs if p.kind == "alias"]
        assert len(variants) == 2 and len(aliases) == 1
        assert planted_recall(catalog, pairs, variants, (len(variants),)) == {len(variants): 1.0}
        assert planted_recall(catalog, pairs, aliases, (len(pairs),)) == {len(pairs): 1.0}
        assert all(p.name_score == 1.0 for p in pairs[:2])
        # the calibrated cut: a short list (no more pairs than pages, no pair scored 0) that keeps
        # both variant spellings
        cut = find_synonyms(catalog, paths, model, store=False)
        with catalog.session() as s:
            n_pages = s.scalar(select(func.count()).select_from(ArtistPage))
        assert 0 < cut.min_score < 1 and "trusted pages" in cut.min_score_source
        assert len(variants) <= len(cut.pairs) <= n_pages < cut.scored
        assert all(p.score >= cut.min_score > 0 for p in cut.pairs)
        assert planted_recall(catalog, cut.pairs, variants, (len(cut.pairs),)) == {len(cut.pairs): 1.0}
    finally:
        catalog.close()
