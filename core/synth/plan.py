"""Plan a catalog without rendering a sample: genres, artist identities, albums, tracks, names.

The plan is drawn from one ``Generator`` in a fixed order, so it depends only on the config; audio is
rendered afterwards, one job per track, each with its own seed derived from (seed, track id), so the
audio does not depend on the number of workers or on the order in which jobs run.
"""

from __future__ import annotations

import copy
import zlib
from dataclasses import dataclass

import numpy as np

import artdb.core.synth.names as nm
from artdb.core.synth.config import GENRE_BANK, SynthConfig
from artdb.core.synth.truth import (
    AlbumTruth,
    ArtistTruth,
    CatalogTruth,
    HomonymGroup,
    SynonymPair,
    TrackTruth,
)

N_HARM = 24
KEYS = ["C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"]
MODES = {
    "major": [0, 2, 4, 5, 7, 9, 11],
    "minor": [0, 2, 3, 5, 7, 8, 10],
    "dorian": [0, 2, 3, 5, 7, 9, 10],
    "mixolydian": [0, 2, 4, 5, 7, 9, 10],
}
# Chord progressions as scale degrees (0-based), one chord per bar.
PROGRESSIONS = [
    [0, 4, 5, 3], [0, 5, 3, 4], [5, 3, 0, 4], [0, 3, 4, 4], [1, 4, 0, 0], [0, 0, 3, 4],
    [0, 6, 5, 4], [0, 3, 0, 4], [5, 4, 3, 4], [0, 2, 3, 4], [3, 4, 0, 5], [0, 4, 3, 3],
]

COUNTRIES = ["GB", "US", "DE", "FR", "SE", "JP", "BR", "NL", "CA", "IT"]
_VOWELS = {  # F1, F2, F3 (Hz) of an adult voice
    "a": (800, 1200, 2500), "e": (450, 1900, 2550), "i": (300, 2250, 2950),
    "o": (500, 900, 2400), "u": (340, 800, 2300),
}


@dataclass
class TrackJob:
    """Everything one worker needs to render and write one file."""

    track_id: str
    path: str  # relative to the output folder
    seed: tuple[int, int]
    seconds: float
    synth_rate: int
    sample_rate: int
    codec: str
    quality: float
    artist: dict  # the artist's parameters as drifted for this album
    production: dict
    tags: dict


def track_seed(seed: int, track_id: str) -> tuple[int, int]:
    """The per-track seed: a pure function of the catalog seed and the track's id."""
    return (int(seed), zlib.crc32(track_id.encode("utf-8")))


def difficulty_params(d: float) -> dict:
    """What the single ``difficulty`` knob sets (documented in docs/synth.md)."""
    return {
        "artist_spread": 0.75 - 0.45 * d,   # log-sd of artist timbre around its genre prototype
        "album_drift": 0.04 + 0.30 * d,     # log-sd of album-to-album drift of artist parameters
        "production": 0.2 + 0.8 * d,        # scale of album production variation
        "homonym_same_genre": 0.3 + 0.7 * d,  # chance a homonym partner shares the genre
    }


# ---------------------------------------------------------------------------------------------
# instruments

def _harmonics(rng, rolloff, odd_boost) -> np.ndarray:
    k = np.arange(1, N_HARM + 1)
    h = k ** (-rolloff) * np.where(k % 2 == 1, 1.0, 1.0 / odd_boost)
    return h * np.exp(rng.normal(0, 0.35, N_HARM))


def _instrument(rng, genre: str, role: str, fm_share: float, idx: int) -> dict:
    kind = "fm" if rng.random() < fm_share else "wave"
    sustained = role == "chords" and rng.random() < 0.6
    inst = {
        "name": f"{genre}/{role}-{kind}-{idx}",
        "kind": kind,
        "role": role,
        "harm": _harmonics(rng, rng.uniform(0.6, 2.0), rng.uniform(0.7, 4.0)),
        "phases": rng.uniform(0, 2 * np.pi, N_HARM),
        "damp": rng.uniform(0.05, 0.6),
        "bright_tau": rng.uniform(0.05, 0.8),
        "attack": rng.uniform(0.05, 0.4) if sustained else rng.uniform(0.002, 0.03),
        "decay": rng.uniform(0.1, 1.2),
        "sustain": rng.uniform(0.4, 0.9) if sustained else rng.uniform(0.0, 0.6),
        "release": rng.uniform(0.03, 0.4),
        "vib_rate": rng.uniform(3.5, 7.0),
        "vib_depth": rng.choice([0.0, rng.uniform(0.001, 0.006)]),
        "ratio": float(rng.choice([0.5, 1.0, 2.0, 3.0, 3.5, 1.41, 4.0])),
        "index": rng.uniform(0.5, 5.0),
        "index_floor": rng.uniform(0.05, 0.6),
        "index_tau": rng.uniform(0.05, 0.6),
        "detune": rng.uniform(0.0, 0.004),
    }
    return inst


def perturb_instrument(inst: dict, s: float, rng) -> dict:
    """A copy of ``inst`` moved by a log-normal step of size ``s`` (artist identity, album drift)."""
    out = copy.deepcopy(inst)
    k = np.arange(1, N_HARM + 1)
    out["harm"] = out["harm"] * np.exp(rng.normal(0, s, N_HARM)) * k ** rng.normal(0, 0.5 * s)
    for key in ("damp", "bright_tau", "attack", "decay", "release", "index", "index_tau"):
        out[key] = float(out[key] * np.exp(rng.normal(0, s)))
    out["sustain"] = float(np.clip(out["sustain"] + rng.normal(0, 0.3 * s), 0.0, 1.0))
    out["vib_rate"] = float(out["vib_rate"] * np.exp(rng.normal(0, 0.3 * s)))
    out["vib_depth"] = float(out["vib_depth"] * np.exp(rng.normal(0, s)))
    out["detune"] = float(abs(out["detune"] + rng.normal(0, 0.002 * s)))
    return out


def _singer(rng) -> dict:
    return {
        "formant_scale": rng.uniform(0.82, 1.22),  # vocal-tract length
        "tilt": rng.uniform(0.6, 1.6),  # source spectral slope
        "vib_rate": rng.uniform(4.5, 6.5),
        "vib_depth": rng.uniform(0.008, 0.03),
        "breath": rng.uniform(0.0, 0.12),
        "vowels": list(rng.choice(list(_VOWELS), size=3, replace=False)),
        "bandwidth": rng.uniform(60, 140),
    }


def _drum_kit(rng) -> dict:
    return {
        "kick_f0": rng.uniform(45, 75), "kick_sweep": rng.uniform(60, 200),
        "kick_decay": rng.uniform(0.12, 0.4), "snare_f": rng.uniform(160, 260),
        "snare_noise_lo": rng.uniform(800, 2500), "snare_decay": rng.uniform(0.08, 0.25),
        "snare_tone": rng.uniform(0.2, 0.8), "hat_lo": rng.uniform(5000, 8000),
        "hat_decay": rng.uniform(0.02, 0.12), "level": rng.uniform(0.5, 1.0),
    }


def _drum_pattern(rng) -> dict:
    kick = np.zeros(16)
    kick[[0, 8]] = 0.95
    kick[rng.choice(16, 3, replace=False)] += rng.uniform(0.2, 0.7, 3)
    snare = np.zeros(16)
    snare[[4, 12]] = 0.9
    snare[rng.choice(16, 2, replace=False)] += rng.uniform(0.1, 0.4, 2)
    hat = np.full(16, rng.uniform(0.3, 0.9))
    hat[::2] = 0.95
    return {"kick": np.clip(kick, 0, 1), "snare": np.clip(snare, 0, 1), "hat": np.clip(hat, 0, 1)}


def _genre(rng, gi: int) -> dict:
    name, tempo, drums, swing, fm_share, mode_w, density, octave = GENRE_BANK[gi]
    palette = {
        role: [_instrument(rng, name, role, fm_share, i) for i in range(n)]
        for role, n in (("lead", 3), ("bass", 2), ("chords", 3))
    }
    return {
        "name": name, "tempo": tempo, "drums": drums, "swing": swing, "mode_w": mode_w,
        "density": density, "octave": octave, "palette": palette,
        "kit": _drum_kit(rng), "pattern": _drum_pattern(rng),
        "lead_rhythm": rng.uniform(0.05, 1.0, 16) ** 1.5,
        "progs": list(rng.choice(len(PROGRESSIONS), size=4, replace=False)),
        "singer_p": float(rng.uniform(0.2, 0.7)),
        "labels": [nm.label_name(rng) for _ in range(3)],
    }


def _artist(rng, genre: dict, spread: float) -> dict:
    pal = genre["palette"]
    inst = {
        role: perturb_instrument(pal[role][int(rng.integers(len(pal[role])))], spread, rng)
        for role in ("lead", "bass", "chords")
    }
    lo, hi = genre["tempo"]
    drums = rng.random() < genre["drums"]
    pattern = {k: np.clip(v + rng.normal(0, 0.25 * spread, 16), 0, 1)
               for k, v in genre["pattern"].items()}
    kit = {k: float(v * np.exp(rng.normal(0, 0.5 * spread))) for k, v in genre["kit"].items()}
    mode = str(rng.choice(list(MODES), p=genre["mode_w"]))
    lead_rhythm = np.clip(genre["lead_rhythm"] * np.exp(rng.normal(0, spread, 16)), 0.0, 1.0)
    lead_rhythm *= genre["density"] * np.exp(rng.normal(0, 0.3 * spread)) / lead_rhythm.sum()
    progs = list(genre["progs"][:2]) + [int(rng.integers(len(PROGRESSIONS)))]
    bass_rhythm = rng.random(16) < rng.uniform(0.1, 0.45)
    bass_rhythm[0] = True
    return {
        **inst,
        "singer": _singer(rng) if rng.random() < genre["singer_p"] else None,
        "tempo": float(rng.uniform(lo, hi)),
        "root": int(rng.integers(12)),
        "mode": mode,
        "progs": [int(p) for p in rng.choice(progs, size=2, replace=False)],
        "lead_rhythm": np.clip(lead_rhythm, 0.0, 0.98),
        "bass_rhythm": bass_rhythm,
        "chord_hits": [int(x) for x in sorted(
            {0, *rng.choice([4, 6, 8, 10, 12], int(rng.integers(0, 3)), replace=False)})],
        "step_prob": float(rng.uniform(0.45, 0.9)),
        "lead_octave": int(genre["octave"] + rng.integers(-1, 2)),
        "drums": drums,
        "kit": kit,
        "pattern": pattern,
        "swing": float(np.clip(genre["swing"] + rng.normal(0, 0.05), 0, 0.4)),
        "levels": {r: float(np.exp(rng.normal(0, 0.35))) for r in ("lead", "bass", "chords", "drums")},
    }


def _drift_artist(artist: dict, s: float, rng) -> dict:
    out = dict(artist)
    for role in ("lead", "bass", "chords"):
        out[role] = perturb_instrument(artist[role], s, rng)
    out["tempo"] = float(artist["tempo"] * np.exp(rng.normal(0, 0.25 * s)))
    out["levels"] = {k: float(v * np.exp(rng.normal(0, s))) for k, v in artist["levels"].items()}
    out["kit"] = {k: float(v * np.exp(rng.normal(0, 0.3 * s))) for k, v in artist["kit"].items()}
    out["transpose"] = int(rng.choice([0, 0, 0, -2, 2, 5, -5])) if rng.random() < s * 2 else 0
    if artist["singer"] is not None:
        sg = dict(artist["singer"])
        sg["formant_scale"] = float(sg["formant_scale"] * np.exp(rng.normal(0, 0.1 * s)))
        out["singer"] = sg
    return out


def _production(rng, p: float) -> dict:
    """Album production; ``p`` scales how far it strays from a neutral mix."""
    return {
        "tilt_db_oct": float(rng.normal(0, 2.0 * p)),
        "low_cut": float(np.exp(rng.uniform(np.log(20), np.log(20 + 180 * p)))),
        "high_cut": float(rng.uniform(11000 - 7000 * p, 11025)),
        "reverb_rt60": float(rng.uniform(0.2, 0.4 + 2.2 * p)),
        "reverb_wet": float(rng.uniform(0.0, 0.1 + 0.4 * p)),
        "comp_thresh_db": float(rng.uniform(-6 - 20 * p, -6)),
        "comp_ratio": float(rng.uniform(1.0, 1.0 + 7 * p)),
        "drive": float(rng.uniform(0.0, 3.0 * p)),
        "loudness_db": float(rng.uniform(-22, -10)),
        "noise_db": float(rng.uniform(-90, -90 + 40 * p)),
    }


def _album_counts(rng, n: int, mean: float) -> np.ndarray:
    base = 2 if mean >= 2 else 1
    counts = np.full(n, base)
    extra = int(round(n * (mean - base)))
    if extra > 0:
        w = rng.lognormal(0.0, 1.0, n)
        counts += rng.multinomial(extra, w / w.sum())
    return counts


# ---------------------------------------------------------------------------------------------
# metadata confounds (their own random stream: the audio of a seed is what it was without them)

def _label_careers(mrng, config: SynthConfig, genres: list[dict], genre_of, counts,
                   homonyms: list[list[int]]) -> list[list[str]]:
    """The label of each album of each artist.

    An artist starts on a label of its genre and, before each later album, moves to another with
    probability ``label_change``. A homonym (after the first member of its group) shares a label
    of an earlier namesake with probability ``homonym_shared_label``; otherwise it keeps to labels
    no earlier namesake used (a new label when its genre has none left), also when it moves.
    """
    group_of = {a: members for members in homonyms for a in members}
    careers: list[list[str]] = [[] for _ in range(len(genre_of))]

    def pick(options: list[str]) -> str:
        return options[int(mrng.integers(len(options)))] if options else nm.label_name(mrng)

    order = [a for members in homonyms for a in members]
    order += [a for a in range(len(genre_of)) if a not in group_of]
    for a in order:
        pool = list(genres[genre_of[a]]["labels"])
        earlier = group_of.get(a, [a])[: group_of.get(a, [a]).index(a)]
        taken = sorted({lab for b in earlier for lab in careers[b]})
        shared = bool(taken) and mrng.random() < config.homonym_shared_label
        allowed = pool if not taken else [lab for lab in pool if lab not in taken]
        current = pick(taken) if shared else pick(allowed)
        career = [current]
        for _ in range(1, int(counts[a])):
            if mrng.random() < config.label_change:
                current = pick([lab for lab in allowed if lab != current])
            career.append(current)
        careers[a] = career
    return careers


def _isrc_registrant(mrng) -> tuple[str, str]:
    return (COUNTRIES[int(mrng.integers(len(COUNTRIES)))],
            "".join(mrng.choice(list("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"), 3)))


# ---------------------------------------------------------------------------------------------
# the catalog

def plan_catalog(config: SynthConfig) -> tuple[CatalogTruth, list[TrackJob]]:
    """The truth and the render jobs of a catalog; no audio is produced here."""
    config.validate()
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, 0x5EED]))
    dp = difficulty_params(config.difficulty)

    bank_order = rng.permutation(len(GENRE_BANK))[: config.genres]
    genres = [_genre(np.random.default_rng([config.seed, int(gi)]), int(gi)) for gi in bank_order]
    genre_names = [g["name"] for g in genres]

    n = config.artists
    genre_of = np.concatenate([np.arange(min(n, config.genres)),
                               rng.integers(config.genres, size=max(0, n - config.genres))])
    artists = [_artist(rng, genres[g], dp["artist_spread"]) for g in genre_of]
    counts = _album_counts(rng, n, config.albums_per_artist)

    # --- names: homonym groups share one name, every other artist gets its own
    free = list(rng.permutation(n))
    homonyms: list[list[int]] = []
    for _ in range(config.homonym_groups):
        size = int(rng.choice([2, 3, 4], p=[0.6, 0.3, 0.1]))
        remaining_groups = config.homonym_groups - len(homonyms) - 1
        size = min(size, len(free) - 2 * remaining_groups - config.synonym_pairs)
        first = free.pop(0)
        members = [first]
        for _ in range(size - 1):
            same = [a for a in free if genre_of[a] == genre_of[first]]
            pool = same if (same and rng.random() < dp["homonym_same_genre"]) else free
            pick = pool[int(rng.integers(len(pool)))]
            free.remove(pick)
            members.append(pick)
        homonyms.append(members)
    synonyms = free[: config.synonym_pairs]
    for a in synonyms:
        counts[a] = max(counts[a], 2)
    n_alias = int(round(config.synonym_pairs * config.alias_fraction))

    used_keys: set[str] = set()

    def fresh_name() -> str:
        while True:
            name = nm.artist_name(rng)
            if nm.name_key(name) not in used_keys:
                used_keys.add(nm.name_key(name))
                return name

    main_name = [""] * n
    for members in homonyms:
        name = fresh_name()
        for a in members:
            main_name[a] = name
    for a in range(n):
        if not main_name[a]:
            main_name[a] = fresh_name()

    # album index -> name the album is delivered under
    second_name: dict[int, tuple[str, str, list[int]]] = {}
    synonym_pairs: list[SynonymPair] = []
    for i, a in enumerate(synonyms):
        kind = "alias" if i < n_alias else "variant"
        other = fresh_name() if kind == "alias" else nm.variant_spelling(main_name[a], rng)
        k = max(1, int(counts[a]) // 2)
        moved = sorted(int(x) for x in rng.choice(int(counts[a]), size=k, replace=False))
        second_name[a] = (other, kind, moved)
        synonym_pairs.append(SynonymPair(f"A{a:03d}", [main_name[a], other], kind))

    # --- albums and tracks
    artist_truth: list[ArtistTruth] = []
    album_truth: list[AlbumTruth] = []
    track_truth: list[TrackTruth] = []
    jobs: list[TrackJob] = []
    used_titles: set[str] = set()
    mrng = np.random.default_rng(np.random.SeedSequence([config.seed, 0x7A65]))
    careers = _label_careers(mrng, config, genres, genre_of, counts, homonyms)
    label_codes: dict[str, tuple[str, str]] = {}  # ISRC registrants follow labels
    old_codes: set[str] = set()
    isrc_serial = 0
    for a in range(n):
        art, genre = artists[a], genres[genre_of[a]]
        aid = f"A{a:03d}"
        labels = list(rng.choice(genre["labels"], size=int(rng.integers(1, 3)), replace=False))
        year = int(rng.integers(1968, 2016))
        names_used: list[str] = []
        for j in range(int(counts[a])):
            page = main_name[a]
            if a in second_name and j in second_name[a][2]:
                page = second_name[a][0]
            if page not in names_used:
                names_used.append(page)
            while True:
                title = nm.album_title(rng)
                if title.casefold() not in used_titles:
                    used_titles.add(title.casefold())
                    break
            # The draws of the label and its registrant made before the careers existed are
            # kept (and their values unused), so that the audio of a seed stays what it was.
            old_label = str(labels[int(rng.integers(len(labels)))])
            if old_label not in old_codes:
                old_codes.add(old_label)
                _isrc_registrant(rng)
            label = careers[a][j]
            if label not in label_codes:
                label_codes[label] = _isrc_registrant(mrng)
            tagged_year = year
            if mrng.random() < config.reissue_fraction:
                tagged_year = min(2026, year + int(mrng.integers(5, 26)))
            missing = [k for k in ("label", "date", "isrc") if mrng.random() < config.missing_metadata]
            codec = str(config.codecs[int(rng.integers(len(config.codecs)))])
            sr = int(config.sample_rates[int(rng.integers(len(config.sample_rates)))])
            if codec == "mp3" and sr not in (22050, 24000, 32000, 44100, 48000, 16000):
                sr = 44100
            quality = float(rng.uniform(0.0, 0.7)) if codec in ("mp3", "ogg") else 0.0
            album_id = f"{aid}-L{j:02d}"
            album_truth.append(AlbumTruth(album_id, title, page, aid, genre["name"], label,
                                          tagged_year, codec, sr, round(quality, 3),
                                          year if tagged_year != year else None, missing))
            drifted = _drift_artist(art, dp["album_drift"], rng)
            production = _production(rng, dp["production"])
            n_tracks = int(config.tracks_per_album)
            if n_tracks >= 3:
                n_tracks += int(rng.integers(-1, 2))
            track_titles = set()
            for t in range(n_tracks):
                while True:
                    tt = nm.track_title(rng)
                    if tt not in track_titles:
                        track_titles.add(tt)
                        break
                country, reg = label_codes[label]
                isrc_serial += 1
                # the recording's ISRC keeps its first year, also on a reissue (as real ones do)
                isrc = f"{country}{reg}{year % 100:02d}{isrc_serial:05d}"
                track_id = f"{album_id}-T{t + 1:02d}"
                rel = (f"{nm.safe_path_part(page)}/{nm.safe_path_part(title)}/"
                       f"{t + 1:02d} {nm.safe_path_part(tt)}.{codec}")
                track_truth.append(TrackTruth(track_id, rel, aid, album_id, page, tt, isrc,
                                              float(config.seconds), t + 1, 1))
                tags = {"artist": page, "albumartist": page, "album": title, "title": tt,
                        "genre": genre["name"], "date": str(tagged_year), "isrc": isrc,
                        "label": label, "tracknumber": f"{t + 1}/{n_tracks}", "discnumber": "1/1"}
                for key in missing:
                    del tags[key]
                jobs.append(TrackJob(track_id, rel, track_seed(config.seed, track_id),
                                     float(config.seconds), config.synth_rate, sr, codec,
                                     quality, drifted, production, tags))
            year += int(rng.integers(1, 5))
        instruments = [art[r]["name"] for r in ("lead", "bass", "chords")]
        artist_truth.append(ArtistTruth(
            aid, main_name[a], genre["name"], names_used, instruments,
            art["singer"] is not None, round(art["tempo"], 1),
            f"{KEYS[art['root']]} {art['mode']}"))

    palettes = {g["name"]: [i["name"] for role in ("lead", "bass", "chords")
                            for i in g["palette"][role]] for g in genres}
    truth = CatalogTruth(
        config=config.to_dict(), seed=int(config.seed), genres=genre_names, palettes=palettes,
        artists=artist_truth, albums=album_truth, tracks=track_truth,
        homonym_groups=[HomonymGroup(main_name[m[0]], [f"A{a:03d}" for a in sorted(m)])
                        for m in homonyms],
        synonym_pairs=synonym_pairs,
    )
    return truth, jobs
