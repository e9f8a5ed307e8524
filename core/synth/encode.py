"""Write a rendered track as FLAC, OGG Vorbis, MP3 or WAV (libsndfile), then tag it (mutagen).

libsndfile was seen crashing when given a long OGG Vorbis signal in one call, so audio is always
written in blocks through ``soundfile.SoundFile``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from artdb.core.errors import AudioError

BLOCK = 65536
_FORMATS = {  # codec -> (libsndfile format, subtype)
    "flac": ("FLAC", "PCM_16"),
    "ogg": ("OGG", "VORBIS"),
    "mp3": ("MP3", "MPEG_LAYER_III"),
    "wav": ("WAV", "PCM_16"),
}
# tag name -> (ID3 frame, Vorbis comment field)
_TAGS = {
    "artist": ("TPE1", "ARTIST"),
    "albumartist": ("TPE2", "ALBUMARTIST"),
    "album": ("TALB", "ALBUM"),
    "title": ("TIT2", "TITLE"),
    "genre": ("TCON", "GENRE"),
    "date": ("TDRC", "DATE"),
    "isrc": ("TSRC", "ISRC"),
    "label": ("TPUB", "ORGANIZATION"),
    "tracknumber": ("TRCK", "TRACKNUMBER"),
    "discnumber": ("TPOS", "DISCNUMBER"),
}


def write_audio(path: str | Path, audio: np.ndarray, sample_rate: int, codec: str,
                quality: float = 0.0) -> None:
    """Encode ``audio`` (mono float32) to ``path``. ``quality`` is libsndfile's compression level
    for MP3/OGG (0 = best, 1 = smallest)."""
    fmt, subtype = _FORMATS[codec]
    kwargs = {}
    if codec in ("mp3", "ogg"):
        kwargs["compression_level"] = float(quality)
    if codec == "mp3":
        kwargs["bitrate_mode"] = "VARIABLE" if quality > 0.35 else "CONSTANT"
    try:
        with sf.SoundFile(str(path), "w", samplerate=int(sample_rate), channels=1,
                          format=fmt, subtype=subtype, **kwargs) as f:
            for start in range(0, len(audio), BLOCK):
                f.write(audio[start:start + BLOCK])
    except (RuntimeError, sf.LibsndfileError) as exc:
        raise AudioError(path, f"libsndfile could not write {codec}: {exc}") from exc


def write_tags(path: str | Path, codec: str, tags: dict[str, str]) -> None:
    """Write ``tags`` (keys of ``_TAGS``): ID3v2.4 for MP3 and WAV, Vorbis comments otherwise.
    The label is written as ORGANIZATION (Vorbis) / TPUB (ID3), and also as LABEL in Vorbis."""
    path = str(path)
    if codec in ("mp3", "wav"):
        from mutagen import id3

        frames = {name: getattr(id3, frame) for name, (frame, _) in _TAGS.items()}
        if codec == "mp3":
            tag = id3.ID3()
        else:
            from mutagen.wave import WAVE

            wave = WAVE(path)
            wave.add_tags()
            tag = wave.tags
        for key, value in tags.items():
            tag.add(frames[key](encoding=3, text=[str(value)]))
        if codec == "mp3":
            tag.save(path, v2_version=4)
        else:
            wave.save(v2_version=4)
        return
    from mutagen.flac import FLAC
    from mutagen.oggvorbis import OggVorbis

    f = FLAC(path) if codec == "flac" else OggVorbis(path)
    if f.tags is None:
        f.add_tags()
    for key, value in tags.items():
        f.tags[_TAGS[key][1]] = [str(value)]
    f.tags["LABEL"] = [str(tags["label"])] if "label" in tags else []
    f.save()


def read_tags(path: str | Path) -> dict[str, str]:
    """The tags :func:`write_tags` writes, read back under the same keys."""
    import mutagen

    f = mutagen.File(str(path))
    if f is None or f.tags is None:
        raise AudioError(path, "no tags")
    out: dict[str, str] = {}
    for key, (frame, field) in _TAGS.items():
        if hasattr(f.tags, "getall"):  # ID3
            frames = f.tags.getall(frame)
            if frames:
                out[key] = str(frames[0].text[0])
        else:
            values = f.tags.get(field)
            if values:
                out[key] = str(values[0])
    return out
