"""Batched log-mel spectrograms in torch: one STFT and one mel matmul for a whole batch of excerpts.

Numerically this is ``librosa.feature.melspectrogram(power=2, center=True, pad_mode="constant")``
followed by ``10 * log10(max(mel, amin))`` and the config's normalisation; the mel matrix *is*
``librosa.filters.mel`` (Slaney scale and area normalisation), so the two cannot drift apart.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from artdb.core.features.frontend.config import FrontendConfig


@lru_cache(maxsize=8)
def mel_matrix(config: FrontendConfig) -> np.ndarray:
    """``[n_mels, n_fft // 2 + 1]`` float32 mel filterbank for ``config`` (cached)."""
    import librosa  # heavy import, only where used

    return librosa.filters.mel(
        sr=config.sample_rate,
        n_fft=config.n_fft,
        n_mels=config.n_mels,
        fmin=config.fmin,
        fmax=config.fmax,
        dtype=np.float32,
    )


class LogMel:
    """Callable turning ``[..., excerpt_samples]`` audio into ``[..., n_mels, frames]`` features.

    Holds the window and mel matrix on ``device`` so repeated calls allocate nothing new.
    """

    def __init__(self, config: FrontendConfig, device: str | torch.device = "cpu"):
        self.config = config
        self.device = torch.device(device)
        self.window = torch.hann_window(config.n_fft, periodic=True, device=self.device)
        self.mel = torch.from_numpy(mel_matrix(config)).to(self.device)

    @torch.inference_mode()
    def __call__(self, audio: np.ndarray | torch.Tensor) -> torch.Tensor:
        """float32 log-mel features on ``device``; leading dimensions are kept."""
        cfg = self.config
        x = torch.as_tensor(audio, dtype=torch.float32).to(self.device, non_blocking=True)
        lead = x.shape[:-1]
        x = x.reshape(-1, x.shape[-1])
        spec = torch.stft(
            x,
            n_fft=cfg.n_fft,
            hop_length=cfg.hop_length,
            window=self.window,
            center=True,
            pad_mode="constant",
            return_complex=True,
        )
        power = spec.real.square() + spec.imag.square()  # [B, n_fft//2+1, frames]
        mel = torch.matmul(self.mel, power)  # [B, n_mels, frames]
        out = 10.0 * torch.log10(mel.clamp_min(cfg.amin))
        out = normalise(out, cfg)
        return out.reshape(*lead, cfg.n_mels, out.shape[-1])


def normalise(db: torch.Tensor, config: FrontendConfig) -> torch.Tensor:
    """Apply ``config.normalisation`` to ``[B, n_mels, frames]`` dB values.

    - ``fixed``: ``(dB - db_offset) / db_scale``; with the defaults −40 dB maps to 0 and the
      ``amin`` floor (−100 dB) to −3. The same map for every excerpt, so relative loudness is kept
      and the stored values never depend on the batch they were computed in.
    - ``per_excerpt``: each excerpt to zero mean and unit variance (loudness removed).
    - ``none``: plain dB.
    """
    if config.normalisation == "fixed":
        return (db - config.db_offset) / config.db_scale
    if config.normalisation == "per_excerpt":
        mean = db.mean(dim=(-2, -1), keepdim=True)
        std = db.std(dim=(-2, -1), keepdim=True).clamp_min(1e-3)
        return (db - mean) / std
    return db


def log_mel(
    audio: np.ndarray | torch.Tensor, config: FrontendConfig, device: str | torch.device = "cpu"
) -> torch.Tensor:
    """One-off convenience: ``LogMel(config, device)(audio)``."""
    return LogMel(config, device)(audio)
