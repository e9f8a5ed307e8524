"""Backbone features: a pretrained network's patch embeddings, computed once per track and kept.

A track becomes ``patches_per_track`` musicnn patches of 3 s (187 frames), placed like the
front-end's excerpts (spread over the non-silent part; short tracks zero-padded), decoded by the
front-end's worker pool. In the calling process each patch gets musicnn's exact log-mel (in torch,
batched) and goes through the pretrained network (batched across tracks, on ``device``); the
configured layers are concatenated into one float16 vector per patch: ``[patches_per_track, dim]``
per track, stored in a :class:`~artdb.core.features.store.FeatureStore` of its own.

    config = BackboneConfig(patches_per_track=20)          # penultimate + mean_pool + max_pool
    with BackboneExtractor(config, workers=2, device="cuda") as bx:
        for index, path, feats in bx.extract(paths):        # float16 [20, 1706] | AudioError
            ...

:meth:`BackboneConfig.fingerprint` covers the parameters, :data:`ALGORITHM_VERSION`, the decoding
front-end's fingerprint and the weights (SHA-256 of the checkpoint's ``.index``, which records
every tensor's checksum), so features from other weights or code are never mixed.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, fields
from functools import cache
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from artdb.core.errors import ConfigError, ModelMismatchError
from artdb.core.features.frontend.config import RESAMPLE_QUALITIES, SHORT_TRACK_POLICIES, FrontendConfig
from artdb.core.features.frontend.logmel import mel_matrix
from artdb.core.features.frontend.pipeline import FeatureExtractor, Result
from artdb.core.features.musicnn import MODELS, MusicnnBackbone, MusicnnNotInstalled, musicnn_package_dir
from artdb.core.features.musicnn.frontend import FFT_HOP, FFT_SIZE, N_FRAMES, N_MELS, SR
from artdb.core.progress import Progress, report

__all__ = ["ALGORITHM_VERSION", "BACKBONES", "LAYER_DIMS", "PATCH_SAMPLES", "STAGE", "BackboneConfig",
           "BackboneExtractor", "MusicnnLogMel", "backbone_store_dir", "check_compatible",
           "extract_backbone_features",
           "weights_identity"]

# Bumped whenever the patch placement, log-mel or layer read-out changes the numbers for an
# unchanged config; part of the fingerprint.
ALGORITHM_VERSION = 1
BACKBONES = ("musicnn",)
# Per-patch layers that make a vector (the time-varying ones, timbral/temporal/cnn*, do not).
LAYER_DIMS = {"penultimate": 200, "mean_pool": 753, "max_pool": 753, "taggram": 50}
# Samples of one patch: 187 centred frames of hop 256 (2.976 s at 16 kHz).
PATCH_SAMPLES = (N_FRAMES - 1) * FFT_HOP
STAGE = "backbone"  # progress(STAGE, done, total, path=...)


@dataclass(frozen=True)
class BackboneConfig:
    """Which pretrained network, which layers, and how many patches per track.

    - ``name`` / ``model``: the backbone (``"musicnn"``) and its weights (``"MSD_musicnn"`` or
      ``"MTT_musicnn"``, from the installed ``musicnn`` wheel).
    - ``patches_per_track``: k patches of 2.976 s (187 musicnn frames) spread over the non-silent
      part of the track, as the front-end places its excerpts.
    - ``layers``: concatenated in this order; dims in :data:`LAYER_DIMS`.
    - ``silence_db`` … ``resample_quality``: decoding and placement, as in
      :class:`~artdb.core.features.frontend.config.FrontendConfig`.
    """

    kind: ClassVar[str] = "backbone"

    name: str = "musicnn"
    model: str = "MSD_musicnn"
    # 20 patches = 60 s of each track, spread: +0.00-0.03 ARI over 10 on the dev catalog, and the
    # musicnn peer also reads 60 s (docs/training.md); each patch costs the same network time
    patches_per_track: int = 20
    layers: tuple[str, ...] = ("penultimate", "mean_pool", "max_pool")
    silence_db: float = -60.0
    probes: int = 16
    probe_seconds: float = 0.1
    short_tracks: str = "pad"
    min_track_seconds: float = 1.0
    resample_quality: str = "HQ"

    def __post_init__(self) -> None:
        # From JSON: layers arrive as a list, floats as ints; store the declared types.
        object.__setattr__(self, "layers", tuple(self.layers))
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type == "float" and isinstance(value, int) and not isinstance(value, bool):
                object.__setattr__(self, f.name, float(value))
        problems = []
        if self.name not in BACKBONES:
            problems.append(f"name must be one of {BACKBONES}, got {self.name!r}")
        if self.model not in MODELS:
            problems.append(f"model must be one of {MODELS}, got {self.model!r}")
        if self.patches_per_track < 1:
            problems.append(f"patches_per_track must be >= 1, got {self.patches_per_track}")
        unknown = [name for name in self.layers if name not in LAYER_DIMS]
        if not self.layers or unknown or len(set(self.layers)) != len(self.layers):
            problems.append(f"layers must be distinct names among {tuple(LAYER_DIMS)}, got {self.layers}")
        if self.short_tracks not in SHORT_TRACK_POLICIES:
            problems.append(f"short_tracks must be one of {SHORT_TRACK_POLICIES}")
        if self.resample_quality not in RESAMPLE_QUALITIES:
            problems.append(f"resample_quality must be one of {RESAMPLE_QUALITIES}")
        if problems:
            raise ConfigError("invalid BackboneConfig: " + "; ".join(problems))
        try:
            self.decode_config()
        except ConfigError as exc:
            raise ConfigError(f"invalid BackboneConfig (decoding): {exc}") from None

    def decode_config(self) -> FrontendConfig:
        """The front-end config that decodes and places the patches (its log-mel is not used):
        16 kHz mono excerpts of exactly :data:`PATCH_SAMPLES`, i.e. 187 musicnn frames."""
        return FrontendConfig(
            sample_rate=SR, n_fft=FFT_SIZE, hop_length=FFT_HOP, n_mels=N_MELS, fmin=0.0,
            fmax=SR / 2, excerpt_seconds=PATCH_SAMPLES / SR, excerpts_per_track=self.patches_per_track,
            silence_db=self.silence_db, probes=self.probes, probe_seconds=self.probe_seconds,
            short_tracks=self.short_tracks, min_track_seconds=self.min_track_seconds,
            resample_quality=self.resample_quality, normalisation="none")

    # -- derived sizes -------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        """Length of one patch's vector (the configured layers, concatenated)."""
        return sum(LAYER_DIMS[name] for name in self.layers)

    def layer_slices(self) -> dict[str, slice]:
        """Where each layer sits in a patch's vector, in ``layers`` order."""
        out, start = {}, 0
        for name in self.layers:
            out[name] = slice(start, start + LAYER_DIMS[name])
            start += LAYER_DIMS[name]
        return out

    @property
    def feature_shape(self) -> tuple[int, int]:
        """Shape of one track's features: (patches_per_track, dim)."""
        return (self.patches_per_track, self.dim)

    @property
    def bytes_per_track(self) -> int:
        """Bytes of one track's float16 features."""
        return 2 * math.prod(self.feature_shape)

    # -- serialisation -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "layers": list(self.layers)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BackboneConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown BackboneConfig field(s): {', '.join(unknown)}")
        return cls(**data)

    def fingerprint(self) -> str:
        """A stable hash (hex, 16 chars) of the parameters, :data:`ALGORITHM_VERSION`, the
        decoding front-end's fingerprint and the weights' identity (:func:`weights_identity`)."""
        payload = {"algorithm": ALGORITHM_VERSION, "decode": self.decode_config().fingerprint(),
                   "weights": weights_identity(self.model), **self.to_dict()}
        blob = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


@cache
def weights_identity(model: str) -> str:
    """SHA-256 of the installed checkpoint's ``.index`` (it records each tensor's offset, shape and
    checksum), read once per process. Raises ``MusicnnNotInstalled`` without the weights."""
    index = musicnn_package_dir() / model / ".index"
    if not index.is_file():
        raise MusicnnNotInstalled(f"no {model}/.index in {index.parent.parent}")
    return hashlib.sha256(index.read_bytes()).hexdigest()


def check_compatible(expected: BackboneConfig, actual: BackboneConfig, what: str = "backbone features",
                     expected_fingerprint: str | None = None) -> None:
    """Raise :class:`ModelMismatchError` naming every differing field when the configs differ.

    ``expected_fingerprint`` (the one stored with a store or model) also catches a change of the
    weights or of the algorithm since it was written.
    """
    stored = expected_fingerprint or expected.fingerprint()
    if stored == actual.fingerprint():
        return
    diffs = [f"{f.name}: {getattr(expected, f.name)!r} != {getattr(actual, f.name)!r}"
             for f in fields(BackboneConfig) if getattr(expected, f.name) != getattr(actual, f.name)]
    detail = "; ".join(diffs) if diffs else (
        f"the weights or the algorithm differ (now algorithm {ALGORITHM_VERSION}, weights "
        f"{weights_identity(actual.model)[:12]})")
    raise ModelMismatchError(
        f"backbone config mismatch for {what} (fingerprint {stored} vs {actual.fingerprint()}): "
        f"{detail}. Recompute the backbone features or use the matching config.")


def backbone_store_dir(paths, config: BackboneConfig) -> Path:
    """Beside the log-mel stores: ``<paths.features>/<name>-<fingerprint>``.
    ``paths`` is a :class:`artdb.core.config.Paths`."""
    return paths.features / f"{config.name}-{config.fingerprint()}"


class MusicnnLogMel:
    """musicnn's log-mel in torch, batched: ``[..., PATCH_SAMPLES]`` audio → ``[..., 187, 96]``.

    The steps of :func:`artdb.core.features.musicnn.frontend.log_mel`: STFT (n_fft 512, hop 256,
    periodic Hann, centred with zero padding), power 2, the Slaney mel matrix of
    ``librosa.filters.mel(sr=16000, n_fft=512, n_mels=96)``, the mel power quantised to float16,
    then ``log10(10000 * x + 1)`` in float32.
    """

    def __init__(self, device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self.window = torch.hann_window(FFT_SIZE, periodic=True, device=self.device)
        self.mel = torch.from_numpy(mel_matrix(BackboneConfig().decode_config())).to(self.device)

    @torch.inference_mode()
    def __call__(self, audio: np.ndarray | torch.Tensor) -> torch.Tensor:
        x = torch.as_tensor(audio, dtype=torch.float32).to(self.device, non_blocking=True)
        lead = x.shape[:-1]
        spec = torch.stft(x.reshape(-1, x.shape[-1]), n_fft=FFT_SIZE, hop_length=FFT_HOP,
                          window=self.window, center=True, pad_mode="constant", return_complex=True)
        mel = torch.matmul(self.mel, spec.real.square() + spec.imag.square())  # [B, 96, frames]
        quantised = mel.to(torch.float16).to(torch.float32)
        out = torch.log10(10000.0 * quantised + 1.0).transpose(1, 2)  # [B, frames, 96]
        return out.reshape(*lead, out.shape[1], N_MELS)


class BackboneExtractor:
    """The front-end's decode pool plus musicnn: ``extract(paths)`` yields
    ``(index, path, float16 [patches_per_track, dim] | AudioError)`` in input order.

    The same interface as :class:`~artdb.core.features.frontend.pipeline.FeatureExtractor` (whose
    pool it uses, with this class's network as the transform); use as a context manager. The
    network is loaded once, here. ``patch_batch``: patches per forward pass (default 64 on CPU,
    1024 on CUDA).
    """

    def __init__(self, config: BackboneConfig, workers: int = 2, device: str | torch.device = "cpu",
                 batch_tracks: int = 16, start_method: str | None = None,
                 backbone: MusicnnBackbone | None = None, patch_batch: int | None = None):
        self.config = config
        self.device = torch.device(device)
        self.backbone = backbone or MusicnnBackbone.from_package(config.model)
        self.patch_batch = patch_batch or (1024 if self.device.type == "cuda" else 64)
        self.log_mel = MusicnnLogMel(self.device)
        self._fx = FeatureExtractor(config.decode_config(), workers=workers, device=self.device,
                                    batch_tracks=batch_tracks, start_method=start_method,
                                    transform=self.embed)

    def embed(self, audio: np.ndarray) -> np.ndarray:
        """Decoded patches ``[n, patches_per_track, PATCH_SAMPLES]`` → float16 ``[n, k, dim]``."""
        n, k = audio.shape[:2]
        patches = self.log_mel(audio).reshape(n * k, N_FRAMES, N_MELS)
        out = self.backbone.embed_patches(patches, self.device, layers=self.config.layers,
                                          batch_size=self.patch_batch)
        vectors = np.concatenate([out[name].reshape(n * k, -1) for name in self.config.layers], axis=1)
        return vectors.reshape(n, k, self.config.dim).astype(np.float16)

    def extract(self, paths: Iterable[str | os.PathLike], progress: Progress | None = None
                ) -> Iterator[Result]:
        """``(index, path, float16 [patches_per_track, dim] | AudioError)`` per path, in order;
        ``progress("backbone", done, total, path=...)`` after each file."""
        def relabel(_stage, done, total=None, **info):
            report(progress, STAGE, done, total, **info)

        yield from self._fx.extract(paths, relabel if progress is not None else None)

    def decode(self, paths: Iterable[str | os.PathLike]) -> Iterator[tuple[int, str, tuple]]:
        """``(index, path, decode_task result)`` in input order (the decoded patches' audio)."""
        return self._fx.decode(paths)

    def start(self) -> BackboneExtractor:
        self._fx.start()
        return self

    def close(self) -> None:
        self._fx.close()

    def __enter__(self) -> BackboneExtractor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def extract_backbone_features(paths: Iterable[str | os.PathLike], config: BackboneConfig,
                              workers: int = 2, device: str | torch.device = "cpu",
                              progress: Progress | None = None, batch_tracks: int = 16
                              ) -> Iterator[Result]:
    """One-off form of :class:`BackboneExtractor` (the pool and network live as long as the
    iterator)."""
    with BackboneExtractor(config, workers=workers, device=device, batch_tracks=batch_tracks) as bx:
        yield from bx.extract(paths, progress)
