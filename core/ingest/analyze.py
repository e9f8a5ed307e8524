"""Per-file analysis: stat, content hash, tags, audio probe. Pure and picklable, so it runs in a
worker pool (or a Dask cluster) and returns either a ``FileAnalysis`` or a ``FileFailure``."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Any

from artdb.core.features.frontend.decode import LIBSNDFILE_FORMATS, libsndfile_reason
from artdb.core.ingest.tags import TrackTags, audio_length, read_tags

HASH_CHUNK = 1 << 20
# Frames read at the end of a file to catch truncation that the header does not reveal.
TAIL_PROBE_FRAMES = 2048


@dataclass
class FileAnalysis:
    path: str
    relpath: str
    size: int
    mtime: float
    content_hash: str
    tags: TrackTags
    duration: float | None
    sample_rate: int | None
    channels: int | None
    audio_format: str | None


@dataclass
class FileFailure:
    path: str
    relpath: str
    reason: str


def content_hash(path: str) -> str:
    h = hashlib.blake2b(digest_size=32)
    with open(path, "rb") as fh:
        while chunk := fh.read(HASH_CHUNK):
            h.update(chunk)
    return h.hexdigest()


# Formats whose header states the length of the audio data (mutagen reads it): a file holding less
# than that was cut short. A WAV header of a stream written without knowing its length says 0 or
# ~4 GiB; those are not taken at their word.
_DECLARED_LENGTH_FORMATS = ("WAV", "WAVEX", "AIFF")
_UNKNOWN_DATA_SIZE = 0xFFFF0000
# Shorter than the header by more than this (seconds) is truncation, not rounding.
_TRUNCATION_TOLERANCE = 0.01


def probe_audio(path: str) -> tuple[float, int, int, str]:
    """(duration s, sample rate, channels, format) — raises ValueError with a reason if unusable.

    libsndfile reads WAV/FLAC/Ogg (Vorbis, Opus)/MP3; its header check plus a read of the last
    frames catches truncated files, and for WAV/AIFF the data the header declares is compared with
    the data present. Containers it cannot open (MP4/AAC) are accepted only when a fallback decoder
    exists (audioread with ffmpeg/GStreamer), else rejected with that reason.
    """
    import soundfile as sf

    try:
        snd = sf.SoundFile(path)
    except (sf.LibsndfileError, RuntimeError, EOFError) as exc:
        sf_reason = libsndfile_reason(exc)
    else:
        with snd:
            frames, sr, ch, fmt = snd.frames, snd.samplerate, snd.channels, snd.format
            if frames <= 0:
                raise ValueError("no audio frames")
            if snd.seekable():
                try:
                    snd.seek(max(0, frames - TAIL_PROBE_FRAMES))
                    tail = snd.read(TAIL_PROBE_FRAMES, dtype="float32")
                # ValueError: after a failed seek in a corrupt MP3, soundfile computes a negative
                # frame count
                except (sf.LibsndfileError, RuntimeError, EOFError, ValueError) as exc:
                    raise ValueError(f"truncated or corrupt: cannot read its last frames ({exc})") from exc
                if len(tail) == 0:
                    raise ValueError("truncated: header promises more audio than the file holds")
            if fmt in _DECLARED_LENGTH_FORMATS:
                _check_declared_length(path, frames / sr)
            return frames / sr, sr, ch, fmt
    length = audio_length(path)
    if length is None:
        raise ValueError(f"not recognised as audio by libsndfile or mutagen ({sf_reason})")
    if not _fallback_decoder_available():
        ext = os.path.splitext(path)[1].lower()
        if ext in LIBSNDFILE_FORMATS:
            # mutagen found a header, but libsndfile, which reads this format, found no audio
            raise ValueError(
                f"not decodable audio: libsndfile cannot decode this {LIBSNDFILE_FORMATS[ext]} "
                f"file ({sf_reason})")
        raise ValueError(
            f"no decoder for this format here: libsndfile cannot read it ({sf_reason}) and no "
            "ffmpeg/GStreamer backend is installed for audioread"
        )
    return length, 0, 0, os.path.splitext(path)[1].lstrip(".").upper()


def _check_declared_length(path: str, seconds: float) -> None:
    """ValueError when the header of a WAV/AIFF file declares more audio than the file holds
    (libsndfile silently reads what is there)."""
    import mutagen

    try:
        info = mutagen.File(path).info
        declared = float(info.length)
        data_bytes = declared * info.sample_rate * info.channels * info.bits_per_sample / 8
    except Exception:  # noqa: BLE001 - mutagen cannot read the header: libsndfile's word stands
        return
    if data_bytes >= _UNKNOWN_DATA_SIZE:
        return
    if declared - seconds > _TRUNCATION_TOLERANCE:
        raise ValueError(f"truncated: file shorter than its header says: {seconds:.1f} s of "
                         f"{declared:.1f} s")


def _fallback_decoder_available() -> bool:
    try:
        import audioread
    except ImportError:
        return False
    names = {b.__name__ for b in audioread.available_backends()}
    return bool(names - {"RawAudioFile"})  # RawAudioFile reads only WAV/AIFF, which sf handles


def analyze_file(path: str, relpath: str, overrides: dict[str, Any] | None = None,
                 known: tuple[int, float] | None = None) -> FileAnalysis | FileFailure | None:
    """Analyse one file. ``known`` is the catalog's (size, mtime) for this path: when they still
    match, return None (unchanged, nothing read)."""
    try:
        st = os.stat(path)
    except OSError as exc:
        return FileFailure(path, relpath, f"cannot stat: {exc.strerror}")
    if known is not None and known[0] == st.st_size and abs(known[1] - st.st_mtime) < 1e-6:
        return None
    if st.st_size == 0:
        return FileFailure(path, relpath, "empty file (0 bytes)")
    try:
        digest = content_hash(path)
    except OSError as exc:
        return FileFailure(path, relpath, f"cannot read: {exc.strerror}")
    try:
        duration, sr, ch, fmt = probe_audio(path)
    except ValueError as exc:
        return FileFailure(path, relpath, str(exc))
    try:
        tags = read_tags(path)
    except Exception as exc:  # noqa: BLE001 - mutagen raises many types; the file is bad either way
        if overrides:
            tags = TrackTags()
        else:
            return FileFailure(path, relpath, f"unreadable tags: {exc}")
    if overrides:
        tags = tags.merged(overrides)
    if not (tags.artist or tags.albumartist):
        return FileFailure(path, relpath,
                           "no artist: neither an artist/albumartist tag nor a manifest row gives one")
    return FileAnalysis(
        path=path, relpath=relpath, size=st.st_size, mtime=st.st_mtime, content_hash=digest,
        tags=tags, duration=duration, sample_rate=sr or None, channels=ch or None, audio_format=fmt,
    )


def analyze_job(args: tuple[str, str, dict | None, tuple[int, float] | None]):
    """``analyze_file`` on one packed argument tuple (what the worker pool maps over).

    Any surprise becomes that file's failure: raised in a worker, it would end the whole run."""
    try:
        return analyze_file(*args)
    except Exception as exc:  # noqa: BLE001 - one file's problem never costs the others
        return FileFailure(args[0], args[1], f"unexpected {type(exc).__name__}: {exc}")


def is_unchanged(path: str, known: tuple[int, float]) -> bool:
    """Same size and mtime as catalogued: skip without reading (cheap, done in the parent)."""
    try:
        st = os.stat(path)
    except OSError:
        return False
    return known[0] == st.st_size and abs(known[1] - st.st_mtime) < 1e-6
