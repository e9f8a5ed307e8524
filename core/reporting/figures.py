"""The report's figures of one flagged page, in the proposed clusters' colours.

- :func:`dendrogram_png`: the albums' dendrogram (SciPy, the audit's linkage and metric) with the
  distance threshold drawn. A branch takes its cluster's colour when every album under it is in
  that cluster, grey when it joins two clusters; leaves are labelled with the album's number in
  the report's album lists. Drawn with matplotlib's Agg canvas (no pyplot state, no display).
- :func:`map_svg`: the albums on the first two principal axes of their vectors, as inline SVG:
  each point carries its album's number and a ``<title>`` (title, year, cluster) that a browser
  shows on hover.

Colours come from :func:`cluster_colour` only, so the album lists, the dendrogram and the map
always agree.
"""

from __future__ import annotations

import html
import io
import warnings
from collections.abc import Sequence

import numpy as np
from scipy.cluster.hierarchy import dendrogram

from artdb.core.analysis.clustering import linkage_tree
from artdb.core.config import DEFAULT_LINKAGE, DEFAULT_METRIC
from artdb.core.errors import MissingExtraError

UNASSIGNED = "?"
PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2",
           "#bcbd22", "#7f7f7f"]
GREY = "#999999"
JOIN = "#555555"


def cluster_colour(cluster: str | int) -> str:
    """The colour of cluster ``cluster`` (numbered from 1) everywhere in the report."""
    text = str(cluster)
    if not text.isdigit() or int(text) < 1:
        return GREY
    return PALETTE[(int(text) - 1) % len(PALETTE)]


def pca_2d(vectors: np.ndarray) -> np.ndarray:
    """The rows projected on their two principal axes (zeros where there is no spread)."""
    x = np.asarray(vectors, dtype=np.float64)
    out = np.zeros((len(x), 2))
    if len(x) < 2:
        return out
    x = x - x.mean(axis=0)
    _, sv, vt = np.linalg.svd(x, full_matrices=False)
    proj = x @ vt[:2].T
    keep = sv[:2] > 1e-9 * max(float(sv[0]), 1e-300)  # an axis with no spread is left at 0
    out[:, :proj.shape[1]] = proj * keep
    return out


def _import_matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ModuleNotFoundError as exc:  # pragma: no cover - present in the dev extra
        raise MissingExtraError("matplotlib", "dev") from exc
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    return Figure, FigureCanvasAgg


def branch_colours(z: np.ndarray, labels: Sequence[str]) -> dict[int, str]:
    """Node id of linkage matrix ``z`` -> colour: its cluster's when all its leaves share one."""
    n = len(labels)
    below: list[str | None] = list(labels)
    colours = {}
    for k, (a, b, _, _) in enumerate(z):
        la, lb = below[int(a)], below[int(b)]
        below.append(la if la == lb else None)
        node = below[n + k]
        colours[n + k] = cluster_colour(node) if node not in (None, UNASSIGNED) else JOIN
    return colours


def dendrogram_png(names: Sequence[str], vectors: np.ndarray, labels: Sequence[str],
                   threshold: float | None, linkage: str = DEFAULT_LINKAGE,
                   metric: str = DEFAULT_METRIC) -> bytes:
    """PNG bytes of the albums' dendrogram; ``labels[i]`` is album i's cluster ("1", "2", …)."""
    Figure, FigureCanvasAgg = _import_matplotlib()
    fig = Figure(figsize=(6.4, 3.6), dpi=80)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    x = np.asarray(vectors, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # missing glyphs for some scripts are not fatal
        if len(x) >= 2:
            z = linkage_tree(x, linkage, metric if linkage != "ward" else "euclidean")
            colours = branch_colours(z, labels)
            short = [t if len(t) <= 24 else t[:23] + "…" for t in names]
            tree = dendrogram(z, ax=ax, labels=short, leaf_rotation=60,
                              link_color_func=lambda k: colours.get(k, JOIN))
            for tick, i in zip(ax.get_xticklabels(), tree["leaves"]):
                tick.set_color(cluster_colour(labels[i]))
                tick.set_fontsize(7)
            if threshold is not None:
                ax.axhline(threshold, color="#444444", linestyle="--", linewidth=1)
                ax.text(ax.get_xlim()[1], threshold, f" threshold {threshold:.3g}",
                        color="#444444", va="bottom", ha="right", fontsize=8)
            ax.set_ylabel(f"{metric} distance ({linkage} linkage)", fontsize=8)
        else:
            ax.text(0.5, 0.5, "one album: no hierarchy", ha="center", va="center")
            ax.set_axis_off()
        ax.set_title("albums, hierarchical clustering", fontsize=10)
        ax.tick_params(axis="y", labelsize=7)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
    return buf.getvalue()


def map_svg(numbers: Sequence[int], hovers: Sequence[str], vectors: np.ndarray,
            labels: Sequence[str], width: int = 380, height: int = 288) -> str:
    """Inline SVG: album ``numbers[i]`` at its PCA position in its cluster's colour, with
    ``hovers[i]`` as the point's ``<title>``."""
    xy = pca_2d(vectors)
    pad = 22
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    span = np.where(hi - lo > 1e-12, hi - lo, 1.0)
    px = pad + (xy[:, 0] - lo[0]) / span[0] * (width - 2 * pad)
    py = height - pad - (xy[:, 1] - lo[1]) / span[1] * (height - 2 * pad)
    px = np.where(hi[0] - lo[0] > 1e-12, px, width / 2)
    py = np.where(hi[1] - lo[1] > 1e-12, py, height / 2)
    parts = [f'<svg class="map" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="albums, PCA of album vectors">'
             f'<rect x="0.5" y="0.5" width="{width - 1}" height="{height - 1}" fill="#fff" '
             'stroke="#ddd"/><text x="8" y="15" font-size="11" fill="#555">albums, PCA of album '
             "vectors (hover a point)</text>"]
    for i in np.argsort([str(lab) for lab in labels], kind="stable")[::-1]:
        colour = cluster_colour(labels[i])
        parts.append(f'<g class="point" data-cluster="{html.escape(str(labels[i]))}">'
                     f"<title>{html.escape(hovers[i])}</title>"
                     f'<circle cx="{px[i]:.1f}" cy="{py[i]:.1f}" r="8" fill="{colour}" '
                     'stroke="#fff" stroke-width="1"/>'
                     f'<text x="{px[i]:.1f}" y="{py[i] + 3.5:.1f}" font-size="9" fill="#fff" '
                     f'text-anchor="middle">{int(numbers[i])}</text></g>')
    parts.append("</svg>")
    return "".join(parts)


__all__ = ["PALETTE", "UNASSIGNED", "branch_colours", "cluster_colour", "dendrogram_png", "map_svg",
           "pca_2d"]
