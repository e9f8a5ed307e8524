"""Writing small real, tagged audio files for tests (soundfile + mutagen)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

FORMATS = {".wav": ("WAV", "PCM_16"), ".flac": ("FLAC", "PCM_16"), ".ogg": ("OGG", "VORBIS"),
           ".mp3": ("MP3", "MPEG_LAYER_III")}


def tone(seconds: float = 1.0, sr: int = 22050, freq: float = 440.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    x = 0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(t.size)
    return x.astype(np.float32)


def write_audio(path: Path, seconds: float = 1.0, sr: int = 22050, freq: float = 440.0,
                seed: int = 0, **tags) -> Path:
    """Write a tone to ``path`` (format from its suffix) and tag it with ``tags``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt, subtype = FORMATS[path.suffix.lower()]
    sf.write(str(path), tone(seconds, sr, freq, seed), sr, format=fmt, subtype=subtype)
    if tags:
        write_tags(path, **tags)
    return path


def write_tags(path: Path, **tags) -> None:
    """Tags by easy name: artist, albumartist, album, title, genre, date, isrc, label, tracknumber."""
    import mutagen
    from mutagen.id3 import ID3, TALB, TCON, TDRC, TIT2, TPE1, TPE2, TPUB, TRCK, TSRC

    suffix = path.suffix.lower()
    if suffix in (".wav", ".mp3"):
        frames = {"artist": TPE1, "albumartist": TPE2, "album": TALB, "title": TIT2, "genre": TCON,
                  "date": TDRC, "isrc": TSRC, "label": TPUB, "tracknumber": TRCK}
        if suffix == ".wav":
            from mutagen.wave import WAVE

            audio = WAVE(str(path))
            if audio.tags is None:
                audio.add_tags()
            id3 = audio.tags
        else:
            try:
                id3 = ID3(str(path))
            except Exception:  # noqa: BLE001 - no ID3 header yet
                id3 = ID3()
        for key, value in tags.items():
            id3.add(frames[key](encoding=3, text=[str(value)]))
        if suffix == ".wav":
            audio.save()
        else:
            id3.save(str(path))
        return
    audio = mutagen.File(str(path))
    if audio.tags is None:
        audio.add_tags()
    for key, value in tags.items():
        audio.tags["organization" if key == "label" else key] = [str(value)]
    audio.save()
