"""Curator workflow on a real catalog (SQLite and PostgreSQL), real FAISS, real audio files.

The library: "Eclipse" mixes a low-pitched artist (3 albums) and a high-pitched one (2 albums, one
track featuring "Nova"); "Nova" is one artist; "Youssou N'Dour" / "Youssou Ndour" are one artist
under two names, with an album "Dakar" on both pages. Tones of distant pitch are far apart for the
MFCC baseline, so the audit's answer is known.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from audiofiles import write_audio
from click.testing import CliRunner
from sqlalchemy import select

from artdb.core.analysis.audit import run_audit
from artdb.core.analysis.findings import Partition
from artdb.core.config import Paths
from artdb.core.curation.merge import merge_pages
from artdb.core.curation.reject import reject_finding
from artdb.core.curation.review import open_findings
from artdb.core.curation.split import split_page
from artdb.core.curation.undo import UNDO, undo_decision
from artdb.core.errors import CatalogError
from artdb.core.features.frontend import FrontendConfig
from artdb.core.ingest import IngestOptions
from artdb.core.ingest.service import index_catalog
from artdb.core.learn.registry import register_model
from artdb.core.vectors.index import open_level_index
from artdb.db.models import Album, ArtistPage, AuditFinding, CuratorDecision, Track, TrackCredit

FRONTEND = FrontendConfig(excerpt_seconds=1.0, excerpts_per_track=2)
# MFCC album vectors of tones within 2 % of each other are < 0.1 apart (cosine distance) and those
# of distant pitches > 0.6 (asserted in test_threshold_sits_between_within_and_between_distances;
# measured: < 0.03 and > 0.75), so 0.3 separates them with margin.
THRESHOLD = 0.3

LIBRARY = [
    # (artist tag, album, [(title, freq)])
    ("Eclipse", "Low A", [("la1", 110), ("la2", 111)]),
    ("Eclipse", "Low B", [("lb1", 112), ("lb2", 114)]),
    ("Eclipse", "Low C", [("lc1", 116), ("lc2", 118)]),
    ("Eclipse", "High A", [("ha1", 2500), ("ha2", 2505)]),
    ("Eclipse feat. Nova", "High B", [("hb1", 2510)]),
    ("Eclipse", "High B", [("hb2", 2520)]),
    ("Nova", "Nova One", [("n1", 700), ("n2", 704)]),
    ("Nova", "Nova Two", [("n3", 708), ("n4", 712)]),
    ("Youssou N'Dour", "Dakar", [("d1", 400), ("d2", 402)]),
    ("Youssou Ndour", "Dakar", [("d3", 403)]),
    ("Youssou Ndour", "Set", [("s1", 405), ("s2", 407)]),
]


def write_library(root, entries, seconds=2.5):
    n = 0
    for artist, album, tracks in entries:
        for title, freq in tracks:
            albumartist = artist.split(" feat. ")[0]
            write_audio(root / f"{albumartist}-{album}" / f"{title}.flac", seconds=seconds, freq=freq,
                        seed=n, artist=artist, albumartist=albumartist, album=album, title=title)
            n += 1


@pytest.fixture
def lib(catalog, tmp_path):
    """(catalog, paths, model, library root) with the library ingested and embedded (MFCC)."""
    paths = Paths.from_home(tmp_path / "home")
    model = register_model(catalog, name="mfcc-test", kind="mfcc", dim=38,
                           config={"frontend": FRONTEND.to_dict(), "n_mfcc": 20,
                                   "audit": {"threshold": THRESHOLD, "linkage": "average",
                                             "metric": "cosine"}}, activate=True)
    root = tmp_path / "lib"
    write_library(root, LIBRARY)
    summary = index_catalog(catalog, paths, root, IngestOptions(workers=1))
    assert summary.counts == {"added": 19}
    return catalog, paths, model, root


def page_id(catalog, name, dis=""):
    from artdb.core.names import page_key

    with catalog.session() as s:
        return s.scalar(select(ArtistPage.id).where(ArtistPage.normalized_name == page_key(name),
                                                    ArtistPage.disambiguation == dis))


def albums_of(catalog, pid):
    with catalog.session() as s:
        return sorted(s.scalars(select(Album.title).where(Album.page_id == pid)))


def snapshot(catalog):
    """Every page, album, track->album and credit row, for exact before/after comparisons."""
    with catalog.session() as s:
        pages = sorted(s.execute(select(ArtistPage.id, ArtistPage.display_name, ArtistPage.normalized_name,
                                        ArtistPage.disambiguation, ArtistPage.merged_into_id)).all())
        albums = sorted(s.execute(select(Album.id, Album.page_id, Album.title, Album.normalized_title,
                                         Album.year, Album.genre_id, Album.label_id, Album.upc,
                                         Album.release_date, Album.created_at)).all())
        tracks = sorted(s.execute(select(Track.id, Track.album_id)).all())
        credits = sorted(s.execute(select(TrackCredit.track_id, TrackCredit.page_id, TrackCredit.role,
                                          TrackCredit.position)).all())
    return {"pages": pages, "albums": albums, "tracks": tracks, "credits": credits}


def artist_index(catalog, paths, model):
    index = open_level_index(catalog, paths, model, "artist")
    ids = index.index_ids()
    return ids, index.reconstruct(ids)


def test_threshold_sits_between_within_and_between_distances(lib):
    catalog, paths, model, _ = lib
    from artdb.core.analysis.audit import album_vectors

    vec = album_vectors(catalog, paths, model)
    with catalog.session() as s:
        title = dict(s.execute(select(Album.id, Album.title)).all())
    by = {title[a]: v for a, v in vec.items() if title[a] != "Dakar"}
    cos = lambda a, b: 1 - float(np.dot(by[a], by[b]))  # noqa: E731
    assert max(cos("Low A", "Low C"), cos("High A", "High B"), cos("Nova One", "Nova Two")) < 0.1
    assert min(cos("Low A", "High A"), cos("Low C", "High B"), cos("Low A", "Nova One")) > 0.6


def test_audit_flags_only_the_mixed_page(lib):
    catalog, paths, model, _ = lib
    report = run_audit(catalog, paths, model)
    flagged = {p.page: p for p in report.findings}
    assert list(flagged) == ["Eclipse"]
    eclipse = flagged["Eclipse"]
    assert eclipse.n_clusters == 2 and eclipse.score > 0
    titles = [sorted(t for a, t in zip(eclipse.album_ids, eclipse.albums) if a in c)
              for c in eclipse.clusters()]
    assert titles == [["Low A", "Low B", "Low C"], ["High A", "High B"]]  # largest cluster first
    assert all(p.score < 0 for p in report.pages if p.page != "Eclipse")
    with catalog.session() as s:
        f = s.get(AuditFinding, eclipse.finding_id)
        assert f.status == "open" and f.n_clusters == 2 and f.evidence_hash == eclipse.evidence_hash
    # the stored proposal reads back as the audit's partition, with the run's threshold
    stored = Partition.from_proposal(f.proposal)
    assert stored.cluster_of == dict(zip(eclipse.album_ids, eclipse.labels))
    assert (stored.threshold, stored.linkage, stored.metric) == (THRESHOLD, "average", "cosine")
    assert stored.evidence_hash == f.evidence_hash and stored.n_clusters == 2
    # a second run on the unchanged catalog keeps the finding (same id, now the new run's)
    again = run_audit(catalog, paths, model)
    assert again.findings[0].finding_id == eclipse.finding_id
    assert again.findings[0].change == "unchanged" and again.findings[0].replaces_id is None
    with catalog.session() as s:
        f = s.get(AuditFinding, eclipse.finding_id)
        assert f.status == "open" and f.run_id == again.run_id != report.run_id
    assert [h["id"] for h in open_findings(catalog)["homonyms"]] == [eclipse.finding_id]


def test_split_then_undo_restores_catalog_and_artist_index(lib):
    catalog, paths, model, _ = lib
    run_audit(catalog, paths, model)
    before = snapshot(catalog)
    ids0, vecs0 = artist_index(catalog, paths, model)
    eclipse, nova = page_id(catalog, "Eclipse"), page_id(catalog, "Nova")

    d = split_page(catalog, "Eclipse", note="two bands")
    kept, new = d.summary["pages"]
    # the kept page keeps its id and its name; the other artist is "Eclipse [2]"
    assert kept["page_id"] == eclipse and kept["kept"] and kept["page"] == "Eclipse"
    assert new["page"] == "Eclipse [2]" and not new["kept"]
    assert (kept["cluster"], new["cluster"]) == (1, 2)
    assert [a["title"] for a in new["albums"]] == ["High A", "High B"]
    assert page_id(catalog, "Eclipse") == eclipse
    assert albums_of(catalog, eclipse) == ["Low A", "Low B", "Low C"]
    assert albums_of(catalog, new["page_id"]) == ["High A", "High B"]
    with catalog.session() as s:
        high_tracks = set(s.scalars(select(Track.id).join(Album).where(Album.page_id == new["page_id"])))
        credits = s.execute(select(TrackCredit.track_id, TrackCredit.page_id, TrackCredit.role)).all()
    main_of_high = {t: p for t, p, r in credits if t in high_tracks and r == "main"}
    assert set(main_of_high.values()) == {new["page_id"]} and len(main_of_high) == 4
    # the featured credit to Nova is kept
    assert [(p, r) for t, p, r in credits if t in high_tracks and r == "featured"] == [(nova, "featured")]
    assert d.summary["credits_moved"] == 4 and d.summary["albums_moved"] == 2
    assert open_findings(catalog)["homonyms"] == []
    # the artist index follows the split
    ids1, vecs1 = artist_index(catalog, paths, model)
    assert new["page_id"] in ids1.tolist()
    assert not np.allclose(vecs1[ids1.tolist().index(eclipse)], vecs0[ids0.tolist().index(eclipse)])

    u = undo_decision(catalog, d.id)
    assert u.summary["pages_deleted"] == [new["page_id"]]
    assert snapshot(catalog) == before
    ids2, vecs2 = artist_index(catalog, paths, model)
    assert ids2.tolist() == ids0.tolist()
    np.testing.assert_allclose(vecs2, vecs0, atol=1e-6)
    assert [h["page"] for h in open_findings(catalog)["homonyms"]] == ["Eclipse"]
    with pytest.raises(CatalogError, match="already undone"):
        undo_decision(catalog, d.id)


def test_merge_then_undo_restores_catalog_and_artist_index(lib, tmp_path):
    catalog, paths, model, _ = lib
    a, b = page_id(catalog, "Youssou N'Dour"), page_id(catalog, "Youssou Ndour")
    before = snapshot(catalog)
    ids0, vecs0 = artist_index(catalog, paths, model)

    d = merge_pages(catalog, "Youssou N'Dour", "Youssou Ndour")
    assert d.summary["albums_moved"] == 1 and d.summary["albums_folded"] == 1
    assert albums_of(catalog, a) == ["Dakar", "Set"] and albums_of(catalog, b) == []
    with catalog.session() as s:
        assert s.get(ArtistPage, b).merged_into_id == a
        assert s.scalars(select(TrackCredit).where(TrackCredit.page_id == b)).all() == []
        dakar = s.scalars(select(Album).where(Album.page_id == a, Album.title == "Dakar")).one()
        assert len(s.scalars(select(Track.id).where(Track.album_id == dakar.id)).all()) == 3
    ids1, _ = artist_index(catalog, paths, model)
    assert b not in ids1.tolist() and a in ids1.tolist()

    undo_decision(catalog, d.id)
    assert snapshot(catalog) == before
    ids2, vecs2 = artist_index(catalog, paths, model)
    assert ids2.tolist() == ids0.tolist()
    np.testing.assert_allclose(vecs2, vecs0, atol=1e-6)

    # merged again, a later delivery under the merged-away name credits the target page
    merge_pages(catalog, a, b)
    root2 = tmp_path / "later"
    write_library(root2, [("Youssou Ndour", "Live", [("live1", 404)])])
    index_catalog(catalog, paths, root2, IngestOptions(workers=1))
    assert albums_of(catalog, a) == ["Dakar", "Live", "Set"]


def test_undo_is_refused_while_a_later_decision_on_the_same_page_stands(lib):
    catalog, paths, model, _ = lib
    run_audit(catalog, paths, model)
    split = split_page(catalog, "Eclipse")
    merge = merge_pages(catalog, "Eclipse", "Nova")
    with pytest.raises(CatalogError, match=f"decision #{merge.id}"):
        undo_decision(catalog, split.id)
    undo_decision(catalog, merge.id)
    undo_decision(catalog, split.id)


def test_every_action_has_an_undo_and_others_are_refused(lib):
    catalog = lib[0]
    assert set(UNDO) == {"split", "merge", "place", "reject"}
    with catalog.session() as s:
        d = CuratorDecision(action="rename", undo={"pages": []})
        s.add(d)
        s.flush()
        did = d.id
    with pytest.raises(CatalogError, match=f"#{did} \\(rename\\) cannot be undone"):
        undo_decision(catalog, did)


def test_rejected_finding_is_not_raised_again_unless_evidence_changes(lib, tmp_path):
    catalog, paths, model, _ = lib
    first = run_audit(catalog, paths, model).findings[0]
    d = reject_finding(catalog, f"h{first.finding_id}", note="one band, two styles")
    with catalog.session() as s:
        assert s.get(AuditFinding, first.finding_id).status == "rejected"
    second = run_audit(catalog, paths, model)
    assert second.findings == [] and [p.page for p in second.suppressed] == ["Eclipse"]
    assert open_findings(catalog)["homonyms"] == []
    with pytest.raises(CatalogError, match="not open"):
        split_page(catalog, "Eclipse", finding=f"h{first.finding_id}")
    # undoing the rejection raises it again
    undo_decision(catalog, d.id)
    assert [p.page for p in run_audit(catalog, paths, model).findings] == ["Eclipse"]
    reject_finding(catalog, open_findings(catalog)["homonyms"][0]["ref"])
    # new evidence (another album on the page) raises it again
    write_library(tmp_path / "more", [("Eclipse", "Low D", [("ld1", 113)])])
    index_catalog(catalog, paths, tmp_path / "more", IngestOptions(workers=1))
    third = run_audit(catalog, paths, model)
    assert [p.page for p in third.findings] == ["Eclipse"] and third.findings[0].n_albums == 6


def test_cli_audit_review_split_reject_undo(tmp_path, artdb_home):
    root = tmp_path / "lib"
    write_library(root, LIBRARY)
    runner = CliRunner()
    r = runner.invoke(cli_main(), ["models", "add-baseline", "mfcc", "--activate"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli_main(), ["index", str(root), "--no-progress", "--workers", "1", "--json"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli_main(), ["audit", "--json"])
    assert r.exit_code == 1 and "--calibrate" in r.output  # the baseline has no threshold yet
    r = runner.invoke(cli_main(), ["audit", "--calibrate", "--folds", "3"])
    # 3 pages with two albums form one album group; the 4 pages' tracks form 2 groups: too few
    assert r.exit_code == 1 and "2 artificial groups from 4 trusted pages' tracks" in r.output
    r = runner.invoke(cli_main(), ["audit", "--threshold", str(THRESHOLD), "--json", "--all"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["findings"] == 1 and out["pages_audited"] == 3
    assert out["pages"][0]["page"] == "Eclipse" and out["pages"][0]["n_clusters"] == 2
    r = runner.invoke(cli_main(), ["audit", "--threshold", str(THRESHOLD), "--csv", "--page", "eclipse"])
    assert r.exit_code == 0, r.output
    lines = r.stdout.strip().splitlines()
    assert lines[0].startswith("rank,page_id,page") and len(lines) == 1 + 5
    r = runner.invoke(cli_main(), ["review", "--json"])
    found = json.loads(r.stdout)["homonyms"]
    assert [f["page"] for f in found] == ["Eclipse"] and len(found[0]["clusters"]) == 2
    assert [c["cluster"] for c in found[0]["clusters"]] == [1, 2]
    r = runner.invoke(cli_main(), ["review"])
    assert r.exit_code == 0 and f"h{found[0]['id']}" in r.output
    r = runner.invoke(cli_main(), ["split", "Eclipse", "--json"])
    assert r.exit_code == 0, r.output
    decision = json.loads(r.stdout)["decision_id"]
    # after the split, "Eclipse" is the kept page (its label), "Eclipse [2]" the new one
    r = runner.invoke(cli_main(), ["neighbors", "Eclipse", "--level", "artist", "--json"])
    assert r.exit_code == 0, r.output
    assert "Eclipse [2]" in [n["name"] for n in json.loads(r.stdout)["neighbors"]]
    r = runner.invoke(cli_main(), ["undo", str(decision)])
    assert r.exit_code == 0 and "undid decision" in r.output
    r = runner.invoke(cli_main(), ["reject", f"h{found[0]['id']}"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli_main(), ["audit", "--threshold", str(THRESHOLD), "--all"])
    assert r.exit_code == 0 and "0 flagged" in r.output and "1 suppressed" in r.output
    assert f"h{found[0]['id']} rejected" in r.output  # the decision stays attached to its ref
    r = runner.invoke(cli_main(), ["review", "--decisions", "--json"])
    assert [d["action"] for d in json.loads(r.stdout)] == ["reject", "split"]
    # the older `merge TARGET SOURCE` form is refused with the command that does it, never guessed
    r = runner.invoke(cli_main(), ["merge", "Youssou N'Dour", "Youssou Ndour"])
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1, r.output
    assert "artdb merge 'Youssou Ndour' --into 'Youssou N'\"'\"'Dour'" in r.output
    r = runner.invoke(cli_main(), ["merge", "Youssou Ndour", "--into", "Youssou N'Dour"])
    assert r.exit_code == 0 and "1 folded" in r.output, r.output
    r = runner.invoke(cli_main(), ["split", "Nobody"])
    assert r.exit_code == 1 and "no artist page named 'Nobody'" in r.output


def cli_main():
    from artdb.cli.main import cli

    return cli


def test_synonym_candidates_are_reviewed_rejected_and_merged(lib):
    """Rows another module writes into synonym_candidates: listed, rejected, applied, undone."""
    from artdb.db.models import AuditRun, SynonymCandidate

    catalog, paths, model, _ = lib
    a, b = page_id(catalog, "Youssou N'Dour"), page_id(catalog, "Youssou Ndour")
    nova = page_id(catalog, "Nova")
    with catalog.session() as s:
        run = AuditRun(model_id=model.id, kind="synonym", params={})
        s.add(run)
        s.flush()
        pair = SynonymCandidate(run_id=run.id, page_a_id=a, page_b_id=b, audio_score=0.9, name_score=1.0,
                                metadata_score=0.5, score=0.85, evidence={}, evidence_hash="e1")
        other = SynonymCandidate(run_id=run.id, page_a_id=a, page_b_id=nova, audio_score=0.2,
                                 name_score=0.0, metadata_score=0.0, score=0.1, evidence={},
                                 evidence_hash="e2")
        s.add_all([pair, other])
        s.flush()
        pair_id, other_id = pair.id, other.id
    listed = open_findings(catalog)["synonyms"]
    assert [c["ref"] for c in listed] == [f"s{pair_id}", f"s{other_id}"]
    assert listed[0]["page_a"] == "Youssou N'Dour" and listed[0]["page_b"] == "Youssou Ndour"

    r = reject_finding(catalog, f"s{other_id}")
    assert r.finding_kind == "synonym" and r.summary["evidence_hash"] == "e2"
    with pytest.raises(CatalogError, match="candidate"):
        merge_pages(catalog, a, nova, candidate=f"s{pair_id}")  # not that pair
    d = merge_pages(catalog, a, b, candidate=f"s{pair_id}")
    assert [c["ref"] for c in open_findings(catalog)["synonyms"]] == []
    undo_decision(catalog, d.id)
    undo_decision(catalog, r.id)
    assert [c["ref"] for c in open_findings(catalog)["synonyms"]] == [f"s{pair_id}", f"s{other_id}"]
    # without --candidate, the open candidate of the pair is the one applied
    d = merge_pages(catalog, b, a)
    assert d.finding_id == pair_id
