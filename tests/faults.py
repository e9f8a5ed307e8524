"""A reusable fault fixture: a folder of bad input of every kind artdb has met, beside good tracks.

``write_fault_folder(root)`` writes it and returns what a correct ingest must make of it: which
files are catalogued (and with which cleaned values), which are rejected and why, which duplicate
another, which are catalogued with a warning. The fault suite (tests/test_bad_input.py) ingests it
on SQLite and PostgreSQL; any test that needs a hostile catalog folder can use it.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
from audiofiles import write_audio, write_tags

INT32_OVER = 2**31  # one past PostgreSQL's integer
INT64_OVER = 2**63  # one past SQLite's integer


@dataclass
class Good:
    """What the catalog must hold for one good file (cleaned values)."""

    artist: str  # display name of the first credit's page
    album: str
    title: str
    track_number: int | None = None
    disc_number: int | None = None
    genre: str | None = None
    label: str | None = None
    upc: str | None = None
    raw_fields: frozenset[str] = frozenset()  # tags kept raw in tracks.raw_tags (and warned about)


@dataclass
class FaultFolder:
    root: Path
    manifest: Path  # pass as IngestOptions(manifest=...) / --manifest
    good: dict[str, Good] = field(default_factory=dict)  # relpath -> expected track
    errors: dict[str, str] = field(default_factory=dict)  # relpath -> part of the reason
    duplicates: dict[str, str] = field(default_factory=dict)  # relpath -> relpath it duplicates
    # errors only the audio front-end finds (ingest with features; without, these are catalogued)
    feature_errors: frozenset[str] = frozenset()

    def expected_counts(self, with_features: bool = True) -> dict[str, int]:
        errors = len(self.errors) - (0 if with_features else len(self.feature_errors))
        return {"added": len(self.good) + (0 if with_features else len(self.feature_errors)),
                "error": errors, "duplicate": len(self.duplicates)}


def beeps(seconds: float = 30.0, sr: int = 22050, every: float = 1.0, beep: float = 0.04) -> np.ndarray:
    """Short 1 kHz beeps in digital silence: most 50 ms blocks of any window are silent."""
    x = np.zeros(int(seconds * sr), np.float32)
    n = int(beep * sr)
    t = np.arange(n) / sr
    for start in np.arange(0.5, seconds, every):
        i = int(start * sr)
        x[i:i + n] = 0.5 * np.sin(2 * np.pi * 1000 * t)
    return x


def _write_wav(path: Path, x: np.ndarray, sr: int = 22050, **tags) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), x, sr, subtype="PCM_16")
    if tags:
        write_tags(path, **tags)
    return path


def write_fault_folder(root: Path, unreadable: bool | None = None) -> FaultFolder:
    """Write the fault folder under ``root``; ``unreadable`` adds a file without read permission
    (default: only when not root, since root reads it anyway)."""
    root.mkdir(parents=True, exist_ok=True)
    ff = FaultFolder(root=root, manifest=root / "manifest.csv")
    rng = np.random.default_rng(13)

    # --- good tracks, several containers, long enough for the front-end (>= 1 s) --------------
    for i, ext in enumerate((".flac", ".ogg", ".mp3", ".wav")):
        write_audio(root / "good" / f"{i:02d}{ext}", seconds=1.5, freq=220 + 110 * i, seed=i,
                    artist="Good Artist", album="Fine", title=f"Good {i}", tracknumber=str(i + 1))
        ff.good[f"good/{i:02d}{ext}"] = Good("Good Artist", "Fine", f"Good {i}", track_number=i + 1)
    # valid audio the front-end once rejected ("shapes (...,6) and (...,6) not aligned")
    _write_wav(root / "good" / "beeps.wav", beeps(), artist="Beeper", album="Signals", title="Beeps")
    ff.good["good/beeps.wav"] = Good("Beeper", "Signals", "Beeps")

    # --- tags a database refuses or that do not fit their columns -----------------------------
    write_audio(root / "tags" / "control.flac", seconds=1.5, seed=20, artist="Nul\x00Band",
                album="Tab\tAlbum\x01", title="Escape \x1b[31mred\n", genre="Noise\x00")
    ff.good["tags/control.flac"] = Good("NulBand", "Tab\\tAlbum\\x01", "Escape \\x1b[31mred", genre="Noise",
                                        raw_fields=frozenset({"artist", "album", "title", "genre"}))
    write_audio(root / "tags" / "long.flac", seconds=1.5, seed=21, artist="A" * 600, album="B" * 600,
                title="C" * 700, genre="G" * 250, label="L" * 350)
    write_tags(root / "tags" / "long.flac", barcode="0" * 40)
    ff.good["tags/long.flac"] = Good(
        "A" * 499 + "…", "B" * 499 + "…", "C" * 499 + "…", genre="G" * 199 + "…",
        label="L" * 299 + "…", upc="0" * 31 + "…",
        raw_fields=frozenset({"artist", "album", "title", "genre", "label", "upc"}))
    # fits its column, but its page key does not: case folding turns each "ß" into "ss"
    write_audio(root / "tags" / "eszett.flac", seconds=1.5, seed=22, artist="ß" * 300, album="Fold",
                title="Key")
    ff.good["tags/eszett.flac"] = Good("ß" * 300, "Fold", "Key")

    # --- integer tags beyond the catalog's integer columns -----------------------------------
    write_audio(root / "numbers" / "int32.flac", seconds=1.5, seed=30, artist="Counter", album="Big",
                title="Int32", tracknumber=str(INT32_OVER), discnumber="2")
    ff.good["numbers/int32.flac"] = Good("Counter", "Big", "Int32", None, 2,
                                         raw_fields=frozenset({"track_number"}))
    write_audio(root / "numbers" / "int64.ogg", seconds=1.5, seed=31, artist="Counter", album="Big",
                title="Int64", tracknumber=f"{INT64_OVER}/{INT64_OVER + 1}", discnumber=str(INT64_OVER))
    ff.good["numbers/int64.ogg"] = Good("Counter", "Big", "Int64", None, None,
                                        raw_fields=frozenset({"track_number", "disc_number"}))
    # from the manifest: an untagged file given everything by its row
    write_audio(root / "numbers" / "manifest.wav", seconds=1.5, seed=32)
    ff.manifest.write_text(
        "path,artist,album,title,track_number,disc_number\n"
        f"numbers/manifest.wav,Manifest Artist,Row\x00Album,From the manifest,{INT64_OVER + 1},"
        f"{INT32_OVER}\n", encoding="utf-8")
    ff.good["numbers/manifest.wav"] = Good(
        "Manifest Artist", "RowAlbum", "From the manifest", None, None,
        raw_fields=frozenset({"album", "track_number", "disc_number"}))

    # --- bad files: each rejected with its reason --------------------------------------------
    bad = root / "bad"
    bad.mkdir()
    (bad / "zero.flac").write_bytes(b"")
    ff.errors["bad/zero.flac"] = "empty file"
    full = write_audio(bad / "full.flac", seconds=3.0, seed=40, artist="T", album="T", title="T")
    data = full.read_bytes()
    (bad / "truncated.flac").write_bytes(data[: len(data) // 3])
    full.unlink()
    ff.errors["bad/truncated.flac"] = "truncated"
    # a WAV cut to a third: its header still promises 10 s
    full = write_audio(bad / "full.wav", seconds=10.0, seed=41, artist="T", album="T", title="T")
    data = full.read_bytes()
    (bad / "third.wav").write_bytes(data[: len(data) // 3])
    full.unlink()
    ff.errors["bad/third.wav"] = "truncated: file shorter than its header says: 3.3 s of 10.0 s"
    (bad / "notes.mp3").write_text("this is a text file, not an MP3\n" * 20)
    ff.errors["bad/notes.mp3"] = "not recognised as audio"
    # junk where the audio should start, real MPEG frames after it: mutagen finds a header,
    # libsndfile (which reads MP3) finds no audio — not a missing ffmpeg
    mp3 = write_audio(root / "tmp.mp3", seconds=3.0, seed=42, artist="M", album="M", title="M").read_bytes()
    first_frame = mp3.find(b"\xff\xfb")
    (bad / "garbage.mp3").write_bytes(rng.integers(0, 256, 70_000, dtype=np.uint8).tobytes()
                                      + mp3[first_frame:])
    ff.errors["bad/garbage.mp3"] = "not decodable audio"
    # a real MP3's start followed by noise bytes
    (bad / "corrupt.mp3").write_bytes(mp3[: first_frame + 2000]
                                      + rng.integers(0, 256, len(mp3), dtype=np.uint8).tobytes())
    (root / "tmp.mp3").unlink()
    ff.errors["bad/corrupt.mp3"] = "corrupt"
    write_audio(bad / "untagged.wav", seconds=1.5, seed=43)
    ff.errors["bad/untagged.wav"] = "no artist"
    latin1 = os.path.join(os.fsencode(bad), b"caf\xe9-latin1.flac")
    shutil.copy(root / "good" / "01.ogg", latin1)
    ff.errors[os.fsencode(latin1).decode("utf-8", "backslashreplace")[len(str(root)) + 1:]] = \
        "not valid UTF-8"
    # digital silence longer than one excerpt: nothing to tell its artist by
    _write_wav(bad / "silent.wav", np.zeros(22050 * 5, np.float32), artist="Quiet", album="Q",
               title="Silence")
    ff.errors["bad/silent.wav"] = "track is silent"
    ff.feature_errors = frozenset({"bad/silent.wav"})
    if unreadable if unreadable is not None else os.geteuid() != 0:
        locked = write_audio(bad / "locked.ogg", seconds=1.5, seed=44, artist="L", album="L", title="L")
        locked.chmod(0)
        ff.errors["bad/locked.ogg"] = "cannot read"

    # --- the same audio under another name --------------------------------------------------
    (root / "other").mkdir()  # scanned after good/: the copy is the duplicate
    shutil.copy(root / "good" / "00.flac", root / "other" / "00 copy.flac")
    ff.duplicates["other/00 copy.flac"] = "good/00.flac"
    return ff
