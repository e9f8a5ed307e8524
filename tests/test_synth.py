"""The synthetic catalog generator: determinism, tags, truth invariants, CLI."""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from dataclasses import replace

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from artdb.core.errors import ConfigError
from artdb.core.synth import CatalogTruth, SynthConfig, generate_catalog, plan_catalog, read_tags
from artdb.core.synth.names import name_key

TINY = SynthConfig(artists=7, albums_per_artist=2.3, tracks_per_album=2, seconds=2.0, genres=3,
                   homonym_groups=2, synonym_pairs=2, seed=11, workers=1)


def audio_digest(root, truth: CatalogTruth) -> str:
    h = hashlib.sha256()
    for track in sorted(truth.tracks, key=lambda t: t.path):
        data, sr = sf.read(str(root / track.path), dtype="int16")
        h.update(track.path.encode())
        h.update(str(sr).encode())
        h.update(data.tobytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("catalogue-é")
    return root, generate_catalog(root, TINY)


def test_same_seed_same_catalog_and_workers_do_not_matter(tiny, tmp_path):
    root, truth = tiny
    again = generate_catalog(tmp_path / "again", replace(TINY, workers=2))
    assert again.to_dict() == truth.to_dict()
    assert audio_digest(tmp_path / "again", again) == audio_digest(root, truth)


def test_different_seed_differs(tiny):
    _, truth = tiny
    other, _ = plan_catalog(replace(TINY, seed=12))
    assert [a.name for a in other.artists] != [a.name for a in truth.artists]


def test_different_seed_different_audio(tmp_path):
    small = replace(TINY, artists=2, homonym_groups=0, synonym_pairs=0, genres=1,
                    albums_per_artist=1, tracks_per_album=1)
    a = generate_catalog(tmp_path / "a", small)
    b = generate_catalog(tmp_path / "b", replace(small, seed=99))
    da, _ = sf.read(str(tmp_path / "a" / a.tracks[0].path))
    db, _ = sf.read(str(tmp_path / "b" / b.tracks[0].path))
    assert da.shape != db.shape or not np.allclose(da, db)


def test_files_decode_and_tags_match_truth(tiny):
    root, truth = tiny
    albums = {a.id: a for a in truth.albums}
    codecs = set()
    for track in truth.tracks:
        album = albums[track.album_id]
        path = root / track.path
        assert path.suffix == "." + album.codec
        codecs.add(album.codec)
        data, sr = sf.read(str(path))
        assert sr == album.sample_rate
        assert abs(len(data) / sr - track.duration) < 0.06
        assert np.isfinite(data).all() and 0.01 < np.abs(data).max() <= 1.0
        tags = read_tags(path)
        assert tags["artist"] == tags["albumartist"] == track.page_name == album.page_name
        assert tags["album"] == album.title
        assert tags["title"] == track.title
        assert tags["genre"] == album.genre
        # Tags the metadata confounds left out are absent; the others are the truth's.
        for key, want in (("date", str(album.year)), ("isrc", track.isrc), ("label", album.label)):
            assert tags.get(key) == (None if key in album.missing else want), (key, album.id)
        assert tags["tracknumber"].split("/")[0] == str(track.number)
        assert tags["discnumber"].split("/")[0] == "1"
        assert track.path.split("/")[0].casefold() == track.page_name.casefold().replace("/", "-")
    assert len(codecs) >= 2
    assert len({t.isrc for t in truth.tracks}) == len(truth.tracks)


def test_truth_json_round_trips(tiny):
    root, truth = tiny
    loaded = CatalogTruth.load(root)
    assert loaded.to_dict() == truth.to_dict()
    raw = json.loads((root / "truth.json").read_text(encoding="utf-8"))
    for key in ("config", "seed", "genres", "artists", "albums", "tracks", "homonym_groups",
                "synonym_pairs"):
        assert key in raw


def _check_invariants(truth: CatalogTruth) -> None:
    artists = {a.id: a for a in truth.artists}
    page_artists = defaultdict(set)
    for album in truth.albums:
        page_artists[album.page_name].add(album.artist_id)
    # homonym pages: 2-4 true artists, and they are the only pages with more than one
    planted = {h.page_name for h in truth.homonym_groups}
    for h in truth.homonym_groups:
        assert 2 <= len(h.artist_ids) <= 4
        assert page_artists[h.page_name] == set(h.artist_ids)
    for page, ids in page_artists.items():
        assert (len(ids) > 1) == (page in planted), page
    # synonym pairs: one true artist, two pages
    for s in truth.synonym_pairs:
        a, b = s.names
        assert a != b
        assert {al.page_name for al in truth.albums if al.artist_id == s.artist_id} == {a, b}
        assert set(artists[s.artist_id].names_used) == {a, b}
        assert (name_key(a) == name_key(b)) == (s.kind == "variant")
    # accidental synonyms are absent: distinct artists outside a homonym group have distinct keys
    keys = defaultdict(set)
    for album in truth.albums:
        keys[name_key(album.page_name)].add(album.artist_id)
    for key, ids in keys.items():
        assert len(ids) == 1 or any(set(h.artist_ids) == ids for h in truth.homonym_groups), key
    # every artist has >= 2 albums (the mean is >= 2); genres and palettes
    per_artist = defaultdict(int)
    for album in truth.albums:
        per_artist[album.artist_id] += 1
        assert album.genre == artists[album.artist_id].genre
    assert min(per_artist.values()) >= 2
    for artist in truth.artists:
        assert set(artist.instruments) <= set(truth.palettes[artist.genre])
    # tracks point at albums of their artist
    albums = {a.id: a for a in truth.albums}
    for t in truth.tracks:
        assert albums[t.album_id].artist_id == t.artist_id
        assert albums[t.album_id].page_name == t.page_name


def test_truth_invariants_tiny(tiny):
    _check_invariants(tiny[1])


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_truth_invariants_default_plans(seed):
    truth, jobs = plan_catalog(replace(SynthConfig(), seed=seed))
    _check_invariants(truth)
    assert len(jobs) == len(truth.tracks)
    counts = sorted(
        sum(1 for al in truth.albums if al.artist_id == a.id) for a in truth.artists)
    assert counts[-1] >= 2 * counts[0]  # unbalanced: a few prolific artists, a long tail
    assert {h.page_name for h in truth.homonym_groups}.isdisjoint(
        {n for s in truth.synonym_pairs for n in s.names})


def test_same_genre_artists_share_the_palette():
    truth, jobs = plan_catalog(replace(SynthConfig(), seed=5))
    by_genre = defaultdict(set)
    for a in truth.artists:
        by_genre[a.genre].update(a.instruments)
    for genre, used in by_genre.items():
        assert used <= set(truth.palettes[genre])
    # palettes of different genres are different instruments; artists of a genre share them
    sets = [set(p) for p in truth.palettes.values()]
    assert all(a.isdisjoint(b) for i, a in enumerate(sets) for b in sets[i + 1:])
    pairs_sharing = [(a.id, b.id) for a in truth.artists for b in truth.artists
                     if a.id < b.id and a.genre == b.genre
                     and set(a.instruments) & set(b.instruments)]
    assert pairs_sharing


def test_bad_config_is_refused(tmp_path):
    with pytest.raises(ConfigError):
        generate_catalog(tmp_path, replace(TINY, homonym_groups=4, synonym_pairs=0))
    with pytest.raises(ConfigError):
        generate_catalog(tmp_path, replace(TINY, difficulty=2.0))
    (tmp_path / "x").write_text("occupied")
    with pytest.raises(ConfigError):
        generate_catalog(tmp_path, TINY)


def test_cli_writes_truth(tmp_path):
    from artdb.cli.main import cli

    out = tmp_path / "cat"
    result = CliRunner().invoke(cli, [
        "synth", str(out), "--artists", "4", "--albums-per-artist", "2", "--tracks-per-album",
        "1", "--seconds", "2", "--genres", "2", "--homonym-groups", "1", "--synonym-pairs", "1",
        "--seed", "3", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["tracks"] == 8 and summary["homonym_groups"] == 1
    truth = CatalogTruth.load(out)
    assert len(truth.tracks) == 8
    again = CliRunner().invoke(cli, ["synth", str(out), "--artists", "4", "--homonym-groups",
                                     "1", "--synonym-pairs", "1"])
    assert again.exit_code != 0 and "not empty" in again.output
