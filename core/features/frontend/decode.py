"""Decode only what is used: k mono excerpts at the model's rate, placed away from silence.

This module imports numpy, soundfile and soxr only (no torch), so decoding worker processes start
quickly. :func:`decode_excerpts` is the entry point; it raises :class:`AudioError` for any file it
cannot use, naming the file and the reason.

How a track becomes excerpts (see ``docs/frontend.md``):

1. Open with libsndfile (WAV, FLAC, OGG Vorbis/Opus, MP3, AIFF…). If libsndfile cannot open it,
   decode the whole file with audioread when one of its backends (ffmpeg, GStreamer, Core Audio)
   exists; otherwise fail with a clear reason.
2. Read ``probes`` short probes spread evenly over the track (a seek and ~0.1 s each). The
   non-silent region runs from the first to the last loud probe: leading and trailing silence is
   skipped without decoding it.
3. Place k windows of L seconds centred at (i + ½)/k of that region; read each window (one seek,
   L seconds of decoding). A window that turns out mostly silent is moved onto a loud probe.
4. Downmix to mono, resample all k windows in one soxr call (the windows are its channels),
   cut to exactly ``excerpt_samples``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from artdb.core.errors import AudioError
from artdb.core.features.frontend.config import FrontendConfig

# Extra source frames read past each window so that the resampled window is never short.
_RESAMPLE_MARGIN = 64
# Extensions of the formats libsndfile decodes itself: when it cannot, the file is not decodable
# audio (a fallback decoder is the answer only for containers it does not know, like MP4/AAC).
LIBSNDFILE_FORMATS = {".wav": "WAV", ".wave": "WAV", ".flac": "FLAC", ".ogg": "OGG", ".oga": "OGG",
                      ".opus": "OGG", ".mp3": "MP3", ".aif": "AIFF", ".aiff": "AIFF"}
# A window counts as "mostly silent" when more than this fraction of its 50 ms blocks are silent.
_MAX_SILENT_FRACTION = 0.5


class _Source:
    """Random access to a track as mono float32 at its own sample rate."""

    frames: int
    samplerate: int

    def read(self, start: int, count: int) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError

    def close(self) -> None:
        pass


class _SoundFileSource(_Source):
    """libsndfile with seeking: only the requested frames are decoded."""

    def __init__(self, handle: sf.SoundFile):
        self._f = handle
        self.frames = handle.frames
        self.samplerate = handle.samplerate
        self._preroll = _preroll(handle)

    def read(self, start: int, count: int) -> np.ndarray:
        pre = min(start, self._preroll)
        self._f.seek(start - pre)
        block = self._f.read(count + pre, dtype="float32", always_2d=True)
        return _mono(block[pre:])

    def close(self) -> None:
        self._f.close()


class _ArraySource(_Source):
    """A track decoded whole into memory (the fallback decoder cannot seek)."""

    def __init__(self, mono: np.ndarray, samplerate: int):
        self._x = mono
        self.frames = len(mono)
        self.samplerate = samplerate

    def read(self, start: int, count: int) -> np.ndarray:
        return self._x[start : start + count]


def _preroll(handle: sf.SoundFile) -> int:
    """Frames to decode and discard before a seek target.

    After a seek, libsndfile's MP3 decoder (mpg123) outputs silence for the frames whose bit
    reservoir lies before the seek point (measured: up to ~2,400 samples on a tonal 44.1 kHz
    file; exact from 3 frames of pre-roll on). 8 MPEG frames cover the reservoir at any bitrate.
    Opus needs 80 ms of pre-roll by its specification. Vorbis, FLAC and PCM seek exactly.
    """
    if handle.format == "MP3":
        return 8 * 1152
    if handle.subtype == "OPUS":
        return int(0.08 * handle.samplerate) + 1
    return 0


def _mono(block: np.ndarray) -> np.ndarray:
    """Average of the channels. Summing columns is ~10x faster than ``mean(axis=1)`` over a
    2-wide axis, which was the front-end's largest cost before decoding itself."""
    channels = block.shape[1]
    if channels == 1:
        return block[:, 0]
    out = block[:, 0] + block[:, 1]
    for c in range(2, channels):
        out += block[:, c]
    out *= np.float32(1.0 / channels)
    return out


def _open(path: str) -> _Source:
    if not os.path.exists(path):
        raise AudioError(path, "file not found")
    if os.path.isdir(path):
        raise AudioError(path, "is a directory, not an audio file")
    try:
        handle = sf.SoundFile(path)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        return _open_fallback(path, libsndfile_reason(exc))
    if handle.frames <= 0 or handle.samplerate <= 0:
        handle.close()
        raise AudioError(path, "file holds no audio frames")
    return _SoundFileSource(handle)


def libsndfile_reason(exc: Exception) -> str:
    """Why libsndfile could not open a file, in words that fit: it calls every format it does not
    recognise "File does not exist or is not a regular file", which misleads for a file it read."""
    reason = getattr(exc, "error_string", None) or str(exc)
    reason = reason.split(": ", 1)[1] if reason.startswith("Error opening ") else reason
    if "not a regular file" in reason:
        return "format not recognised"
    return reason.strip() or type(exc).__name__


def _open_fallback(path: str, sf_reason: str) -> _Source:
    """Decode the whole file with audioread (ffmpeg, GStreamer or Core Audio), if one is present."""
    try:
        import audioread
    except ImportError:
        raise AudioError(
            path, f"libsndfile cannot read it ({sf_reason}) and audioread is not installed"
        ) from None
    try:
        with audioread.audio_open(path) as reader:
            channels, samplerate = reader.channels, reader.samplerate
            chunks = [np.frombuffer(buf, dtype="<i2") for buf in reader]
    except audioread.NoBackendError:
        fmt = LIBSNDFILE_FORMATS.get(os.path.splitext(path)[1].lower())
        if fmt is not None:  # libsndfile reads this format: ffmpeg is not what is missing
            raise AudioError(
                path, f"not decodable audio: libsndfile cannot decode this {fmt} file ({sf_reason})"
            ) from None
        raise AudioError(
            path,
            f"libsndfile cannot read it ({sf_reason}) and no fallback decoder is available "
            "(audioread found no backend: install ffmpeg to read this format)",
        ) from None
    except Exception as exc:  # audioread backends raise a variety of errors for bad data
        raise AudioError(
            path, f"libsndfile cannot read it ({sf_reason}); fallback decoder failed: {exc}"
        ) from None
    if not chunks or channels <= 0 or samplerate <= 0:
        raise AudioError(path, f"libsndfile cannot read it ({sf_reason}); fallback decoded nothing")
    pcm = np.concatenate(chunks).astype(np.float32) / 32768.0
    pcm = pcm[: len(pcm) - len(pcm) % channels].reshape(-1, channels)
    if len(pcm) == 0:
        raise AudioError(path, "file holds no audio frames")
    return _ArraySource(_mono(pcm), samplerate)


def rms_db(x: np.ndarray) -> float:
    """RMS level in dBFS (−inf for digital silence)."""
    if x.size == 0:
        return -math.inf
    x = np.ascontiguousarray(x, dtype=np.float32).ravel()  # a [frames, k] block of windows too
    power = float(np.dot(x, x)) / x.size
    return 10.0 * math.log10(power) if power > 0 else -math.inf


def _silent_fraction(x: np.ndarray, samplerate: int, silence_db: float) -> float:
    block = max(1, samplerate // 20)  # 50 ms
    n = len(x) // block
    if n == 0:
        return 1.0 if rms_db(x) < silence_db else 0.0
    blocks = np.ascontiguousarray(x[: n * block], dtype=np.float32).reshape(n, block)
    power = np.einsum("ij,ij->i", blocks, blocks) / block
    threshold = 10.0 ** (silence_db / 10.0)
    return float(np.mean(power < threshold))


def _probe(source: _Source, config: FrontendConfig) -> tuple[np.ndarray, np.ndarray]:
    """Probe start positions and which of them are loud."""
    length = max(1, int(round(config.probe_seconds * source.samplerate)))
    last = max(0, source.frames - length)
    starts = np.linspace(0, last, config.probes).round().astype(np.int64)
    loud = np.array(
        [rms_db(source.read(int(s), length)) >= config.silence_db for s in starts], dtype=bool
    )
    return starts, loud


def plan_windows(
    frames: int, window: int, probe_starts: np.ndarray, probe_loud: np.ndarray, probe_len: int, k: int
) -> np.ndarray:
    """Start frames of k windows of ``window`` frames spread over the loud region of a track.

    The loud region runs from the first loud probe to the end of the last one (the whole track if
    no probe is loud). Window i is centred at (i + ½)/k of it, clamped so it stays inside the
    region when the region is long enough, else inside the track.
    """
    if probe_loud.any():
        loud_idx = np.flatnonzero(probe_loud)
        lo = int(probe_starts[loud_idx[0]])
        hi = min(frames, int(probe_starts[loud_idx[-1]]) + probe_len)
    else:
        lo, hi = 0, frames
    if hi - lo < window:  # region shorter than one window: centre on it, stay inside the track
        mid = (lo + hi) // 2
        lo, hi = 0, frames
        centres = np.full(k, mid, dtype=np.float64)
    else:
        centres = lo + (np.arange(k) + 0.5) / k * (hi - lo)
    starts = np.clip(np.round(centres - window / 2), lo, hi - window)
    return starts.astype(np.int64)


def _resample(block: np.ndarray, sr_in: int, config: FrontendConfig) -> np.ndarray:
    """[frames, k] at ``sr_in`` → [k, excerpt_samples] float32 at ``config.sample_rate``."""
    if sr_in != config.sample_rate:
        block = soxr.resample(block, sr_in, config.sample_rate, quality=config.resample_quality)
    n = config.excerpt_samples
    out = np.zeros((block.shape[1], n), dtype=np.float32)
    m = min(n, block.shape[0])
    out[:, :m] = block[:m].T
    return out


def decode_excerpts(path: str | os.PathLike, config: FrontendConfig) -> np.ndarray:
    """The k excerpts of one file as float32 ``[excerpts_per_track, excerpt_samples]`` mono audio
    at ``config.sample_rate``.

    Raises :class:`AudioError` (with the file and the reason) when the file cannot be read, is
    shorter than ``min_track_seconds`` (or than one excerpt with ``short_tracks="reject"``), or is
    silent throughout.
    """
    path = str(path)
    source = _open(path)
    try:
        return _excerpts(path, source, config)
    except AudioError:
        raise
    except (sf.LibsndfileError, RuntimeError, ValueError, OSError, EOFError) as exc:
        raise AudioError(path, f"decoding failed: {exc}") from None
    finally:
        source.close()


# How far before the header's end a window may be moved when the file's last frames cannot be
# read (seconds). More missing than this is a truncated file, reported as such.
_TAIL_SLACK_SECONDS = 1.0


def _read_window(source: _Source, start: int, count: int, sr: int) -> np.ndarray:
    """``count`` frames from ``start``, or, when the read comes back short, the same window moved
    back onto audio that is there.

    Some real files cannot deliver their header's last frames: an Ogg Vorbis stream whose final
    granule position overstates its length by a packet (~100 frames in the dev catalog), or a
    seek close to the end that libvorbis lands after its target. The analysis accepts them (their
    tail reads), so a window that touches the end is read again ending where the audio ends,
    moving back at most ``_TAIL_SLACK_SECONDS``."""
    audio = source.read(start, count)
    moved = 0
    while len(audio) < count and start > 0:
        step = count - len(audio)
        moved += step
        if moved > _TAIL_SLACK_SECONDS * sr:
            break
        start = max(0, start - step)
        audio = source.read(start, count)
    return audio


def _excerpts(path: str, source: _Source, config: FrontendConfig) -> np.ndarray:
    sr = source.samplerate
    k = config.excerpts_per_track
    duration = source.frames / sr
    window = int(math.ceil(config.excerpt_seconds * sr))

    if source.frames < window:  # short track: the whole of it, zero-padded, k times
        if config.short_tracks == "reject":
            raise AudioError(
                path,
                f"track is {duration:.2f} s long, shorter than one {config.excerpt_seconds:g} s "
                "excerpt (short_tracks='reject')",
            )
        if duration < config.min_track_seconds:
            raise AudioError(
                path,
                f"track is {duration:.2f} s long, shorter than min_track_seconds="
                f"{config.min_track_seconds:g}",
            )
        audio = source.read(0, source.frames)
        if len(audio) == 0 or rms_db(audio) < config.silence_db:
            raise AudioError(path, f"track is silent (RMS below {config.silence_db:g} dBFS)")
        one = _resample(audio[:, None], sr, config)
        return np.repeat(one, k, axis=0)

    probe_len = max(1, int(round(config.probe_seconds * sr)))
    probe_starts, probe_loud = _probe(source, config)
    starts = plan_windows(source.frames, window, probe_starts, probe_loud, probe_len, k)

    read_len = min(window + _RESAMPLE_MARGIN, source.frames)
    windows = []
    loud_probes = [int(s) for s in probe_starts[probe_loud]]
    for start in starts:
        start = int(min(start, source.frames - read_len))
        audio = _read_window(source, start, read_len, sr)
        if _silent_fraction(audio, sr, config.silence_db) > _MAX_SILENT_FRACTION and loud_probes:
            # Move the window onto the nearest loud probe not used yet (a break mid-track).
            centre = start + window // 2
            best = min(loud_probes, key=lambda p: abs(p - centre))
            loud_probes.remove(best)
            start = int(np.clip(best + probe_len // 2 - window // 2, 0, source.frames - read_len))
            audio = _read_window(source, start, read_len, sr)
        windows.append(audio)
    if len(windows[0]) < window or any(len(w) != len(windows[0]) for w in windows):
        raise AudioError(path, f"file ended early: header says {source.frames} frames")
    block = np.stack(windows, axis=1)
    if all(_silent_fraction(w, sr, config.silence_db) > _MAX_SILENT_FRACTION for w in windows):
        if rms_db(block) < config.silence_db:
            raise AudioError(path, f"track is silent (RMS below {config.silence_db:g} dBFS)")
    return _resample(block, sr, config)


def decode_task(path: str, config: FrontendConfig) -> tuple[str, np.ndarray | str]:
    """Worker-process entry: ``("ok", excerpts)`` or ``("error", reason)``.

    Errors travel as strings because :class:`AudioError` does not survive pickling with its two
    fields; every failure of one file is reported, never raised, so a batch goes on.
    """
    try:
        return "ok", decode_excerpts(path, config)
    except AudioError as exc:
        return "error", exc.reason
    except Exception as exc:  # keep the batch alive: any surprise becomes this file's error
        return "error", f"unexpected {type(exc).__name__}: {exc}"


def audio_duration(path: str | os.PathLike) -> float:
    """Duration in seconds from the file header (libsndfile), without decoding."""
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise AudioError(Path(path), f"cannot read header: {exc}") from None
    return info.frames / info.samplerate
