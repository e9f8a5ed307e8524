"""musicnn's input pipeline without TensorFlow: audio -> 16 kHz mono -> log-mel patches.

The same steps as ``musicnn.extractor.batch_data`` (musicnn 0.1.0), run under numpy < 2 as the
original requires:

1. ``librosa.load(path, sr=16000)`` (mono mix-down, soxr_hq resampling);
2. ``librosa.feature.melspectrogram(y, sr=16000, hop_length=256, n_fft=512, n_mels=96).T``
   (power 2, centred frames, Slaney mel filters; the librosa >= 0.10 defaults are passed explicitly,
   in particular ``pad_mode="constant"``);
3. ``audio_rep.astype(np.float16)`` then ``np.log10(10000 * audio_rep + 1)``. Under numpy 1.x
   value-based casting the python scalar 10000 does not fit float16, so the product is computed
   in **float32**: the mel power is only *quantized* to float16, and the log is float32. Copying
   the line verbatim under numpy >= 2 (NEP 50) keeps float16 instead, overflowing to inf for mel
   powers above ~6.55 and rounding the log to float16. Here the float32 route is spelled out;
4. patches of 187 frames (3 s: ``librosa.time_to_frames(3, ...) + 1``), hop 187 by default
   (``extractor(input_overlap=False)``: no overlap); the tail shorter than a patch is dropped, so a
   track shorter than ~2.98 s gives no patch at all.
"""

from __future__ import annotations

import os

import numpy as np

SR = 16000
FFT_SIZE = 512
FFT_HOP = 256
N_MELS = 96
N_FRAMES = 187  # librosa.time_to_frames(3, sr=16000, n_fft=512, hop_length=256) + 1

__all__ = ["SR", "FFT_SIZE", "FFT_HOP", "N_MELS", "N_FRAMES", "load_audio", "log_mel", "patches",
           "batch_data", "frames_for_seconds"]


def frames_for_seconds(seconds: float) -> int:
    """musicnn's seconds -> frames conversion (``librosa.time_to_frames``, n_fft/2 offset)."""
    return int(np.floor((int(seconds * SR) - FFT_SIZE // 2) / FFT_HOP))


def load_audio(path: str | os.PathLike, offset: float = 0.0, duration: float | None = None) -> np.ndarray:
    """Decode ``path`` to 16 kHz mono float32, as ``librosa.load(path, sr=16000)`` does."""
    import librosa

    audio, _ = librosa.load(os.fspath(path), sr=SR, mono=True, offset=offset, duration=duration)
    return np.asarray(audio, dtype=np.float32)


def log_mel(audio: np.ndarray, sr: int = SR) -> np.ndarray:
    """(frames, 96) float32 log-compressed mel spectrogram of 16 kHz mono ``audio``."""
    import librosa

    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise ValueError(f"expected mono audio (1-D), got shape {audio.shape}")
    if sr != SR:
        audio = librosa.resample(audio, orig_sr=sr, target_sr=SR, res_type="soxr_hq").astype(np.float32)
    mel = librosa.feature.melspectrogram(
        y=audio, sr=SR, n_fft=FFT_SIZE, hop_length=FFT_HOP, n_mels=N_MELS, power=2.0, center=True,
        pad_mode="constant", window="hann", htk=False, norm="slaney", fmin=0.0, fmax=None).T
    quantized = mel.astype(np.float16).astype(np.float32)  # musicnn's float16 step (step 3 above)
    return np.log10(np.float32(10000.0) * quantized + np.float32(1.0)).astype(np.float32)


def patches(rep: np.ndarray, n_frames: int = N_FRAMES, hop: int | None = None) -> np.ndarray:
    """Cut a (frames, 96) representation into (n, n_frames, 96) patches every ``hop`` frames
    (default ``n_frames``: no overlap). Returns an empty (0, n_frames, 96) array when too short."""
    hop = n_frames if hop is None else int(hop)
    if hop <= 0:
        raise ValueError("hop must be a positive number of frames")
    starts = range(0, rep.shape[0] - n_frames + 1, hop)
    if not len(starts):
        return np.zeros((0, n_frames, rep.shape[1]), dtype=np.float32)
    return np.ascontiguousarray(np.stack([rep[t:t + n_frames] for t in starts]), dtype=np.float32)


def batch_data(path: str | os.PathLike, n_frames: int = N_FRAMES, hop: int | None = None, *,
               offset: float = 0.0, duration: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``musicnn.extractor.batch_data``: (patches (n, n_frames, 96), whole log-mel (frames, 96))."""
    rep = log_mel(load_audio(path, offset=offset, duration=duration))
    return patches(rep, n_frames, hop), rep
