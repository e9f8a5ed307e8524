"""How hard is a synthetic catalog? A no-learning baseline on its homonym pages.

For each album: MFCC (20 coefficients, librosa) mean and standard deviation over all frames of its
tracks. For each planted homonym page: agglomerative clustering (the default linkage,
``DEFAULT_LINKAGE``, average; Euclidean on features standardised over the whole catalog) of the
page's albums with a distance threshold; the adjusted Rand index against the true artists. The
threshold is chosen by leave-one-page-out cross-validation over a sweep (and the best single
threshold, an optimistic bound, is reported too).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from artdb.core.config import DEFAULT_LINKAGE
from artdb.core.synth.truth import CatalogTruth

FEATURE_RATE = 22050


def album_features(root: str | Path, truth: CatalogTruth, albums: list[str] | None = None,
                   n_mfcc: int = 20) -> dict[str, np.ndarray]:
    """MFCC mean+std per album (over the frames of all its tracks)."""
    import librosa

    wanted = set(albums) if albums is not None else {a.id for a in truth.albums}
    frames: dict[str, list[np.ndarray]] = {}
    for track in truth.tracks:
        if track.album_id not in wanted:
            continue
        y, _ = librosa.load(str(Path(root) / track.path), sr=FEATURE_RATE, mono=True)
        frames.setdefault(track.album_id, []).append(
            librosa.feature.mfcc(y=y, sr=FEATURE_RATE, n_mfcc=n_mfcc))
    out = {}
    for album_id, mats in frames.items():
        m = np.concatenate(mats, axis=1)
        out[album_id] = np.concatenate([m.mean(axis=1), m.std(axis=1)])
    return out


def _cluster_ari(x: np.ndarray, labels: list[str], threshold: float) -> float:
    from sklearn.cluster import AgglomerativeClustering
    from sklearn.metrics import adjusted_rand_score

    pred = AgglomerativeClustering(n_clusters=None, distance_threshold=threshold,
                                   linkage=DEFAULT_LINKAGE).fit_predict(x)
    return float(adjusted_rand_score(labels, pred))


@dataclass
class DifficultyReport:
    groups: int
    albums: int
    ari_cv: float  # threshold chosen on the other pages (leave one page out)
    ari_best: float  # best single threshold for all pages (optimistic)
    best_threshold: float
    ari_random: float  # random partition with the true number of clusters (chance)
    per_group_cv: list[float]

    def to_dict(self) -> dict:
        return asdict(self)


def homonym_baseline(root: str | Path, truth: CatalogTruth | None = None,
                     thresholds: np.ndarray | None = None, seed: int = 0) -> DifficultyReport:
    """Score the MFCC baseline on the homonym pages of the catalog at ``root``."""
    from sklearn.metrics import adjusted_rand_score

    truth = truth or CatalogTruth.load(root)
    if not truth.homonym_groups:
        raise ValueError("the catalog has no homonym groups to score")
    album_artist = truth.album_artist()
    pages = {h.page_name: [a.id for a in truth.albums if a.page_name == h.page_name]
             for h in truth.homonym_groups}
    feats = album_features(root, truth)
    ids = sorted(feats)
    mat = np.stack([feats[i] for i in ids])
    mat = (mat - mat.mean(0)) / (mat.std(0) + 1e-9)
    row = {a: i for i, a in enumerate(ids)}
    if thresholds is None:
        thresholds = np.linspace(0.5, 12.0, 47)

    # ari[g, t]: page g clustered with threshold t
    groups = list(pages.values())
    ari = np.array([[_cluster_ari(mat[[row[a] for a in albums]],
                                  [album_artist[a] for a in albums], float(th))
                     for th in thresholds] for albums in groups])
    per_group = []
    for g in range(len(groups)):
        others = np.delete(ari, g, axis=0)
        t = int(np.argmax(others.mean(0))) if len(others) else int(np.argmax(ari[g]))
        per_group.append(float(ari[g, t]))
    best = int(np.argmax(ari.mean(0)))

    rng = np.random.default_rng(seed)
    chance = []
    for albums in groups:
        labels = [album_artist[a] for a in albums]
        k = len(set(labels))
        for _ in range(20):
            chance.append(adjusted_rand_score(labels, rng.integers(k, size=len(labels))))
    return DifficultyReport(
        groups=len(groups), albums=sum(len(g) for g in groups),
        ari_cv=float(np.mean(per_group)), ari_best=float(ari[:, best].mean()),
        best_threshold=float(thresholds[best]), ari_random=float(np.mean(chance)),
        per_group_cv=[round(x, 3) for x in per_group],
    )
