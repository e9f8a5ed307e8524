"""The pretrained musicnn, loaded once, embedding log-mel patches on CPU or CUDA (no TensorFlow).

    bb = MusicnnBackbone.from_package("MSD_musicnn")        # weights from the installed musicnn wheel
    out = bb.embed_patches(patches, device="cpu")            # {layer: (n, ...) float32}
    vec = bb.embed_file("track.ogg", layer="penultimate")    # mean over the 3-s patches

The weights are the TensorFlow checkpoints inside the ``musicnn`` 0.1.0 wheel (ISC licence),
found with ``importlib.util.find_spec`` *without* importing musicnn's python code (which imports
TensorFlow). Install them with ``pip install --no-deps musicnn==0.1.0``.
"""

from __future__ import annotations

import ast
import contextlib
import importlib.util
import os
from pathlib import Path

import numpy as np
import torch

import artdb.core.features.musicnn.frontend as frontend
from artdb.core.errors import ArtdbError, ConfigError, MissingExtraError
from artdb.core.features.musicnn.checkpoint import read_checkpoint
from artdb.core.features.musicnn.network import LAYERS, MusicnnNet

__all__ = ["MusicnnBackbone", "MusicnnNotInstalled", "MODELS", "musicnn_package_dir"]

MODELS = ("MSD_musicnn", "MTT_musicnn")
_INSTALL = "pip install --no-deps musicnn==0.1.0"


class MusicnnNotInstalled(MissingExtraError):
    """musicnn's weight files are not installed."""

    def __init__(self, detail: str = ""):  # noqa: D107 - MissingExtraError's message names an extra
        ArtdbError.__init__(self, "musicnn's pretrained weights are not installed"
                            + (f" ({detail})" if detail else "") + f": {_INSTALL}")


def musicnn_package_dir() -> Path:
    """The installed ``musicnn`` package folder, located without importing it."""
    try:
        spec = importlib.util.find_spec("musicnn")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise MusicnnNotInstalled("no 'musicnn' package on the path")
    return Path(list(spec.submodule_search_locations)[0])


def _labels(package_dir: Path, model: str) -> list[str] | None:
    """The tag names of ``musicnn/configuration.py``, read as literals (the module is not run)."""
    want = "MSD_LABELS" if model.startswith("MSD") else "MTT_LABELS"
    try:
        tree = ast.parse((package_dir / "configuration.py").read_text(encoding="utf-8"))
    except (OSError, SyntaxError):
        return None
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == want for t in node.targets):
            try:
                return [str(x) for x in ast.literal_eval(node.value)]
            except ValueError:
                return None
    return None


@contextlib.contextmanager
def _exact_fp32(device: torch.device):
    """cuDNN convolutions in plain fp32 (torch allows TF32 by default, ~1e-3 off TensorFlow's CPU)."""
    if device.type != "cuda":
        yield
        return
    prev = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32 = prev


class MusicnnBackbone:
    """A loaded musicnn network plus its front-end. Thread-compatible for inference, not for
    concurrent ``device`` changes."""

    def __init__(self, net: MusicnnNet, model: str, labels: list[str] | None = None, *,
                 exact_fp32: bool = True):
        self.net = net.eval()
        self.model = model
        self.labels = labels
        self.exact_fp32 = exact_fp32
        self._device = torch.device("cpu")

    # ---------------------------------------------------------------- construction

    @classmethod
    def from_checkpoint(cls, prefix: str | os.PathLike, model: str = "musicnn",
                        labels: list[str] | None = None, **kw) -> MusicnnBackbone:
        """From a TF checkpoint prefix (``.../MSD_musicnn/`` holds ``.index`` and ``.data-*``)."""
        names = MusicnnNet().tf_variable_names()
        tensors = read_checkpoint(prefix, names)
        return cls(MusicnnNet.from_tf_tensors(tensors), model, labels, **kw)

    @classmethod
    def from_package(cls, model: str = "MSD_musicnn", **kw) -> MusicnnBackbone:
        """From the weights shipped in the installed musicnn wheel (MSD_musicnn or MTT_musicnn)."""
        if model not in MODELS:
            raise ConfigError(f"unknown musicnn model {model!r}; choose one of {', '.join(MODELS)}")
        here = musicnn_package_dir()
        if not (here / model / ".index").is_file():
            raise MusicnnNotInstalled(f"no {model}/.index in {here}")
        # the bundle's prefix is the folder itself: files "MSD_musicnn/.index", "MSD_musicnn/.data-*"
        return cls.from_checkpoint(str(here / model) + os.sep, model, _labels(here, model), **kw)

    # ---------------------------------------------------------------- inference

    @property
    def n_frames(self) -> int:
        return frontend.N_FRAMES

    def _to(self, device) -> torch.device:
        device = torch.device(device) if device is not None else self._device
        if device != self._device:
            self.net.to(device)
            self._device = device
        return device

    def embed_patches(self, patches, device=None, *, layers=("penultimate",), batch_size: int = 64
                      ) -> dict[str, np.ndarray]:
        """Run (n, 187, 96) log-mel patches through the network, ``batch_size`` at a time.

        ``layers``: names among ``taggram``, ``logits``, ``timbral``, ``temporal``, ``cnn1``-``cnn3``,
        ``mean_pool``, ``max_pool``, ``penultimate`` (or ``"all"``). ``device``: a torch device
        (``"cpu"``, ``"cuda"``, ...); default: where the network already is (CPU at first).
        Returns ``{layer: float32 array with n rows}`` on the host.
        """
        wanted = (*LAYERS, "logits") if layers == "all" else tuple(layers)
        unknown = [n for n in wanted if n not in (*LAYERS, "logits")]
        if unknown:
            raise ConfigError(f"unknown musicnn layer(s) {unknown}; choose among {', '.join(LAYERS)}")
        device = self._to(device)
        if not torch.is_tensor(patches):
            patches = np.asarray(patches, dtype=np.float32)
        x = torch.as_tensor(patches, dtype=torch.float32)
        if x.ndim != 3 or x.shape[1:] != (self.n_frames, self.net.n_mels):
            raise ConfigError(f"expected (n, {self.n_frames}, {self.net.n_mels}) log-mel patches, "
                              f"got {tuple(x.shape)}")
        if len(x) == 0:  # run one dummy patch for the output shapes
            out = self.embed_patches(np.zeros((1, self.n_frames, self.net.n_mels), np.float32), device,
                                     layers=wanted)
            return {n: v[:0] for n, v in out.items()}
        chunks: dict[str, list[np.ndarray]] = {n: [] for n in wanted}
        with torch.inference_mode(), (_exact_fp32(device) if self.exact_fp32 else contextlib.nullcontext()):
            for s in range(0, len(x), max(1, int(batch_size))):
                out = self.net(x[s:s + batch_size].to(device, non_blocking=True))
                for n in wanted:
                    chunks[n].append(out[n].float().cpu().numpy())
        return {n: np.concatenate(v) for n, v in chunks.items()}

    def embed_file(self, path, device=None, *, layer: str = "penultimate", max_seconds: float | None = None,
                   batch_size: int = 64) -> np.ndarray:
        """Mean of ``layer`` over the track's 3-s patches (what ``bench/peers/musicnn_embed.py``
        computes with TensorFlow). ``max_seconds``: only a centred window that long."""
        offset, duration = 0.0, None
        if max_seconds:
            import librosa

            total = librosa.get_duration(path=os.fspath(path))
            if total > max_seconds:
                offset, duration = (total - max_seconds) / 2, max_seconds
        batch, _ = frontend.batch_data(path, offset=offset, duration=duration)
        if not len(batch):
            raise ArtdbError(f"{path}: shorter than one 3-s musicnn patch")
        feats = self.embed_patches(batch, device, layers=(layer,), batch_size=batch_size)[layer]
        return feats.reshape(len(feats), -1).mean(axis=0)
