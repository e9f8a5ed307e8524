"""Training objectives: triplet (ML), softmax classification (CL) and their weighted sum (joint).

The triplet part is pytorch-metric-learning's ``TripletMarginLoss`` (Euclidean distance between
L2-normalised embeddings, averaged over the triplets with non-zero loss) applied to the triplets a
miner returns; CL is cross-entropy over the training artists on the network's softmax head.
"""

from __future__ import annotations

import torch
from pytorch_metric_learning.losses import TripletMarginLoss
from torch import nn

from artdb.core.errors import ConfigError
from artdb.core.learn.config import METHODS


class ArtistLoss(nn.Module):
    """``ml_weight * triplet + cl_weight * cross-entropy`` (each used only where the method says).

    ``forward(embeddings, logits, labels, triplets)`` returns ``(loss, parts)`` where ``parts`` is a
    dict of floats (``triplet``, ``ce``) for progress reports.
    """

    def __init__(self, method: str, margin: float = 0.2, ml_weight: float = 1.0, cl_weight: float = 1.0):
        super().__init__()
        if method not in METHODS:
            raise ConfigError(f"method must be one of {METHODS}, got {method!r}")
        self.method = method
        self.use_ml = method in ("ml", "joint")
        self.use_cl = method in ("cl", "joint")
        self.ml_weight = float(ml_weight) if method == "joint" else 1.0
        self.cl_weight = float(cl_weight) if method == "joint" else 1.0
        self.triplet = TripletMarginLoss(margin=margin) if self.use_ml else None
        self.ce = nn.CrossEntropyLoss() if self.use_cl else None

    def forward(self, embeddings, logits, labels, triplets=None):
        total = embeddings.new_zeros(())
        parts: dict[str, float] = {}
        if self.use_ml:
            t = self.triplet(embeddings, labels, indices_tuple=triplets)
            total = total + self.ml_weight * t
            parts["triplet"] = float(t.detach())
        if self.use_cl:
            if logits is None:
                raise ConfigError("classification loss needs a model with a softmax head")
            c = self.ce(logits.float(), labels)
            total = total + self.cl_weight * c
            parts["ce"] = float(c.detach())
        return total, parts


def mean_pairwise_distance(embeddings: torch.Tensor) -> float:
    """Mean Euclidean distance between distinct rows (``sqrt(2)`` for random unit vectors, 0 if collapsed)."""
    e = embeddings.detach().float()
    if len(e) < 2:
        return float("nan")
    return float(torch.pdist(e).mean())
