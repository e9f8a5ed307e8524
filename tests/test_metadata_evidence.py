"""Metadata beside audio (issue 16): each feature (missing values included), the fusion learnt on
artificial groups, ``--evidence`` in audit and place, reasons in review / --json / the report, and
the synthetic catalog's metadata confounds.

The catalog of the DB tests (SQLite, real FLAC files, MFCC vectors): eight trusted artists
"P1".."P8" whose tones all lie within 600-609 Hz, each on its own label with its own ISRC
registrant and years of its own, so on the artificial groups audio says little and the tags
much. "Eclipse" holds two artists whose tones are alike too (audio keeps the page whole) but
whose labels, years and registrants never overlap: the fused audit splits it.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from audiofiles import write_audio
from click.testing import CliRunner

from artdb.core.analysis.audit import run_audit
from artdb.core.analysis.fusion import Fusion, fit_fusion
from artdb.core.analysis.metadata import (
    FEATURES,
    AlbumMeta,
    album_metadata,
    compare_groups,
    fit_year_boundary,
    isrc_parts,
    isrc_year,
    pair_features,
    reason_lines,
    reasons,
    text_script,
    upc_prefix,
    year_evidence,
)
from artdb.core.analysis.placement import place_album
from artdb.core.config import Paths
from artdb.core.curation.review import open_findings
from artdb.core.curation.split import split_page
from artdb.core.errors import ConfigError
from artdb.core.evaluation import EvalConfig, from_arrays, run_evaluation
from artdb.core.evaluation.report import markdown
from artdb.core.features.frontend import FrontendConfig
from artdb.core.ingest import IngestOptions
from artdb.core.ingest.service import index_catalog
from artdb.core.learn.registry import register_model
from artdb.core.reporting.excerpts import ExcerptOptions
from artdb.core.reporting.report import render_report
from artdb.core.synth.config import SynthConfig
from artdb.core.synth.plan import plan_catalog
from artdb.db.models import Album, AuditRun

FRONTEND = FrontendConfig(excerpt_seconds=1.0, excerpts_per_track=2)


# -- single values ---------------------------------------------------------------------------------
def test_isrc_upc_and_script_are_read_or_left_unknown():
    assert isrc_parts("GB-ABC-19-00001") == ("GB", "ABC")
    assert isrc_parts("usxyz2100042") == ("US", "XYZ")
    assert isrc_parts("nonsense") is None and isrc_parts(None) is None and isrc_parts("") is None
    # the ISRC's year: the latest year ending in YY not after the release (or 2029)
    assert isrc_year("GBABC1900001", 2021) == 2019 and isrc_year("GBABC9900001", 2021) == 1999
    assert isrc_year("GBABC2100001", None) == 2021 and isrc_year("GBABC3500001", None) == 1935
    assert isrc_year("bad", 2000) is None
    assert upc_prefix("012345678905") == "012345"
    assert upc_prefix("0012345678905") == "012345"  # EAN-13 of a UPC-A: the leading 0 is dropped
    assert upc_prefix("4006381333931") == "400638"
    assert upc_prefix("12345") is None and upc_prefix(None) is None and upc_prefix("ABCDEFGHIJKL") is None
    assert text_script(["Blue Train", "Moment's Notice"]) == "LATIN"
    assert text_script(["Кино", "Группа крови"]) == "CYRILLIC"
    assert text_script(["ひこうき", "カタカナ"]) == "KANA"
    assert text_script(["1979", "--"]) is None


A = AlbumMeta(1, label="Blue Note", year=1971, genre="Jazz", upc_prefix="012345",
              registrants=frozenset({"US-BNL"}), countries=frozenset({"US"}), script="LATIN",
              credits=frozenset({"Nova"}))


@pytest.mark.parametrize("field, same, other, feature", [
    ("label", "Blue Note", "Atlantic", "label"),
    ("registrants", frozenset({"US-BNL"}), frozenset({"GB-ATL"}), "isrc_registrant"),
    ("countries", frozenset({"US"}), frozenset({"GB"}), "isrc_country"),
    ("upc_prefix", "012345", "400638", "upc_prefix"),
    ("genre", "Jazz", "Trap", "genre"),
    ("script", "LATIN", "CYRILLIC", "script"),
])
def test_each_feature_agrees_disagrees_and_is_neutral_when_missing(field, same, other, feature):
    k = FEATURES.index(feature)
    base = AlbumMeta(2, **{f: getattr(A, f) for f in ("label", "year", "genre", "upc_prefix",
                                                      "registrants", "countries", "script")})
    agree = pair_features(A, base)
    disagree = pair_features(A, dataclasses.replace(base, **{field: other}))
    missing_value = frozenset() if isinstance(same, frozenset) else None
    missing = pair_features(A, dataclasses.replace(base, **{field: missing_value}))
    assert (agree[k], disagree[k], missing[k]) == (1.0, -1.0, 0.0)
    # the other features do not move
    others = [i for i in range(len(FEATURES)) if i != k]
    assert np.array_equal(agree[others], disagree[others]) and np.array_equal(agree[others], missing[others])


def test_year_and_credit_evidence():
    k, c = FEATURES.index("year"), FEATURES.index("credits")
    assert year_evidence(0, 10) == 1.0 and year_evidence(10, 10) == 0.0 and year_evidence(30, 10) == -1.0
    assert year_evidence(None, 10) == 0.0  # unknown = exactly the boundary: no evidence
    assert pair_features(A, AlbumMeta(2, year=1976), 10)[k] == pytest.approx(0.5)
    assert pair_features(A, AlbumMeta(2), 10)[k] == 0.0
    # a shared guest is evidence; no shared guest is not evidence against
    assert pair_features(A, AlbumMeta(2, credits=frozenset({"Nova"})))[c] == 1.0
    assert pair_features(A, AlbumMeta(2, credits=frozenset({"Other"})))[c] == 0.0
    assert pair_features(A, AlbumMeta(2))[c] == 0.0
    # same-artist pairs are 0-3 years apart, others 15+: the boundary falls between
    gaps = np.array([0, 1, 3, 2, 15, 20, 30, np.nan])
    same = np.array([1, 1, 1, 1, 0, 0, 0, 1], dtype=bool)
    assert 3 <= fit_year_boundary(gaps, same) < 15
    assert fit_year_boundary(gaps, np.ones(8, dtype=bool)) == 10.0  # one kind of pair: the default


def test_a_missing_value_leaves_the_fused_distance_as_if_the_feature_had_no_weight():
    fusion = Fusion("both", ["audio", *FEATURES], [-2.0, 1.5, 1.0, 0.3, 0.2, 0.8, 0.4, 0.1, 0.5], 0.2)
    meta = pair_features(A, AlbumMeta(2, year=1972))  # only the year is known on both sides
    zero_weights = Fusion("both", fusion.features, [-2.0, 0, 0, 0, 0, 0.8, 0, 0, 0], 0.2)
    assert fusion.distance(np.array([0.3]), meta[None]) == pytest.approx(
        zero_weights.distance(np.array([0.3]), meta[None]))


# -- the fusion, learnt on artificial groups -------------------------------------------------------
def test_fusion_learns_from_artificial_groups_and_beats_weak_audio(rng):
    """12 artists x 3 albums: the audio is noise around 6 look-alike centres (two artists each),
    the label and the years identify the artist. The fusion, fitted on groups of these pages,
    weighs the label and years up and recovers groups audio cannot."""
    n_art, per = 12, 3
    centres = rng.normal(size=(6, 16))
    vectors, metas, labels = [], [], []
    for a in range(n_art):
        for j in range(per):
            vectors.append(centres[a // 2] + 0.5 * rng.normal(size=16))
            aid = len(metas)
            metas.append(AlbumMeta(aid, label=f"L{a}", year=1960 + 5 * a + j,
                                   registrants=frozenset({f"GB-R{a:02d}"}), countries=frozenset({"GB"})))
            labels.append(a)
    labels = np.array(labels)
    groups = [np.array([2 * i, 2 * i + 1]) for i in range(6)]  # look-alike pairs: the hard groups
    fusion = fit_fusion(np.array(vectors), metas, labels, groups, "both", folds=3, seed=0)
    w = fusion.weights()
    assert w["label"] > 0 and w["isrc_registrant"] > 0 and w["audio"] < 0.5
    assert w["upc_prefix"] == 0.0 and w["credits"] == 0.0  # never known: never weighed
    cv = fusion.calibration["cv"]
    assert cv["ari_fused"] > cv["ari_audio"] + 0.3
    assert cv["split_fused"] <= cv["split_audio"]
    assert fusion.calibration["known"]["label"] == 1.0 and fusion.calibration["known"]["upc_prefix"] == 0.0
    lines = fusion.calibration_lines()
    assert any(line.strip().startswith("label") for line in lines) and "CV" in lines[-1]
    # it round-trips through JSON (what the audit run stores)
    again = Fusion.from_dict(json.loads(json.dumps(fusion.to_dict())))
    assert again.condensed(np.array(vectors[:4]), metas[:4]) == pytest.approx(
        fusion.condensed(np.array(vectors[:4]), metas[:4]))
    # stored as plain JSON: a non-finite number becomes None, and the report still reads
    cv_nan = {"folds": 2, "ari_audio": float("nan"), "ari_fused": 0.5, "split_audio": 0.0,
              "split_fused": 0.0}
    odd = Fusion.from_dict({**fusion.to_dict(), "calibration": {"cv": cv_nan}})
    json.dumps(odd.to_dict(), allow_nan=False)
    assert odd.to_dict()["calibration"]["cv"]["ari_audio"] is None
    assert "ARI audio n/a" in Fusion.from_dict(odd.to_dict()).calibration_lines()[-1]
    metadata_only = fit_fusion(np.array(vectors), metas, labels, groups, "metadata", folds=3)
    assert metadata_only.features == list(FEATURES)
    with pytest.raises(ConfigError):
        fit_fusion(np.array(vectors), metas, labels, groups, "audio")


@pytest.mark.parametrize("singles", [False, True])
def test_every_cross_validation_fit_is_made_like_the_final_one(rng, monkeypatch, singles):
    """The CV figures the audit prints must describe the fusion it uses: each fold's fit weighs
    single pages exactly as the final fit does (a fold loop once reused the name ``singles`` for
    its test pages, so every fold after the first was fitted with pages alone counted)."""
    from artdb.core.analysis import fusion as fusion_module
    calls = []
    real_fit_once = fusion_module._fit_once

    def recording_fit_once(*args, **kwargs):
        calls.append(args[7] if len(args) > 7 else kwargs.get("singles", False))
        return real_fit_once(*args, **kwargs)

    monkeypatch.setattr(fusion_module, "_fit_once", recording_fit_once)
    vectors = rng.normal(size=(24, 8))
    metas = [AlbumMeta(i, label=f"L{i // 3}", year=1990 + i // 3) for i in range(24)]
    labels = np.arange(24) // 3
    groups = [np.array([2 * i, 2 * i + 1]) for i in range(4)]
    fitted = fit_fusion(vectors, metas, labels, groups, "both", folds=3, seed=0, singles=singles)
    assert fitted.calibration["cv"]["folds"] == 3
    assert calls == [singles] * 4  # the final fit, then one per fold


def test_reasons_in_words_ranked_by_weight():
    a = [AlbumMeta(1, label="Blue Note", year=1971, registrants=frozenset({"US-BNL"})),
         AlbumMeta(2, label="Blue Note", year=1979)]
    b = [AlbumMeta(3, label="Atlantic", year=2016, registrants=frozenset({"US-ATL"})),
         AlbumMeta(4, label="Atlantic", year=2021)]
    c = compare_groups(a, b)
    assert c.labels == (["Blue Note"], ["Atlantic"]) and c.years == ((1971, 1979), (2016, 2021))
    text = reasons(c, {"label": -2.0, "year": -1.0, "isrc_registrant": -0.5, "genre": 0.0},
                   audio="audio margin +0.08", audio_weight=-0.1)
    assert text == ["labels never overlap: Blue Note vs Atlantic",
                    "years 1971–1979 vs 2016–2021 (37 years apart)",
                    "ISRC registrants differ: US-BNL vs US-ATL", "audio margin +0.08"]
    # explaining a split (toward "another artist"): what speaks for it first, then "but" the rest
    mixed = compare_groups(a + [AlbumMeta(6, genre="Jazz")], b + [AlbumMeta(7, genre="Jazz")])
    assert reasons(mixed, {"label": -2.0, "genre": 1.5, "year": -1.0}, audio="audio margin +0.08",
                   audio_weight=-0.1, toward=-1) == [
        "labels never overlap: Blue Note vs Atlantic", "years 1971–1979 vs 2016–2021 (37 years apart)",
        "audio margin +0.08", "but same genre Jazz"]
    assert reasons(compare_groups([AlbumMeta(1, year=2000)], [AlbumMeta(2, year=2001)]),
                   {"year": 1.0}, toward=1) == ["years 2000 vs 2001 (1 year apart)"]
    # without a fusion: audio first, then the facts; unknown facts say nothing
    assert reasons(compare_groups(a[:1], [AlbumMeta(5)]), None, audio="audio distance 0.5") == \
        ["audio distance 0.5"]
    assert reason_lines([{"cluster": 2, "versus": 1, "reasons": text[:2]}]) == [
        "cluster 2 vs 1: labels never overlap: Blue Note vs Atlantic; years 1971–1979 vs 2016–2021 "
        "(37 years apart)"]


# -- on a real catalog -----------------------------------------------------------------------------
TRUSTED = [  # page, label, registrant, first year
    ("P1", "Kite Records", "GBKIT", 1970), ("P2", "Moss Music", "USMOS", 2000),
    ("P3", "Tern Tapes", "FRTRN", 1980), ("P4", "Oak Sound", "DEOAK", 2010),
    ("P5", "Vale Audio", "SEVAL", 1975), ("P6", "Pine Discs", "JPPIN", 2005),
    ("P7", "Reed Rec", "NLREE", 1990), ("P8", "Fern Sounds", "CAFER", 2020),
]


def write_meta_library(root):
    n = 0

    def track(page, album, freq, label, isrc_prefix, year, artist=None, reissued=None):
        nonlocal n
        n += 1
        tags = {"artist": artist or page, "albumartist": page, "album": album, "title": f"t{n}",
                "genre": "Test"}
        if label:
            tags |= {"label": label, "date": str(reissued or year),
                     "isrc": f"{isrc_prefix}{year % 100:02d}{n:05d}"}
        write_audio(root / page / album / f"{n:02d}.flac", seconds=1.5, freq=freq, seed=n, **tags)

    for k, (page, label, reg, year) in enumerate(TRUSTED):
        for j in range(2):
            track(page, f"{page} album {j}", 600 + 3 * ((k + j) % 4), label, reg, year + 2 * j)
    # Eclipse: two artists with the same sound, different labels, decades and registrants
    track("Eclipse", "Blue One", 600, "Blue Note", "USBNL", 1971)
    track("Eclipse", "Blue Two", 603, "Blue Note", "USBNL", 1975, artist="Eclipse feat. Nova",
          reissued=2005)  # a reissue: tagged 2005, its recording's ISRC says 1975
    track("Eclipse", "Trap One", 606, "Atlantic", "GBATL", 2016)
    track("Eclipse", "Trap Two", 609, "Atlantic", "GBATL", 2021)


@pytest.fixture
def meta_lib(catalog, tmp_path):
    paths = Paths.from_home(tmp_path / "home")
    model = register_model(catalog, name="mfcc-meta", kind="mfcc", dim=38,
                           config={"frontend": FRONTEND.to_dict(), "n_mfcc": 20,
                                   "audit": {"threshold": 0.3, "linkage": "average",
                                             "metric": "cosine"}}, activate=True)
    root = tmp_path / "lib"
    write_meta_library(root)
    index_catalog(catalog, paths, root, IngestOptions(workers=1))
    return catalog, paths, model, root


def _page_audit(report, name):
    return next(p for p in report.pages if p.page == name)


def test_album_metadata_reads_the_catalog(meta_lib):
    catalog, *_ = meta_lib
    with catalog.session() as s:
        ids = {t: a for a, t in s.query(Album.id, Album.title)}
        meta = album_metadata(s)
    blue = meta[ids["Blue Two"]]
    # the reissue's year is its recording's (ISRC), not the 2005 it is tagged with
    assert (blue.label, blue.year, blue.genre, blue.script) == ("Blue Note", 1975, "Test", "LATIN")
    assert blue.registrants == frozenset({"US-BNL"}) and blue.countries == frozenset({"US"})
    assert blue.credits == frozenset({"Nova"})  # the featured guest, not the album's own page
    assert meta[ids["Blue One"]].credits == frozenset() and meta[ids["Blue One"]].upc_prefix is None


def test_evidence_switch_splits_what_audio_keeps_whole_and_says_why(meta_lib, tmp_path, monkeypatch):
    catalog, paths, model, _ = meta_lib
    audio = run_audit(catalog, paths, model, store=False, evidence="audio")
    assert audio.evidence == "audio" and audio.fusion is None
    assert _page_audit(audio, "Eclipse").n_clusters == 1
    both = run_audit(catalog, paths, model, evidence="both")
    eclipse = _page_audit(both, "Eclipse")
    assert both.evidence == "both" and eclipse.n_clusters == 2 and eclipse.flagged
    titles = {t: c for t, c in zip(eclipse.albums, eclipse.labels)}
    assert titles["Blue One"] == titles["Blue Two"] != titles["Trap One"] == titles["Trap Two"]
    assert both.fusion.weights()["label"] > 0
    # no trusted page is split (no more false alarms than audio)
    assert [p.page for p in both.findings] == ["Eclipse"] and not audio.findings
    why = eclipse.reasons[0]
    assert why["cluster"] == 2 and why["versus"] == 1
    assert any(r.startswith("labels never overlap: ") for r in why["reasons"])
    # the two sound alike: the audio speaks against the split, and says so
    assert any(r.startswith("but audio margin -") for r in why["reasons"])
    # stored: the fusion with the run, the reasons with the finding
    with catalog.session() as s:
        run = s.get(AuditRun, both.run_id)
        assert run.params["evidence"] == "both" and run.params["fusion"]["features"][0] == "audio"
    found = open_findings(catalog)["homonyms"]
    assert found[0]["evidence"] == "both" and found[0]["reasons"] == eclipse.reasons
    assert found[0]["why"][0].startswith("cluster 2 vs 1: ")
    # the HTML report shows them (escaped), and the fusion's weights
    html, _ = render_report(catalog, paths, model, top=1, audio=ExcerptOptions(enabled=False))
    assert "cluster 2 vs 1: labels never overlap: " in html
    assert "fusion (both): logistic regression" in html and "weight +" in html
    # metadata alone also splits it; an audio threshold with a fusion is refused
    meta_only = run_audit(catalog, paths, model, store=False, evidence="metadata")
    assert _page_audit(meta_only, "Eclipse").n_clusters == 2
    with pytest.raises(ConfigError, match="audio distance"):
        run_audit(catalog, paths, model, store=False, evidence="both", threshold=0.3)
    with pytest.raises(ConfigError, match="evidence must be one of"):
        run_audit(catalog, paths, model, store=False, evidence="vibes")
    if catalog.engine.dialect.name != "sqlite":
        return

    from artdb.cli.main import cli

    monkeypatch.setenv("ARTDB_HOME", str(paths.home))
    monkeypatch.setenv("ARTDB_DATABASE_URL", catalog.engine.url.render_as_string(hide_password=False))
    r = CliRunner().invoke(cli, ["audit", "--dry-run", "--json"])  # default: both (has metadata)
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["evidence"] == "both" and out["pages"][0]["reasons"][0]["reasons"]
    r = CliRunner().invoke(cli, ["audit", "--dry-run", "--evidence", "audio", "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["findings"] == 0
    r = CliRunner().invoke(cli, ["review"])
    assert r.exit_code == 0 and "why: cluster 2 vs 1: labels never overlap" in r.output
    r = CliRunner().invoke(cli, ["review", "--json"])
    assert json.loads(r.stdout)["homonyms"][0]["why"]
    r = CliRunner().invoke(cli, ["audit", "--dry-run"])
    assert r.exit_code == 0 and "evidence: both" in r.output and "weight" in r.output


def test_placement_weighs_metadata_and_says_why(meta_lib, tmp_path):
    catalog, paths, model, root = meta_lib
    run_audit(catalog, paths, model, evidence="both")  # stores the fusion and the Eclipse split
    write_audio(root / "Eclipse" / "Trap Three" / "99.flac", seconds=1.5, freq=604, seed=99,
                artist="Eclipse", albumartist="Eclipse", album="Trap Three", title="t99",
                genre="Test", label="Atlantic", date="2023", isrc="GBATL2300099")
    index_catalog(catalog, paths, root, IngestOptions(workers=1))
    placed = place_album(catalog, paths, model, "Eclipse - Trap Three", evidence="both")
    assert placed.evidence == "both" and placed.best is not None
    with catalog.session() as s:
        titles = dict(s.query(Album.id, Album.title))
    assert {titles[a] for a in placed.best.album_ids} == {"Trap One", "Trap Two"}
    assert any(r.startswith("share label Atlantic") for r in placed.best.reasons)
    assert placed.to_dict()["best"]["reasons"] == placed.best.reasons
    with pytest.raises(ConfigError, match="audio distance"):
        place_album(catalog, paths, model, "Eclipse - Trap Three", evidence="both", threshold=0.3)
    audio = place_album(catalog, paths, model, "Eclipse - Trap Three", evidence="audio")
    assert audio.evidence == "audio" and all(c.reasons for c in audio.candidates)


def test_ingest_placement_after_a_split_weighs_metadata_and_says_why(meta_lib):
    """Issue 12's ingest-time placement uses the evidence `artdb place` uses: on a catalog with
    tags, a new release under the split name goes to the page its sound and tags agree with, and
    the ingest report says why in words."""
    catalog, paths, model, root = meta_lib
    run_audit(catalog, paths, model, evidence="both")  # the Eclipse finding (audio alone keeps it whole)
    split_page(catalog, "Eclipse")
    with catalog.session() as s:
        page_of = {t: p for t, p in s.query(Album.title, Album.page_id)}
    write_audio(root / "Eclipse" / "Trap Three" / "99.flac", seconds=1.5, freq=604, seed=99,
                artist="Eclipse", albumartist="Eclipse", album="Trap Three", title="t99",
                genre="Test", label="Atlantic", date="2023", isrc="GBATL2300099")
    summary = index_catalog(catalog, paths, root, IngestOptions(workers=1))
    [placement] = summary.placements
    assert placement.outcome in ("placed", "stays") and placement.page_id == page_of["Trap One"]
    assert "by sound and tags" in placement.reason and "share label Atlantic" in placement.reason
    with catalog.session() as s:
        assert s.query(Album.page_id).filter(Album.title == "Trap Three").scalar() == page_of["Trap One"]


# -- evaluation: audio-only and fused side by side --------------------------------------------------
def test_evaluate_reports_audio_and_fused_rows_on_identical_groups():
    """Random vectors (audio knows nothing) and labels that follow the artists: every fused row
    sits beside its audio row on the same split, groups and folds, and scores higher."""
    n_art, per = 20, 3
    artists = np.repeat([f"a{i:02d}" for i in range(n_art)], per * 2)
    albums = np.tile(np.repeat([f"l{j}" for j in range(per)], 2), n_art)
    genres = np.repeat([f"g{i % 2}" for i in range(n_art)], per * 2)
    meta = {f"a{i:02d}/l{j}": AlbumMeta(i * per + j, label=f"Label {i}", year=1950 + 3 * i + j)
            for i in range(n_art) for j in range(per)}
    feats = np.zeros((len(artists), 1, 4, 4), dtype=np.float32)
    ds = from_arrays(feats, artists, albums, genres, album_meta=meta)
    cfg = EvalConfig(systems=("random",), seeds=(0,), units=("album",), experiments=("unbalanced",),
                     group_draws=1, evidence="both")
    rep = run_evaluation(ds, cfg)
    rows = {(r["groups"], r["system"]): r for r in rep["results"]}
    for g in ("random", "same-genre"):
        audio, fused = rows[(g, "random")], rows[(g, "random+both")]
        assert (audio["split_id"], audio["n_groups"]) == (fused["split_id"], fused["n_groups"])
        assert fused["ari"] > audio["ari"] + 0.5
    assert ("same-source", "random+both") not in rows  # not fused: a source is a label
    assert list(rep["systems"]) == ["random", "random+both"]
    assert "metadata (both)" in markdown(rep)
    with pytest.raises(ConfigError):
        EvalConfig(evidence="vibes")


# -- synthetic truth -------------------------------------------------------------------------------
def _shared_label_share(truth) -> float:
    by_artist: dict[str, set[str]] = {}
    for a in truth.albums:
        by_artist.setdefault(a.artist_id, set()).add(a.label)
    shares = []
    for g in truth.homonym_groups:
        seen: set[str] = set()
        for i, aid in enumerate(g.artist_ids):
            if i:
                shares.append(bool(by_artist[aid] & seen))
            seen |= by_artist[aid]
    return float(np.mean(shares))


def test_synth_metadata_confounds_follow_their_knobs():
    base = dict(artists=40, homonym_groups=10, synonym_pairs=0, seconds=2.0)
    always = plan_catalog(SynthConfig(**base, homonym_shared_label=1.0, label_change=0.0))[0]
    never = plan_catalog(SynthConfig(**base, homonym_shared_label=0.0, label_change=0.5))[0]
    assert _shared_label_share(always) == 1.0 and _shared_label_share(never) == 0.0
    # ISRC registrants follow labels: one registrant per label
    reg_of: dict[str, set[str]] = {}
    albums = {a.id: a for a in never.albums}
    for t in never.tracks:
        reg_of.setdefault(albums[t.album_id].label, set()).add(t.isrc[:5])
    assert all(len(r) == 1 for r in reg_of.values())
    # label changes happen between albums of one artist
    careers = {}
    for a in never.albums:
        careers.setdefault(a.artist_id, []).append(a.label)
    assert any(len(set(c)) > 1 for c in careers.values())
    truth, jobs = plan_catalog(SynthConfig(**base, reissue_fraction=1.0, missing_metadata=1.0))
    assert all(a.original_year is not None and a.year > a.original_year for a in truth.albums)
    assert all(set(a.missing) == {"label", "date", "isrc"} for a in truth.albums)
    assert not any({"label", "date", "isrc"} & set(j.tags) for j in jobs)
    # the audio of a seed does not depend on the metadata knobs
    plain = plan_catalog(SynthConfig(**base))[1]
    assert [(j.seed, j.codec, j.sample_rate) for j in plain] == \
        [(j.seed, j.codec, j.sample_rate) for j in jobs]
    with pytest.raises(ConfigError, match="label_change"):
        SynthConfig(label_change=1.5).validate()


# -- pages the catalog should not learn "one artist" from ------------------------------------------
def _page_id(catalog, name):
    from artdb.db.models import ArtistPage

    with catalog.session() as s:
        return s.query(ArtistPage.id).filter(ArtistPage.display_name == name).scalar()


def test_the_fusion_sets_aside_the_pages_it_would_split_and_refits(meta_lib):
    from artdb.core.analysis.audit import album_vectors, fit_catalog_fusion

    catalog, paths, model, _ = meta_lib
    vectors = album_vectors(catalog, paths, model)
    eclipse = _page_id(catalog, "Eclipse")
    once = fit_catalog_fusion(catalog, vectors, "metadata", rounds=1, folds=0)
    # fitted on every page with no open finding, Eclipse included as "one artist"...
    assert once.calibration["set_aside_pages"] == [] and once.calibration["would_split_pages"] == [eclipse]
    twice = fit_catalog_fusion(catalog, vectors, "metadata", rounds=2, folds=0)
    # ...which it would split: the second fit leaves it out and splits no trusted page
    assert twice.calibration["set_aside_pages"] == [eclipse]
    assert twice.calibration["would_split_pages"] == []
    assert twice.calibration["pages"] == once.calibration["pages"] - 1
    # learnt without the mixed page, albums whose label, registrant and decade differ are surer
    # to be two artists
    apart = np.zeros((1, len(FEATURES)))
    apart[0, [FEATURES.index(f) for f in ("label", "isrc_registrant", "year")]] = -1
    assert twice.distance(None, apart)[0] > once.distance(None, apart)[0]


def test_suspect_pages_are_open_findings_and_pages_whose_tags_disagree(meta_lib):
    from artdb.core.analysis.audit import suspect_pages

    catalog, paths, model, _ = meta_lib
    eclipse = _page_id(catalog, "Eclipse")
    tags_say = "its albums' tags look like more than one artist"
    # no open finding yet; the tags are read only when asked, and 8 trusted pages make too few
    # artificial groups to trust them by default
    assert suspect_pages(catalog) == {} and suspect_pages(catalog, tags=True) == {}
    assert suspect_pages(catalog, tags=True, min_groups=2) == {eclipse: tags_say}
    assert suspect_pages(catalog, min_groups=2) == {}
    run_audit(catalog, paths, model, evidence="both")  # stores the Eclipse finding
    assert suspect_pages(catalog) == {eclipse: "an open homonym finding"}


def test_training_leaves_suspect_pages_out_unless_told(meta_lib):
    from artdb.core.features.store import open_feature_store
    from artdb.core.learn.catalog import catalog_training_set, training_set_without_suspects

    catalog, paths, model, _ = meta_lib
    run_audit(catalog, paths, model, evidence="both")
    eclipse = _page_id(catalog, "Eclipse")
    with open_feature_store(paths, FRONTEND, mode="r") as store:
        every = catalog_training_set(catalog, store)
        ts, left_out = training_set_without_suspects(catalog, store)
        kept, none_out = training_set_without_suspects(catalog, store, leave_out="none")
        with pytest.raises(ConfigError, match="leave_out must be one of"):
            training_set_without_suspects(catalog, store, leave_out="everything")
    assert eclipse in every.pages and left_out == {eclipse: "an open homonym finding"}
    assert eclipse not in ts.pages and len(ts.track_ids) == len(every.track_ids) - 4
    assert none_out == {} and np.array_equal(kept.track_ids, every.track_ids)


def test_tags_that_never_disagree_set_no_page_aside(catalog, tmp_path):
    """Albums whose only tag is a shared genre carry no evidence: whatever the fitted intercept,
    no page is split by the metadata fusion (missing values are neutral)."""
    from artdb.core.analysis.audit import fit_catalog_fusion, suspect_pages

    root = tmp_path / "lib"
    for k in range(8):
        for j in range(2):
            write_audio(root / f"Q{k}" / f"Q{k} album {j}" / "01.flac", seconds=1.5, freq=600 + k,
                        seed=10 * k + j, artist=f"Q{k}", album=f"Q{k} album {j}", title="t", genre="Test")
    paths = Paths.from_home(tmp_path / "home")
    index_catalog(catalog, paths, root, IngestOptions(workers=1))
    fusion = fit_catalog_fusion(catalog, None, "metadata", rounds=2, folds=0)
    assert fusion.calibration["set_aside_pages"] == [] and fusion.calibration["would_split_pages"] == []
    assert suspect_pages(catalog, min_groups=1) == {}


def test_artdb_train_says_which_pages_it_left_out(meta_lib, monkeypatch):
    catalog, paths, model, _ = meta_lib
    if catalog.engine.dialect.name != "sqlite":
        pytest.skip("the CLI part runs once")
    from artdb.cli.main import cli

    run_audit(catalog, paths, model, evidence="both")  # an open finding on Eclipse
    monkeypatch.setenv("ARTDB_HOME", str(paths.home))
    monkeypatch.setenv("ARTDB_DATABASE_URL", catalog.engine.url.render_as_string(hide_password=False))
    tiny = ["train", "--backbone", "none", "--steps", "2", "--val-every", "1", "--dim", "8",
            "--no-activate", "--no-progress"]
    r = CliRunner().invoke(cli, [*tiny, "--name", "m1", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["suspect_pages"] == {"Eclipse": "an open homonym finding"}
    r = CliRunner().invoke(cli, [*tiny, "--name", "m2"])
    assert r.exit_code == 0, r.output
    assert "1 page(s) left out of training as likely homonyms" in r.output
    assert "  Eclipse: an open homonym finding" in r.output
    r = CliRunner().invoke(cli, [*tiny, "--name", "m3", "--leave-out", "none", "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["suspect_pages"] == {}
