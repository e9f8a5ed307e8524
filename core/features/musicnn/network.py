"""The musicnn network (Pons & Serra, 2019) in torch, loading musicnn's TensorFlow checkpoints.

Layer for layer what ``musicnn.models.build_musicnn`` builds (musicnn 0.1.0) for an input of
log-mel patches (batch, time=187, mel=96):

* input batch norm (one channel);
* front-end, "7774timbraltemporal": two timbral convolutions (7 x 38 and 7 x 67 mel bins,
  204 filters each; time padded by 3 on both sides, valid in frequency) and three temporal ones
  (128, 64, 32 frames x 1 bin, 51 filters, TensorFlow "same" padding: for an even kernel k the extra
  row goes *after*, i.e. (k-1)//2 before and k//2 after); each conv -> ReLU -> batch norm -> max over
  frequency. Concatenated: 204+204+51+51+51 = 561 channels per frame;
* mid-end: three 7-frame convolutions over the 561 (then 64) channels, padded by 3, ReLU -> batch
  norm, with residual sums on the 2nd and 3rd; features = [front-end, cnn1, cnn2, cnn3] = 753;
* back-end: max and mean over time, *interleaved* (TF flattens the (753, 2) stack: max0, mean0,
  max1, ...), batch norm, dense 200 + ReLU, batch norm (= ``penultimate``), dense to the tags
  (logits; ``taggram`` = sigmoid). Dropout only acts in training.

Batch norm is TensorFlow's ``tf.compat.v1.layers.batch_normalization``: epsilon 1e-3 (torch's
default is 1e-5), momentum 0.99 (torch momentum 0.01), moving statistics used at inference.

``forward`` returns the layers ``musicnn.extractor.extractor`` exposes, with its names and layouts:
``taggram`` (B, tags), ``timbral`` (B, T, 408), ``temporal`` (B, T, 153), ``cnn1``/``cnn2``/``cnn3``
(B, T, 64), ``mean_pool``/``max_pool`` (B, 753), ``penultimate`` (B, 200), plus ``logits``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .checkpoint import CheckpointError

__all__ = ["MusicnnNet", "LAYERS", "TF_BN_EPSILON"]

TF_BN_EPSILON = 1e-3
_TF_BN_MOMENTUM = 0.01  # torch convention: 1 - TF's 0.99

LAYERS = ("taggram", "timbral", "temporal", "cnn1", "cnn2", "cnn3", "mean_pool", "max_pool", "penultimate")


def _bn1d(n):
    return nn.BatchNorm1d(n, eps=TF_BN_EPSILON, momentum=_TF_BN_MOMENTUM)


def _bn2d(n):
    return nn.BatchNorm2d(n, eps=TF_BN_EPSILON, momentum=_TF_BN_MOMENTUM)


def _same_pad(k: int) -> tuple[int, int]:
    """TensorFlow 'same' padding for stride 1: (k-1)//2 before, the rest after."""
    return (k - 1) // 2, k - 1 - (k - 1) // 2


class MusicnnNet(nn.Module):
    """musicnn (``build_musicnn``): MSD_musicnn / MTT_musicnn are ``MusicnnNet(50)``."""

    def __init__(self, n_classes: int = 50, n_mels: int = 96, num_filt_frontend: float = 1.6,
                 num_filt_midend: int = 64, num_units_backend: int = 200):
        super().__init__()
        self.n_classes, self.n_mels = n_classes, n_mels
        nt, ns = int(num_filt_frontend * 128), int(num_filt_frontend * 32)
        self.input_bn = _bn2d(1)
        self.timbral_kernels = (int(0.4 * n_mels), int(0.7 * n_mels))  # 38, 67 bins
        self.timbral = nn.ModuleList(nn.Conv2d(1, nt, (7, k)) for k in self.timbral_kernels)
        self.timbral_bn = nn.ModuleList(_bn2d(nt) for _ in self.timbral_kernels)
        self.temporal_kernels = (128, 64, 32)  # frames
        self.temporal = nn.ModuleList(nn.Conv2d(1, ns, (k, 1)) for k in self.temporal_kernels)
        self.temporal_bn = nn.ModuleList(_bn2d(ns) for _ in self.temporal_kernels)
        n_front = 2 * nt + 3 * ns  # 561
        self.midend = nn.ModuleList([nn.Conv1d(n_front, num_filt_midend, 7),
                                     nn.Conv1d(num_filt_midend, num_filt_midend, 7),
                                     nn.Conv1d(num_filt_midend, num_filt_midend, 7)])
        self.midend_bn = nn.ModuleList(_bn1d(num_filt_midend) for _ in range(3))
        n_mid = n_front + 3 * num_filt_midend  # 753
        self.n_pool = n_mid
        self.pool_bn = _bn1d(2 * n_mid)
        self.dense = nn.Linear(2 * n_mid, num_units_backend)
        self.dense_bn = _bn1d(num_units_backend)
        self.out = nn.Linear(num_units_backend, n_classes)
        self.dropout = nn.Dropout(0.5)
        self.eval()

    # ---------------------------------------------------------------- forward

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``x``: (B, T, n_mels) log-mel patches (T = 187 for 3 s). Returns the dict described above."""
        if x.ndim != 3 or x.shape[2] != self.n_mels:
            raise ValueError(f"expected (batch, frames, {self.n_mels}) patches, got {tuple(x.shape)}")
        h = self.input_bn(x.unsqueeze(1))  # (B, 1, T, F)
        padded = F.pad(h, (0, 0, 3, 3))
        timbral = [self._conv_relu_bn_freqmax(conv, bn, padded) for conv, bn in zip(self.timbral, self.timbral_bn)]
        temporal = [self._conv_relu_bn_freqmax(conv, bn, F.pad(h, (0, 0) + _same_pad(k)))
                    for conv, bn, k in zip(self.temporal, self.temporal_bn, self.temporal_kernels)]
        front = torch.cat(timbral + temporal, dim=1)  # (B, 561, T)

        cnn1 = self.midend_bn[0](F.relu(self.midend[0](F.pad(front, (3, 3)))))
        cnn2 = self.midend_bn[1](F.relu(self.midend[1](F.pad(cnn1, (3, 3))))) + cnn1
        cnn3 = self.midend_bn[2](F.relu(self.midend[2](F.pad(cnn2, (3, 3))))) + cnn2
        mid = torch.cat([front, cnn1, cnn2, cnn3], dim=1)  # (B, 753, T)

        max_pool, mean_pool = mid.amax(dim=2), mid.mean(dim=2)
        flat = torch.stack([max_pool, mean_pool], dim=2).flatten(1)  # TF's (753, 2) flatten order
        flat = self.dropout(self.pool_bn(flat))
        penultimate = self.dense_bn(F.relu(self.dense(flat)))
        logits = self.out(self.dropout(penultimate))
        return {
            "taggram": torch.sigmoid(logits),
            "logits": logits,
            "timbral": torch.cat(timbral, dim=1).transpose(1, 2),
            "temporal": torch.cat(temporal, dim=1).transpose(1, 2),
            "cnn1": cnn1.transpose(1, 2),
            "cnn2": cnn2.transpose(1, 2),
            "cnn3": cnn3.transpose(1, 2),
            "mean_pool": mean_pool,
            "max_pool": max_pool,
            "penultimate": penultimate,
        }

    def _conv_relu_bn_freqmax(self, conv: nn.Conv2d, bn: nn.BatchNorm2d, x: torch.Tensor) -> torch.Tensor:
        """max over frequency of bn(relu(conv(x))): (B, C, T, F) -> (B, C, T).

        At inference the batch norm is a per-channel monotonic map (increasing where gamma >= 0,
        decreasing otherwise) and relu commutes with max/min, so the max over frequency is taken
        *first* (the min for channels with gamma < 0) and relu + batch norm run on the (B, C, T)
        result: the same element is selected, so the output is the same, at a fraction of the
        memory traffic on the large (B, C, T, F) activations. Training keeps the literal order
        (batch statistics need the full tensor)."""
        z = conv(x)
        if self.training:
            return bn(F.relu(z)).amax(dim=3)
        zmin, zmax = torch.aminmax(z, dim=3)
        sel = torch.where((bn.weight >= 0)[None, :, None], zmax, zmin)
        return F.batch_norm(F.relu(sel), bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)

    # ---------------------------------------------------------------- TensorFlow weights

    def _tf_layers(self):
        """(TF variable scope, torch module, kind) in musicnn's creation order (= TF's auto names)."""
        convs = list(self.timbral) + list(self.temporal) + list(self.midend)
        bns = [self.input_bn] + list(self.timbral_bn) + list(self.temporal_bn) + list(self.midend_bn)
        bns += [self.pool_bn, self.dense_bn]
        out = [(f"conv2d{'_%d' % i if i else ''}", m, "conv") for i, m in enumerate(convs)]
        out += [(f"batch_normalization{'_%d' % i if i else ''}", m, "bn") for i, m in enumerate(bns)]
        out += [("dense", self.dense, "dense"), ("dense_1", self.out, "dense")]
        return out

    def tf_variable_names(self) -> list[str]:
        """The checkpoint variables this network reads (Adam slots and beta powers are ignored)."""
        names = []
        for scope, _, kind in self._tf_layers():
            sub = ("gamma", "beta", "moving_mean", "moving_variance") if kind == "bn" else ("kernel", "bias")
            names += [f"{scope}/{s}" for s in sub]
        return names

    @torch.no_grad()
    def load_tf_weights(self, tensors: dict[str, np.ndarray]) -> None:
        """Copy musicnn's TF variables (``{name: array}``) in, transposing kernels to torch layouts:
        conv2d (kh, kw, in, out) -> (out, in, kh, kw); mid-end conv2d (7, C, 1, out) -> conv1d
        (out, C, 7); dense (in, out) -> (out, in)."""

        def put(param: torch.Tensor, value: np.ndarray, name: str):
            value = np.ascontiguousarray(value, dtype=np.float32)
            if tuple(param.shape) != value.shape:
                raise CheckpointError(f"{name}: checkpoint shape {value.shape} does not fit the "
                                      f"network's {tuple(param.shape)} (another musicnn variant?)")
            param.copy_(torch.from_numpy(value))

        missing = [n for n in self.tf_variable_names() if n not in tensors]
        if missing:
            raise CheckpointError(f"not a musicnn checkpoint: missing {', '.join(missing[:5])}"
                                  + (f" and {len(missing) - 5} more" if len(missing) > 5 else ""))
        for scope, m, kind in self._tf_layers():
            if kind == "bn":
                for attr, var in (("weight", "gamma"), ("bias", "beta"), ("running_mean", "moving_mean"),
                                  ("running_var", "moving_variance")):
                    put(getattr(m, attr), tensors[f"{scope}/{var}"], f"{scope}/{var}")
                continue
            k, b = tensors[f"{scope}/kernel"], tensors[f"{scope}/bias"]
            if kind == "dense":
                k = k.T
            elif isinstance(m, nn.Conv1d):
                if k.ndim != 4 or k.shape[2] != 1:
                    raise CheckpointError(f"{scope}/kernel: expected (7, C, 1, out), got {k.shape}")
                k = k[:, :, 0, :].transpose(2, 1, 0)
            else:
                k = k.transpose(3, 2, 0, 1)
            put(m.weight, k, f"{scope}/kernel")
            put(m.bias, b, f"{scope}/bias")

    @classmethod
    def from_tf_tensors(cls, tensors: dict[str, np.ndarray]) -> "MusicnnNet":
        """Build the network whose sizes the checkpoint implies (tags, mid-end filters, dense units)."""
        try:
            n_classes = tensors["dense_1/bias"].shape[0]
            midend = tensors["conv2d_5/bias"].shape[0]
            units = tensors["dense/bias"].shape[0]
        except KeyError as exc:
            raise CheckpointError(f"not a musicnn checkpoint: no variable {exc}") from None
        if "conv2d_8/kernel" in tensors:
            raise CheckpointError("this checkpoint has more conv layers than musicnn (a vgg model?)")
        net = cls(n_classes, num_filt_midend=midend, num_units_backend=units)
        net.load_tf_weights(tensors)
        return net.eval()
