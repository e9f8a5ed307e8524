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

In eval mode without autograd on CPU (what ``MusicnnBackbone`` runs), the front-end is computed
another way, several times faster and equal to ~1e-6 relative (``_front_end_fast``);
``fast_inference = False`` keeps the convolutions, which training, autograd and CUDA always use.

Batch norm is TensorFlow's ``tf.compat.v1.layers.batch_normalization``: epsilon 1e-3 (torch's
default is 1e-5), momentum 0.99 (torch momentum 0.01), moving statistics used at inference.

``forward`` returns the layers ``musicnn.extractor.extractor`` exposes, with its names and layouts:
``taggram`` (B, tags), ``timbral`` (B, T, 408), ``temporal`` (B, T, 153), ``cnn1``/``cnn2``/``cnn3``
(B, T, 64), ``mean_pool``/``max_pool`` (B, 753), ``penultimate`` (B, 200), plus ``logits``.
"""

from __future__ import annotations

import functools
import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from artdb.core.features.musicnn.checkpoint import CheckpointError

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


_POOLS: dict[tuple[int, int], ThreadPoolExecutor] = {}  # (pid, workers) -> pool
_POOLS_LOCK = threading.Lock()


@functools.cache
def _openmp_backend() -> bool:
    """Whether ``torch.set_num_threads`` is per thread (OpenMP), as ``_one_thread_pool`` needs."""
    return "parallel backend: OpenMP" in torch.__config__.parallel_info()


def _one_thread_pool(workers: int) -> ThreadPoolExecutor:
    """``workers`` threads whose torch ops each run on one OpenMP / MKL thread.

    Patches are independent, so several CPU threads serve a batch best by taking a share of the
    patches each, with no barrier between them: with intra-op threads every op is a parallel region,
    and on a shared machine each region waits for the thread the scheduler parked (on this 2-core VM
    at load 5-10, two intra-op threads cost 3-5x the CPU time of one per patch on the Fourier-domain
    path, ~1.5x on the convolutions, and gained no wall time).
    ``torch.set_num_threads`` sets the calling thread's OpenMP team size and MKL's thread-local count,
    and the default for threads that have not run torch yet, so each worker first does its own lazy
    setup, then goes to one thread, and the process default is put back once they all have. One
    pool per process and size (a forked child makes its own)."""
    key = (os.getpid(), workers)
    with _POOLS_LOCK:
        pool = _POOLS.get(key)
        if pool is None:
            threads = torch.get_num_threads()
            ready = threading.Barrier(workers)

            def init():
                torch.get_num_threads()  # this thread's lazy OpenMP/MKL setup (to the default), then:
                torch.set_num_threads(1)
                ready.wait()  # so that the executor starts all ``workers`` threads now

            pool = ThreadPoolExecutor(workers, thread_name_prefix="musicnn", initializer=init)
            list(pool.map(lambda _: None, range(workers)))
            torch.set_num_threads(threads)
            _POOLS[key] = pool
    return pool


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
        # Eval-mode CPU inference computes the front-end another way (see ``_front_end_fast``); a plain
        # attribute, not part of the state dict. False: always the convolution path.
        self.fast_inference = True
        self._fast_cache: tuple | None = None
        self.eval()

    # ---------------------------------------------------------------- forward

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``x``: (B, T, n_mels) log-mel patches (T = 187 for 3 s). Returns the dict described above."""
        if x.ndim != 3 or x.shape[2] != self.n_mels:
            raise ValueError(f"expected (batch, frames, {self.n_mels}) patches, got {tuple(x.shape)}")
        fast = self._fast_ok(x)
        workers = min(torch.get_num_threads(), x.shape[0]) if fast and _openmp_backend() else 1
        if workers > 1:  # patches are independent at inference: a share each, one thread each
            self._fast_tables()  # built once here, then read by the workers

            def part(xs):
                with torch.no_grad():  # autograd mode is per thread
                    return self._forward(xs, fast=True)

            outs = list(_one_thread_pool(workers).map(part, torch.tensor_split(x, workers)))
            return {k: torch.cat([o[k] for o in outs]) for k in outs[0]}
        return self._forward(x, fast)

    def _forward(self, x: torch.Tensor, fast: bool) -> dict[str, torch.Tensor]:
        if fast:
            timbral, temporal = self._front_end_fast(x)
        else:
            h = self.input_bn(x.unsqueeze(1))  # (B, 1, T, F)
            padded = F.pad(h, (0, 0, 3, 3))
            timbral = [self._conv_relu_bn_freqmax(conv, bn, padded)
                       for conv, bn in zip(self.timbral, self.timbral_bn)]
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
        return F.batch_norm(F.relu(sel), bn.running_mean, bn.running_var, bn.weight, bn.bias,
                            False, 0.0, bn.eps)

    # ---------------------------------------------------------------- fast CPU inference
    #
    # Profile of the convolution path (torch 2.13 + oneDNN, AMD EPYC 2-core VM, 1 thread, per 3-s
    # patch, ~60-120 ms): the two timbral convs ~65 % (2.3 of the network's ~2.8 GFLOP: each of the
    # 204 x 187 x 59 (and x 30) outputs is a 7 x 38 (7 x 67) dot product; oneDNN computes them at ~60
    # GFLOP/s, then spends a third as long again reordering its blocked output), their min/max over
    # frequency ~10-15 %, the temporal convs ~10-15 %, the rest (mid-end, pooling, dense) < 10 %;
    # batches above a couple of patches get slower per patch (the (204, T, 59) activations leave the
    # cache). At inference only the max over frequency of each timbral conv is used, so
    # ``_timbral_fast`` does the convolution along frequency in the Fourier domain, exactly: a
    # circular correlation of length n = n_mels = J + K - 1 = 96 wraps nothing. Per block of frames:
    #   1. the real DFT of each time-padded input frame: 96 numbers q (cos for k = 0..48, sin for 1..47);
    #   2. for every q row (Re or Im of bin k), P_q(c, t) = sum over the 7 time taps and re/im of
    #      X_k(t + dt) conj(W_k(c, dt)): a batched GEMM, (96, C, 14) x (96, 14, frames);
    #   3. z(j, c, t) = the inverse real DFT at the J valid positions only: a (J, 96) x (96, C frames)
    #      GEMM, then the max over j.
    # ~0.9 GFLOP per patch instead of 2.3, in GEMMs over blocks that stay in cache. Each channel's
    # batch-norm sign s = sign(gamma) is folded into its weights, so one max (of s z) replaces the
    # min and max of ``_conv_relu_bn_freqmax``. float32 throughout (tables built in float64); it
    # matches the convolution to ~1e-6 relative. The temporal convs stay oneDNN convolutions (a
    # Fourier transform along time saves nothing: the max is over frequency), a patch at a time.
    # With several torch threads, each runs the whole network on a share of the patches
    # (``_one_thread_pool``).

    _FAST_FRAMES_PER_BLOCK = 32  # (patch, frame) columns per GEMM block: ~4 MB in flight

    def _fast_ok(self, x: torch.Tensor) -> bool:
        return (self.fast_inference and not self.training and not torch.is_grad_enabled()
                and x.shape[0] > 0 and x.device.type == "cpu" and x.dtype == torch.float32
                and self.n_mels % 2 == 0
                and self.timbral[0].weight.dtype == torch.float32)

    def _fast_tables(self) -> dict:
        """Transform tables and sign-folded weights, rebuilt whenever a parameter changes (in-place
        copies bump ``_version``; ``.to()`` changes the storage)."""
        mods = [*self.timbral, *self.timbral_bn, *self.temporal, *self.temporal_bn]
        key = tuple((t.data_ptr(), t._version) for m in mods for t in (*m.parameters(), *m.buffers()))
        if self._fast_cache is None or self._fast_cache[0] != key:
            with torch.inference_mode(False), torch.no_grad():
                self._fast_cache = (key, self._build_fast_tables())
        return self._fast_cache[1]

    def _build_fast_tables(self) -> dict:
        n, dev = self.n_mels, self.timbral[0].weight.device
        nk = n // 2 + 1
        f64 = {"dtype": torch.float64, "device": dev}

        def trig(rows: torch.Tensor, ks: torch.Tensor):  # angles 2 pi (r k mod n) / n, exact indices
            a = (torch.outer(rows, ks) % n).to(torch.float64) * (2 * math.pi / n)
            return torch.cos(a), torch.sin(a)

        t = torch.arange(n, device=dev)
        kc, ks = torch.arange(nk, device=dev), torch.arange(1, nk - 1, device=dev)
        dft = torch.cat([trig(t, kc)[0], trig(t, ks)[1]], 1)  # (n, n): x @ dft = [Re X_k | -Im X_k]
        timbral = []
        for conv, bn in zip(self.timbral, self.timbral_bn):
            w = conv.weight[:, 0].to(**f64)  # (C, kt, K)
            c, _, k = w.shape
            sign = torch.where(bn.weight >= 0, 1.0, -1.0).to(**f64)
            wq = (F.pad(w, (0, n - k)) @ dft) * sign[:, None, None]  # (C, kt, n)
            wc, ws = wq[..., :nk], F.pad(wq[..., nk:], (1, 1))  # (C, kt, nk): W_k = wc - i ws
            # inputs per bin [Xc(t+dt) for dt] + [Xs(t+dt) for dt]; X conj(W): Re = Xc wc + Xs ws,
            # Im = Xc ws - Xs wc (Im is 0 at k = 0 and n/2, which the 96 q rows leave out)
            re, im = torch.cat([wc, ws], 1), torch.cat([ws, -wc], 1)  # (C, 2 kt, nk)
            stage2 = torch.cat([re, im[..., 1:nk - 1]], 2).permute(2, 0, 1)  # (n, C, 2 kt)
            j = torch.arange(n - k + 1, device=dev)
            ck = torch.full((nk,), 2.0, **f64)
            ck[0] = ck[-1] = 1.0
            (cos_j, _), (_, sin_j) = trig(j, kc), trig(j, ks)
            stage3 = torch.cat([cos_j * ck, -2 * sin_j], 1) / n  # (J, n): inverse DFT at j = 0..J-1
            timbral.append({"stage2": stage2.float().contiguous(), "stage3": stage3.float().contiguous(),
                            "sign": sign.float(), "bias": conv.bias.float()})
        temporal = []
        for conv, bn in zip(self.temporal, self.temporal_bn):
            sign = torch.where(bn.weight >= 0, 1.0, -1.0).to(conv.weight)
            temporal.append({"weight": (conv.weight * sign[:, None, None, None]).contiguous(),
                             "bias": conv.bias * sign, "sign": sign})
        return {"dft": dft.float(), "timbral": timbral, "temporal": temporal}

    def _front_end_fast(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Eval-mode front-end on CPU: the same (B, C, T) outputs as ``_conv_relu_bn_freqmax``."""
        tab = self._fast_tables()
        h = self.input_bn(x.unsqueeze(1))[:, 0]  # (B, T, F)
        return self._timbral_fast(h, tab), self._temporal_fast(h, tab)

    def _timbral_fast(self, h: torch.Tensor, tab: dict) -> list[torch.Tensor]:
        b, t, n = h.shape
        nk, kt, bt = n // 2 + 1, self.timbral[0].kernel_size[0], b * t
        xq = F.pad(h, (0, 0, 3, 3)) @ tab["dft"]  # (B, T + 6, n)
        x2 = torch.stack([xq[..., :nk], F.pad(xq[..., nk:], (1, 1))], 2)  # (B, T + 6, 2, nk)
        u = x2.unfold(1, kt, 1).permute(3, 2, 4, 0, 1).reshape(nk, 2 * kt, bt)  # (nk, 2 kt, B T)
        u = torch.cat([u, u[1:nk - 1]], 0)  # (n, 2 kt, B T): the input of each q row
        maxes = [h.new_empty(br["stage2"].shape[1], bt) for br in tab["timbral"]]
        step = self._FAST_FRAMES_PER_BLOCK
        for c0 in range(0, bt, step):
            c1 = min(bt, c0 + step)
            ub = u[:, :, c0:c1]
            for br, out in zip(tab["timbral"], maxes):
                z = torch.bmm(br["stage2"], ub)  # (n, C, r): Re / Im of X conj(W) per bin
                zz = torch.mm(br["stage3"], z.view(n, -1))  # (J, C r): sign * conv at the J positions
                out[:, c0:c1] = zz.view(zz.shape[0], -1, c1 - c0).amax(0)
        res = []
        for br, bn, m in zip(tab["timbral"], self.timbral_bn, maxes):
            m = m.view(m.shape[0], b, t).transpose(0, 1)  # (B, C, T): max of sign * conv, no bias
            sel = torch.addcmul(br["bias"][:, None], m, br["sign"][:, None])
            res.append(F.batch_norm(F.relu(sel), bn.running_mean, bn.running_var, bn.weight, bn.bias,
                                    False, 0.0, bn.eps))
        return res

    def _temporal_fast(self, h: torch.Tensor, tab: dict) -> list[torch.Tensor]:
        b, t, _ = h.shape
        kmax = max(self.temporal_kernels)
        p0, p1 = _same_pad(kmax)
        hq = F.pad(h, (0, 0, p0, p1)).unsqueeze(1)  # (B, 1, T + kmax - 1, F), sliced for smaller kernels
        res = []
        for k, br, bn in zip(self.temporal_kernels, tab["temporal"], self.temporal_bn):
            off = p0 - _same_pad(k)[0]
            m = torch.cat([F.conv2d(hq[i:i + 1, :, off:off + t + k - 1], br["weight"], br["bias"]).amax(3)
                           for i in range(b)])  # (B, C, T), a patch at a time
            res.append(F.batch_norm(F.relu(m * br["sign"][:, None]), bn.running_mean, bn.running_var,
                                    bn.weight, bn.bias, False, 0.0, bn.eps))
        return res

    # ---------------------------------------------------------------- TensorFlow weights

    def _tf_layers(self):
        """(TF variable scope, torch module, kind) in musicnn's creation order (= TF's auto names)."""
        convs = list(self.timbral) + list(self.temporal) + list(self.midend)
        bns = [self.input_bn] + list(self.timbral_bn) + list(self.temporal_bn) + list(self.midend_bn)
        bns += [self.pool_bn, self.dense_bn]
        out = [(f"conv2d{f'_{i}' if i else ''}", m, "conv") for i, m in enumerate(convs)]
        out += [(f"batch_normalization{f'_{i}' if i else ''}", m, "bn") for i, m in enumerate(bns)]
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
    def from_tf_tensors(cls, tensors: dict[str, np.ndarray]) -> MusicnnNet:
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
