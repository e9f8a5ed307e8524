"""Bad input never aborts a run or costs another file (issue 13, docs/reliability.md "Bad input").

Tags are cleaned the same way on SQLite and PostgreSQL (NUL removed, control characters escaped,
over-long values cut to their column, out-of-range numbers dropped) with the originals kept in
``tracks.raw_tags`` and a per-file warning in the run report; valid audio that the front-end once
rejected is accepted; broken files are rejected with the reason that is true. The fault folder
(tests/faults.py) holds every kind at once.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from audiofiles import write_audio
from faults import INT32_OVER, INT64_OVER, beeps, write_fault_folder
from sqlalchemy import func, select, text

from artdb.core.config import Paths
from artdb.core.errors import AudioError
from artdb.core.features.frontend.config import FrontendConfig
from artdb.core.features.frontend.decode import decode_excerpts
from artdb.core.ingest import IngestOptions, ingest
from artdb.core.ingest.analyze import probe_audio
from artdb.core.ingest.service import index_catalog
from artdb.core.ingest.tags import TrackTags, clean_text
from artdb.db.models import IngestFile, IngestRun, Track


def _tracks(catalog) -> dict[str, Track]:
    with catalog.session() as s:
        rows = s.scalars(select(Track)).all()
        for t in rows:  # load what the assertions read
            _ = t.album.page.display_name, t.album.genre, t.album.label, [c.page for c in t.credits]
    return {Path(t.audio_path).name: t for t in rows}


# --- cleaning, as a function --------------------------------------------------------------------
def test_clean_text_removes_nul_escapes_controls_and_cuts_to_the_column():
    assert clean_text("A\x00B") == ("AB", ["1 NUL byte(s) removed"])
    assert clean_text(" Tab\tend\x01\n") == ("Tab\\tend\\x01", ["2 control character(s) escaped"])
    assert clean_text("x" * 12, 10) == ("x" * 9 + "…", ["12 characters cut to 10"])
    assert clean_text("bad \ud800 half") == ("bad \ufffd half",
                                              ["1 invalid code point(s) replaced by U+FFFD"])
    assert clean_text("Björk – Jóga") == ("Björk – Jóga", [])


def test_tag_numbers_beyond_the_integer_columns_are_dropped_with_a_warning():
    tags = TrackTags().merged({"track_number": str(INT32_OVER), "disc_number": "9" * 5000,
                               "title": "ok"})
    assert tags.track_number is None and tags.disc_number is None and tags.title == "ok"
    assert tags.raw == {"track_number": str(INT32_OVER), "disc_number": "9" * 5000}
    assert "2147483648 is out of range" in tags.warnings["track_number"]
    assert "(5000 digits) is out of range" in tags.warnings["disc_number"]
    assert TrackTags().merged({"track_number": str(2**31 - 1)}).track_number == 2**31 - 1
    # a manifest value replaces a bad tag, and its warning with it
    fixed = tags.merged({"track_number": "7"})
    assert fixed.track_number == 7 and "track_number" not in fixed.warnings | fixed.raw


# --- the catalog, on both back-ends ---------------------------------------------------------------
def test_nul_byte_in_one_file_aborts_nothing(catalog, tmp_path):
    """Was: on PostgreSQL one NUL byte -> traceback, run failed, 0 of 5 tracks ingested."""
    root = tmp_path / "lib"
    for i in range(4):
        write_audio(root / f"{i}.flac", seconds=0.5, seed=i, artist="Fine", album="A", title=f"T{i}")
    write_audio(root / "nul.flac", seconds=0.5, seed=9, artist="Nul\x00Band", album="A\x00", title="N")
    summary = ingest(catalog, root, IngestOptions(workers=1))
    assert summary.status == "done" and summary.counts == {"added": 5}, summary.errors
    tracks = _tracks(catalog)
    nul = tracks["nul.flac"]
    assert nul.album.page.display_name == "NulBand" and nul.album.title == "A"
    assert nul.raw_tags == {"artist": "Nul\x00Band", "album": "A\x00"}  # the original, in full
    assert all(t.raw_tags is None for name, t in tracks.items() if name != "nul.flac")
    [(path, warning)] = summary.warnings
    assert path.endswith("nul.flac") and warning.startswith("artist: 1 NUL byte(s) removed; album:")
    with catalog.session() as s:
        recorded = s.scalars(select(IngestFile.warning).where(IngestFile.run_id == summary.run_id,
                                                               IngestFile.warning.is_not(None))).all()
        assert recorded == [warning]
    assert ingest(catalog, root, IngestOptions(workers=1)).counts == {"unchanged": 5}


def test_integer_tags_out_of_range_become_null(catalog, tmp_path):
    """Was: track number >= 2**31 (PostgreSQL) or >= 2**63 (SQLite) aborted the run, also from a
    manifest."""
    root = tmp_path / "lib"
    write_audio(root / "a.flac", seconds=0.5, seed=1, artist="C", album="N", title="a",
                tracknumber=str(INT32_OVER))
    write_audio(root / "b.ogg", seconds=0.5, seed=2, artist="C", album="N", title="b",
                tracknumber=str(INT64_OVER), discnumber=str(INT64_OVER * 10))
    write_audio(root / "c.wav", seconds=0.5, seed=3)
    write_audio(root / "d.flac", seconds=0.5, seed=4, artist="C", album="N", title="d", tracknumber="12")
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"path,artist,track_number,disc_number\nc.wav,C,{INT64_OVER + 1},{INT32_OVER}\n")
    summary = ingest(catalog, root, IngestOptions(workers=1, manifest=manifest))
    assert summary.status == "done" and summary.counts == {"added": 4}, summary.errors
    tracks = _tracks(catalog)
    assert {n: (t.track_number, t.disc_number) for n, t in tracks.items()} == {
        "a.flac": (None, None), "b.ogg": (None, None), "c.wav": (None, None), "d.flac": (12, None)}
    assert tracks["c.wav"].raw_tags == {"track_number": str(INT64_OVER + 1), "disc_number": str(INT32_OVER)}
    warned = {Path(p).name for p, _ in summary.warnings}
    assert warned == {"a.flac", "b.ogg", "c.wav"}


def test_jsonl_manifest_with_nul_and_a_lone_surrogate(catalog, tmp_path):
    root = tmp_path / "lib"
    write_audio(root / "x.flac", seconds=0.5, seed=5)
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"path": "x.flac", "artist": "Half \ud800 Pair",
                                    "title": "Zero\u0000Width", "label": "\u0000"}) + "\n")
    summary = ingest(catalog, root, IngestOptions(workers=1, manifest=manifest))
    assert summary.counts == {"added": 1}, summary.errors
    t = _tracks(catalog)["x.flac"]
    assert (t.album.page.display_name, t.title, t.album.label) == ("Half \ufffd Pair", "ZeroWidth", None)
    assert t.raw_tags == {"artist": "Half \ud800 Pair", "title": "Zero\x00Width", "label": "\x00"}


def test_a_row_the_catalog_refuses_costs_only_its_file(catalog, tmp_path):
    """Whatever cleaning does not foresee: the database refuses one file's row (here a constraint
    the test adds) -> that file is an error with the database's reason; the rest of its batch is
    catalogued and the run is done."""
    with catalog.engine.begin() as conn:
        if catalog.engine.dialect.name == "postgresql":
            conn.execute(text("ALTER TABLE tracks ADD CONSTRAINT no_poison CHECK (title <> 'poison')"))
        else:
            conn.execute(text("CREATE TRIGGER no_poison BEFORE INSERT ON tracks WHEN NEW.title = 'poison' "
                              "BEGIN SELECT RAISE(ABORT, 'no_poison'); END"))
    root = tmp_path / "lib"
    for i, title in enumerate(["one", "two", "poison", "four"]):
        write_audio(root / f"{i}.flac", seconds=0.5, seed=i, artist=f"P{i % 2}", album="A", title=title)
    summary = ingest(catalog, root, IngestOptions(workers=1))
    assert summary.status == "done" and summary.counts == {"added": 3, "error": 1}
    [(path, reason)] = summary.errors
    assert path.endswith("2.flac") and reason.startswith("the catalog refused its row:")
    assert "no_poison" in reason
    assert {t.title for t in _tracks(catalog).values()} == {"one", "two", "four"}
    with catalog.session() as s:
        assert s.scalar(select(func.count()).select_from(IngestFile)) == 4


# --- audio ----------------------------------------------------------------------------------------
def test_beeps_and_silence_are_decoded_deliberately(tmp_path):
    """Was: "decoding failed: shapes (...,6) and (...,6) not aligned" for both."""
    import soundfile as sf

    config = FrontendConfig()
    sf.write(tmp_path / "beeps.wav", beeps(30.0), 22050)
    x = decode_excerpts(tmp_path / "beeps.wav", config)
    assert x.shape == (config.excerpts_per_track, config.excerpt_samples) and np.abs(x).max() > 0.1
    sf.write(tmp_path / "silent.wav", np.zeros(22050 * 5, np.float32), 22050)
    with pytest.raises(AudioError, match=r"track is silent \(RMS below -60 dBFS\)"):
        decode_excerpts(tmp_path / "silent.wav", config)


def test_garbage_mp3_is_not_blamed_on_ffmpeg(tmp_path):
    root = tmp_path / "f"
    ff = write_fault_folder(root)
    with pytest.raises(ValueError) as err:
        probe_audio(str(root / "bad" / "garbage.mp3"))
    assert str(err.value) == ("not decodable audio: libsndfile cannot decode this MP3 file "
                              "(format not recognised)")
    with pytest.raises(ValueError, match="truncated or corrupt: cannot read its last frames"):
        probe_audio(str(root / "bad" / "corrupt.mp3"))
    with pytest.raises(ValueError) as err:
        probe_audio(str(root / "bad" / "third.wav"))
    assert str(err.value) == ff.errors["bad/third.wav"]


# --- the fault folder -----------------------------------------------------------------------------
def _outcomes(catalog, run_id: int, root: Path) -> dict[str, tuple[str, str | None]]:
    with catalog.session() as s:
        rows = s.execute(select(IngestFile.path, IngestFile.outcome, IngestFile.reason)
                         .where(IngestFile.run_id == run_id)).all()
    return {p[len(str(root.resolve())) + 1:]: (o, r) for p, o, r in rows}


def test_fault_folder(catalog, tmp_path):
    """Every kind of bad input at once, with features (what `artdb index` does): every good track
    catalogued with its cleaned values, every bad file reported with its reason, the duplicate
    named, a rerun adds nothing. Exact expectations, so SQLite and PostgreSQL agree."""
    root = tmp_path / "faults"
    ff = write_fault_folder(root)
    paths = Paths.from_home(tmp_path / "home")
    options = IngestOptions(workers=2, manifest=ff.manifest, batch_size=8)
    summary = index_catalog(catalog, paths, root, options)
    assert summary.status == "done"
    assert summary.counts == ff.expected_counts(), summary.errors

    outcomes = _outcomes(catalog, summary.run_id, root)
    assert {p for p, (o, _) in outcomes.items() if o == "added"} == set(ff.good)
    errors = {p: r for p, (o, r) in outcomes.items() if o == "error"}
    assert set(errors) == set(ff.errors), errors
    for path, reason_part in ff.errors.items():
        assert reason_part in errors[path], (path, errors[path])
        assert "ffmpeg" not in errors[path] and "\n" not in errors[path]
    assert {p: r for p, (o, r) in outcomes.items() if o == "duplicate"} == {
        p: f"same audio content as {root.resolve() / other}" for p, other in ff.duplicates.items()}

    by_path = {t.audio_path[len(str(root.resolve())) + 1:]: t for t in _tracks(catalog).values()}
    assert set(by_path) == set(ff.good)
    for path, want in ff.good.items():
        t = by_path[path]
        got = (t.album.page.display_name, t.album.title, t.title, t.track_number, t.disc_number,
               t.album.genre.name if t.album.genre else None, t.album.label.name if t.album.label else None,
               t.album.upc, frozenset(t.raw_tags or ()))
        assert got == (want.artist, want.album, want.title, want.track_number, want.disc_number,
                       want.genre, want.label, want.upc, want.raw_fields), path
    warned = {p[len(str(root.resolve())) + 1:] for p, _ in summary.warnings}
    assert warned == {p for p, g in ff.good.items() if g.raw_fields}
    assert by_path["tags/long.flac"].raw_tags["title"] == "C" * 700

    with catalog.session() as s:
        assert s.get(IngestRun, summary.run_id).status == "done"
    again = index_catalog(catalog, paths, root, options)
    assert again.counts == {"unchanged": len(ff.good), "error": len(ff.errors),
                            "duplicate": len(ff.duplicates)}
    assert set(_tracks(catalog)) == {Path(p).name for p in ff.good}
