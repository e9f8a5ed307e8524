"""Audio and metadata fused into one album distance, learnt from the catalog's own pages.

The audit clusters a page's albums by a distance. With ``--evidence audio`` it is the cosine
distance between album vectors; with ``both`` it is ``1 - P(same artist)`` of a logistic
regression on the standardised audio distance and the metadata evidence of the pair
(:func:`artdb.core.analysis.metadata.pair_features`: +1 agree, -1 disagree, 0 unknown); with
``metadata`` the audio column is left out. Nothing but pages is needed to fit it: the pairs come
from the same artificial homonym groups of trusted pages that calibrate the audio threshold
(:func:`artdb.core.analysis.clustering.make_homonym_groups`) — two albums of one page are "same
artist", two albums of different pages of a group are not. The fused distance's threshold is then
fitted on those groups exactly as the audio one is
(:func:`~artdb.core.analysis.clustering.fit_threshold`, average linkage on precomputed distances).

:func:`fit_fusion` also measures what the fusion is worth before it is used: k-fold
cross-validation over the groups, each fold scored (mean ARI on its groups, and how often a single
page of it is split) by an audio threshold and by a fusion both fitted on the other folds — the
same groups for both. A :class:`Fusion` is plain numbers (:meth:`Fusion.to_dict`): it is stored
with the audit run (``AuditRun.params["fusion"]``), and :meth:`Fusion.calibration_lines` says how
much each feature weighs.

Honest limits: artificial groups are made of trusted pages, which rarely share a label, while
real homonyms may (a planted 30 % share a label in ``artdb synth``); and "trusted" means only "no
open finding", so before the first audit the catalog's own homonym pages are among them, taught
as one artist each (``fit_catalog_fusion(rounds=2)`` sets aside the pages a first fit would split
and fits again: measured in docs/audit.md, not the default).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy.spatial.distance import pdist
from sklearn.linear_model import LogisticRegression

from artdb.core.analysis.clustering import (
    UnitDistances,
    cut_tree,
    distance_tree,
    fit_threshold,
    linkage_tree,
    mean_ari,
)
from artdb.core.analysis.metadata import (
    DEFAULT_YEAR_BOUNDARY,
    FEATURES,
    AlbumMeta,
    fit_year_boundary,
    pair_matrix,
    year_gap,
)
from artdb.core.config import DEFAULT_LINKAGE, DEFAULT_METRIC
from artdb.core.errors import CatalogError, ConfigError

EVIDENCE = ("audio", "metadata", "both")
# Inverse regularisation of the logistic regression (scikit-learn's C; 1.0 is its default).
FUSION_C = 1.0


def check_evidence(evidence: str) -> str:
    if evidence not in EVIDENCE:
        raise ConfigError(f"evidence must be one of {EVIDENCE}, got {evidence!r}")
    return evidence


@dataclass
class Fusion:
    """A fitted fusion: ``P(same artist) = sigmoid(intercept + sum_k coef_k x_k)`` over
    ``features`` (``"audio"`` = the standardised audio distance, then :data:`FEATURES`), and the
    threshold on ``1 - P`` the audit cuts at."""

    evidence: str
    features: list[str]
    coef: list[float]
    intercept: float
    audio_mean: float = 0.0
    audio_std: float = 1.0
    year_boundary: float = DEFAULT_YEAR_BOUNDARY
    threshold: float = 0.5
    linkage: str = DEFAULT_LINKAGE
    metric: str = DEFAULT_METRIC
    calibration: dict[str, Any] = field(default_factory=dict)

    # -- applying it -------------------------------------------------------------------------------
    @property
    def uses_audio(self) -> bool:
        return self.features[:1] == ["audio"]

    def weights(self) -> dict[str, float]:
        return dict(zip(self.features, self.coef))

    def design(self, audio: np.ndarray | None, meta: np.ndarray) -> np.ndarray:
        """The regression's inputs for pairs: audio distances ``[n]`` and :data:`FEATURES` evidence
        ``[n, len(FEATURES)]``."""
        meta = np.asarray(meta, dtype=np.float64).reshape(-1, len(FEATURES))
        if not self.uses_audio:
            return meta
        a = (np.asarray(audio, dtype=np.float64).reshape(-1, 1) - self.audio_mean) / self.audio_std
        return np.hstack([a, meta])

    def distance(self, audio: np.ndarray | None, meta: np.ndarray) -> np.ndarray:
        """``1 - P(same artist)`` of each pair."""
        z = self.design(audio, meta) @ np.asarray(self.coef) + self.intercept
        return 1.0 / (1.0 + np.exp(z))  # = 1 - sigmoid(z)

    def condensed(self, vectors: np.ndarray | None, metas: Sequence[AlbumMeta]) -> np.ndarray:
        """Fused condensed distances between the albums (``vectors`` rows, ``metas`` aligned)."""
        audio = pdist(np.asarray(vectors, dtype=np.float64), self.metric) if self.uses_audio else None
        return self.distance(audio, pair_matrix(metas, self.year_boundary))

    def unit_distances(self, vectors: np.ndarray, metas: Sequence[AlbumMeta]) -> UnitDistances:
        """For :func:`~artdb.core.analysis.clustering.fit_threshold`: unit indices -> fused
        condensed distances."""
        return lambda idx: self.condensed(vectors[idx], [metas[i] for i in idx])

    def contributions(self, audio: np.ndarray | None, meta: np.ndarray) -> dict[str, float]:
        """Each feature's mean contribution to the logit over the given pairs (negative = towards
        "another artist"): what a finding's reasons are ranked by."""
        x = self.design(audio, meta)
        return {f: float(np.mean(x[:, k]) * c) for k, (f, c) in enumerate(zip(self.features, self.coef))}

    # -- storing it --------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON (non-finite numbers as None: PostgreSQL's JSON refuses NaN)."""
        return _finite(asdict(self))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Fusion:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})

    def calibration_lines(self) -> list[str]:
        """The calibration report in words: each feature's weight (per unit of evidence; audio per
        standard deviation of distance) and how often it is known, then the CV comparison."""
        cov = self.calibration.get("known", {})
        lines = [f"fusion ({self.evidence}): logistic regression on {self.calibration.get('pairs', '?')} "
                 f"album pairs of {self.calibration.get('groups', '?')} artificial groups; "
                 f"threshold {self.threshold:.3f} on 1 - P(same artist)"]
        grouping = self.calibration.get("grouping")
        if grouping:
            lines[0] += "; groups drawn " + ("within genres first" if grouping == "genre" else "at random")
        for f, c in sorted(self.weights().items(), key=lambda fc: -abs(fc[1])):
            known = f", known for {cov[f]:.0%} of pairs" if f in cov else ""
            lines.append(f"  {f:<16} weight {c:+.3f}{known}")
        if "year" in self.features:
            lines.append(f"  (year evidence is neutral at a gap of {self.year_boundary:g} years)")
        cv = self.calibration.get("cv")
        if cv:
            def num(key: str, fmt: str) -> str:
                return "n/a" if cv.get(key) is None else format(cv[key], fmt)

            lines.append(
                f"  {cv['folds']}-fold CV over the same groups: ARI audio {num('ari_audio', '.3f')} vs "
                f"{self.evidence} {num('ari_fused', '.3f')}; single pages split: audio "
                f"{num('split_audio', '.1%')} vs {self.evidence} {num('split_fused', '.1%')}")
        return lines


def _finite(x: Any) -> Any:
    if isinstance(x, float) and not np.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    return x


# -- fitting ---------------------------------------------------------------------------------------
def _members(groups: Sequence[np.ndarray], labels: np.ndarray) -> list[np.ndarray]:
    return [np.flatnonzero(np.isin(labels, g)) for g in groups]


def _pairs(idx: np.ndarray, vectors, metas, labels, metric: str, boundary: float):
    """Audio distances, metadata evidence, same-artist flags and year gaps of a group's pairs."""
    sub = [metas[i] for i in idx]
    lab = labels[idx]
    n = len(idx)
    iu = np.triu_indices(n, k=1)
    audio = pdist(np.asarray(vectors[idx], dtype=np.float64), metric) if vectors is not None else None
    same = (lab[iu[0]] == lab[iu[1]])
    gaps = np.array([np.nan if (g := year_gap(sub[i], sub[j])) is None else g
                     for i, j in zip(*iu)], dtype=np.float64)
    return audio, pair_matrix(sub, boundary), same, gaps


def _fit_once(groups, vectors, metas, labels, evidence, linkage, metric, singles=False) -> Fusion:
    members = [m for m in _members(groups, labels) if len(m) >= 2]
    use_audio = evidence == "both"
    raw = [_pairs(m, vectors if use_audio else None, metas, labels, metric, DEFAULT_YEAR_BOUNDARY)
           for m in members]
    if not raw:
        raise CatalogError("no artificial group with 2+ albums to fit the fusion on")
    same = np.concatenate([r[2] for r in raw])
    if same.all() or not same.any():
        raise CatalogError("the artificial groups give only one kind of album pair: cannot fit")
    boundary = fit_year_boundary(np.concatenate([r[3] for r in raw]), same)
    meta = np.vstack([pair_matrix([metas[i] for i in m], boundary) for m in members])
    names = (["audio"] if use_audio else []) + list(FEATURES)
    fusion = Fusion(evidence, names, [0.0] * len(names), 0.0, year_boundary=boundary,
                    linkage=linkage, metric=metric)
    audio = None
    if use_audio:
        audio = np.concatenate([r[0] for r in raw])
        fusion.audio_mean = float(audio.mean())
        fusion.audio_std = float(audio.std()) or 1.0
    x = fusion.design(audio, meta)
    lr = LogisticRegression(C=FUSION_C, class_weight="balanced", max_iter=1000)
    lr.fit(x, same.astype(int))
    fusion.coef = [float(c) for c in lr.coef_[0]]
    fusion.intercept = float(lr.intercept_[0])
    # with ``singles`` each page of the groups also counts alone (ARI 1 kept whole, 0 split), so
    # the threshold pays for false splits as much as for missed ones
    fit_on = list(groups) + ([np.array([p]) for g in groups for p in g] if singles else [])
    t, train_ari, _ = fit_threshold(fit_on, vectors, labels, linkage=linkage, metric=metric,
                                    distances=fusion.unit_distances(vectors, metas))
    fusion.threshold = float(t)
    fusion.calibration = {
        "pairs": int(len(same)), "same_pairs": int(same.sum()), "groups": len(groups),
        "singles": bool(singles),
        "train_ari": float(train_ari),
        "known": {f: float(np.mean(x[:, k] != 0)) for k, f in enumerate(names) if f != "audio"}}
    return fusion


def _split_rate(pages_idx: list[np.ndarray], tree_of, threshold: float) -> float:
    """Share of single pages (their albums alone) that the cut splits into 2+ clusters."""
    split = []
    for idx in pages_idx:
        z = tree_of(idx)
        if z is not None:
            split.append(len(set(cut_tree(z, threshold).tolist())) > 1)
    return float(np.mean(split)) if split else 0.0


def fit_fusion(vectors: np.ndarray, metas: Sequence[AlbumMeta], labels: np.ndarray,
               groups: Sequence[np.ndarray], evidence: str = "both", *,
               linkage: str = DEFAULT_LINKAGE, metric: str = DEFAULT_METRIC, folds: int = 5,
               seed: int = 0, singles: bool = False) -> Fusion:
    """Fit the fusion on all ``groups`` and measure it by ``folds``-fold CV over them.

    Args:
        vectors: ``[n_albums, d]`` album vectors (unused for ``evidence="metadata"``).
        metas: each album's :class:`AlbumMeta`, aligned with ``vectors``.
        labels: each album's page (the artist it is taken to be).
        groups: artificial homonym groups of pages (:func:`make_homonym_groups`).
        evidence: ``"both"`` (audio + metadata) or ``"metadata"``.
        folds: CV folds of the measurement; 0 fits without measuring.
        singles: fit the threshold on each group's pages alone too (false splits cost).

    Returns:
        A :class:`Fusion` whose ``calibration["cv"]`` compares it with the audio threshold on the
        same folds: ``ari_audio``, ``ari_fused``, ``split_audio``, ``split_fused`` (share of the
        test folds' single pages split), per-fold lists, ``folds``.
    """
    check_evidence(evidence)
    if evidence == "audio":
        raise ConfigError("evidence 'audio' needs no fusion")
    if linkage == "ward":
        raise ConfigError("the fusion clusters precomputed distances: ward linkage is not possible")
    labels = np.asarray(labels)
    vectors = np.asarray(vectors, dtype=np.float64)
    fusion = _fit_once(groups, vectors, metas, labels, evidence, linkage, metric, singles)
    if not folds:
        return fusion
    folds = max(2, min(int(folds), len(groups)))
    if len(groups) >= 2:
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(groups))
        fold_of = np.empty(len(groups), dtype=np.int64)
        fold_of[order] = np.arange(len(groups)) % folds
        per = {"ari_audio": [], "ari_fused": [], "split_audio": [], "split_fused": [], "n": []}
        for f in range(folds):
            test = [g for g, k in zip(groups, fold_of) if k == f]
            train = [g for g, k in zip(groups, fold_of) if k != f]
            if not test or not train:
                continue
            fold = _fit_once(train, vectors, metas, labels, evidence, linkage, metric, singles)
            dist = fold.unit_distances(vectors, metas)
            t_audio, _, _ = fit_threshold(train, vectors, labels, linkage=linkage, metric=metric)
            # each test page alone (its albums' rows): how often a single artist is split
            pages_alone = [np.flatnonzero(labels == p) for g in test for p in g]
            per["ari_audio"].append(mean_ari(test, vectors, labels, t_audio, linkage, metric))
            per["ari_fused"].append(mean_ari(test, vectors, labels, fold.threshold, linkage, metric,
                                             distances=dist))
            per["split_audio"].append(_split_rate(
                pages_alone, lambda i: linkage_tree(vectors[i], linkage, metric) if len(i) > 1 else None,
                t_audio))
            per["split_fused"].append(_split_rate(
                pages_alone, lambda i, d=dist: distance_tree(d(i), linkage) if len(i) > 1 else None,
                fold.threshold))
            per["n"].append(len(test))
        if per["n"]:
            w = np.asarray(per["n"], dtype=np.float64)
            fusion.calibration["cv"] = {
                "folds": len(per["n"]), "seed": seed,
                **{k: float(np.average(v, weights=w)) for k, v in per.items() if k != "n"},
                "per_fold": {k: [float(x) for x in v] for k, v in per.items()}}
    return fusion


__all__ = ["EVIDENCE", "FUSION_C", "Fusion", "check_evidence", "fit_fusion"]
