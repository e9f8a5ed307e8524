"""The audit report: one self-contained HTML page (``artdb report OUT.html``).

It shows the ranked homonym findings of the latest homonym audit run — for the first ``top``
flagged pages a dendrogram of the page's album vectors (SciPy, with the audit's distance threshold
drawn) and a 2-D map of its albums (PCA of the album vectors) coloured by proposed cluster — and
the open synonym candidates. Styles are inline and figures are base64 PNGs drawn with
matplotlib's Agg canvas (no pyplot state, no display), so the file can be mailed or archived as
is; every name from the catalog is HTML-escaped.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.cluster.hierarchy import dendrogram
from sqlalchemy import func, select

from artdb.core.analysis.clustering import linkage_tree
from artdb.core.analysis.findings import Partition, cluster_number, page_label
from artdb.core.analysis.synonyms import SynonymPair, latest_homonym_run, synonym_candidates
from artdb.core.config import DEFAULT_LINKAGE, DEFAULT_METRIC, Paths
from artdb.core.errors import MissingExtraError
from artdb.core.learn.registry import active_model
from artdb.core.recovery import require_folder_of, write_atomically
from artdb.core.vectors.index import open_level_index
from artdb.db.models import Album, ArtistPage, AuditFinding, AuditRun, Model
from artdb.db.session import Catalog

UNASSIGNED = "?"
PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2",
           "#bcbd22", "#7f7f7f"]

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2em auto;max-width:1100px;
color:#222;line-height:1.4;padding:0 1em}
h1{font-size:1.6em}h2{margin-top:2em;border-bottom:1px solid #ccc}h3{margin-bottom:.2em}
table{border-collapse:collapse;width:100%;font-size:.92em}
th,td{border-bottom:1px solid #e3e3e3;padding:.3em .5em;text-align:left;vertical-align:top}
th{background:#f4f4f4}td.num{text-align:right;font-variant-numeric:tabular-nums}
.meta{color:#666;font-size:.9em}.finding{margin:1.5em 0;padding:1em;border:1px solid #ddd;
border-radius:6px}.figs img{max-width:100%;height:auto}.none{color:#888;font-style:italic}
.swatch{display:inline-block;width:.8em;height:.8em;border-radius:50%;margin-right:.3em}
"""


@dataclass
class FindingView:
    id: int
    page_id: int
    page: str
    n_clusters: int
    score: float
    status: str
    clusters: dict[str, list[int]]  # the proposed partition: cluster ("1" = largest) -> album ids
    n_albums: int
    figure: str | None = None  # data: URI of the PNG
    note: str | None = None


@dataclass
class ReportSummary:
    path: str
    model: str | None
    homonym_run_id: int | None
    findings: int
    figures: int
    synonym_candidates: int
    bytes: int
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _import_matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ModuleNotFoundError as exc:  # pragma: no cover - present in the dev extra
        raise MissingExtraError("matplotlib", "dev") from exc
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    return Figure, FigureCanvasAgg


def _threshold(params: dict[str, Any]) -> float | None:
    for key in ("threshold", "distance_threshold"):
        value = (params or {}).get(key)
        if isinstance(value, (int, float)) and np.isfinite(value):
            return float(value)
    return None


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


def finding_figure(titles: list[str], vectors: np.ndarray, labels: list[str],
                   threshold: float | None, linkage: str = DEFAULT_LINKAGE,
                   metric: str = DEFAULT_METRIC, page: str = "") -> bytes:
    """PNG bytes: the albums' dendrogram (threshold drawn) beside their PCA map, by cluster."""
    Figure, FigureCanvasAgg = _import_matplotlib()
    clusters = sorted(set(labels), key=_cluster_order)
    colour = {c: ("#999999" if c == UNASSIGNED else PALETTE[i % len(PALETTE)])
              for i, c in enumerate(clusters)}
    fig = Figure(figsize=(10, 3.8), dpi=80)
    FigureCanvasAgg(fig)
    ax_d, ax_p = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.25, 1]})
    x = np.asarray(vectors, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # missing glyphs for some scripts are not fatal
        if len(x) >= 2:
            z = linkage_tree(x, linkage, metric if linkage != "ward" else "euclidean")
            short = [t if len(t) <= 22 else t[:21] + "…" for t in titles]
            tree = dendrogram(z, ax=ax_d, labels=short, leaf_rotation=60,
                              color_threshold=threshold or 0, above_threshold_color="#555555")
            for tick, i in zip(ax_d.get_xticklabels(), tree["leaves"]):
                tick.set_color(colour[labels[i]])
                tick.set_fontsize(7)
            if threshold is not None:
                ax_d.axhline(threshold, color="#d62728", linestyle="--", linewidth=1)
                ax_d.text(ax_d.get_xlim()[1], threshold, f" t={threshold:.3g}", color="#d62728",
                          va="bottom", ha="right", fontsize=8)
            ax_d.set_ylabel(f"{metric} distance ({linkage})")
        else:
            ax_d.text(0.5, 0.5, "one album: no hierarchy", ha="center", va="center")
            ax_d.set_axis_off()
        ax_d.set_title("albums, hierarchical clustering", fontsize=10)
        xy = pca_2d(x)
        for c in clusters:
            idx = [i for i, lab in enumerate(labels) if lab == c]
            ax_p.scatter(xy[idx, 0], xy[idx, 1], s=45, color=colour[c], label=f"cluster {c}",
                         edgecolors="white", linewidths=0.5)
        ax_p.set_title("albums, PCA of album vectors", fontsize=10)
        ax_p.tick_params(labelsize=7)
        if clusters:
            ax_p.legend(fontsize=7, loc="best", frameon=False)
        if page:
            fig.suptitle(page, fontsize=11)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
    return buf.getvalue()


def _cluster_order(c: str) -> tuple:
    """Clusters "1", "2", …, "10" in numeric order, the unassigned last."""
    return (c == UNASSIGNED, int(c) if str(c).isdigit() else 0, str(c))


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def collect_findings(catalog: Catalog, run: AuditRun | None) -> list[FindingView]:
    if run is None:
        return []
    with catalog.session() as s:
        rows = s.execute(
            select(AuditFinding, ArtistPage.display_name, ArtistPage.disambiguation)
            .join(ArtistPage, AuditFinding.page_id == ArtistPage.id)
            .where(AuditFinding.run_id == run.id)
            .order_by(AuditFinding.score.desc(), AuditFinding.id)).all()
        counts = dict(s.execute(select(Album.page_id, func.count()).group_by(Album.page_id)).all())
    out = []
    for f, name, dis in rows:
        clusters = {str(cluster_number(c)): albums
                    for c, albums in Partition.from_proposal(f.proposal).clusters().items()}
        out.append(FindingView(f.id, f.page_id, page_label(name, dis), f.n_clusters, float(f.score),
                               f.status, clusters, counts.get(f.page_id, 0)))
    return out


def _attach_figures(catalog: Catalog, paths: Paths, model: Model | None, findings: list[FindingView],
                    run: AuditRun, top: int, device: str) -> list[str]:
    notes: list[str] = []
    chosen = findings[:max(0, top)]
    if not chosen:
        return notes
    if model is None:
        notes.append("no model: album vectors unavailable, figures left out")
        return notes
    index = open_level_index(catalog, paths, model, "album", device=device)
    params = run.params or {}
    linkage = params.get("linkage", DEFAULT_LINKAGE)
    metric = params.get("metric", DEFAULT_METRIC)
    threshold = _threshold(params)
    for f in chosen:
        with catalog.session() as s:
            albums = s.execute(select(Album.id, Album.title).where(Album.page_id == f.page_id)
                               .order_by(Album.id)).all()
        ids = np.array([a for a, _ in albums], dtype=np.int64)
        have = index.contains(ids) if len(ids) else np.zeros(0, dtype=bool)
        if not have.any():
            f.note = "no album vectors for this page under the model"
            continue
        title = dict(albums)
        ids = ids[have]
        cluster_of = {a: c for c, members in f.clusters.items() for a in members}
        labels = [cluster_of.get(int(a), UNASSIGNED) for a in ids]
        try:
            png = finding_figure([title[int(a)] for a in ids], index.reconstruct(ids), labels,
                                 threshold, linkage, metric, page=f.page)
        except ValueError as exc:  # e.g. an unknown linkage name in the run's params
            f.note = f"figure failed: {exc}"
            continue
        f.figure = _data_uri(png)
    if threshold is None:
        notes.append("the audit run records no distance threshold: dendrograms drawn without it")
    return notes


def _findings_html(run: AuditRun | None, findings: list[FindingView], top: int) -> str:
    if run is None:
        return '<p class="none">No homonym audit has been run (artdb audit).</p>'
    params = ", ".join(f"{_esc(k)}={_esc(v)}" for k, v in sorted((run.params or {}).items()))
    parts = [f'<p class="meta">Run #{run.id}, {_esc(run.created_at)}; {params}</p>']
    if not findings:
        parts.append('<p class="none">This run flagged no page.</p>')
        return "".join(parts)
    parts.append("<table><thead><tr><th>#</th><th>page</th><th>clusters</th><th>albums</th>"
                 "<th>score</th><th>status</th></tr></thead><tbody>")
    for i, f in enumerate(findings, 1):
        anchor = f'<a href="#finding-{f.id}">{_esc(f.page)}</a>' if i <= top else _esc(f.page)
        parts.append(f"<tr><td class=num>{i}</td><td>{anchor}</td><td class=num>{f.n_clusters}</td>"
                     f"<td class=num>{f.n_albums}</td><td class=num>{f.score:.3f}</td>"
                     f"<td>{_esc(f.status)}</td></tr>")
    parts.append("</tbody></table>")
    for i, f in enumerate(findings[:top], 1):
        parts.append(f'<div class="finding" id="finding-{f.id}"><h3>{i}. {_esc(f.page)}</h3>'
                     f'<p class="meta">page #{f.page_id}, {f.n_clusters} proposed clusters, '
                     f"score {f.score:.3f}, {_esc(f.status)}</p>")
        if f.figure:
            parts.append(f'<div class="figs"><img src="{f.figure}" alt="{_esc("albums of " + f.page)}">'
                         "</div>")
        elif f.note:
            parts.append(f'<p class="none">{_esc(f.note)}</p>')
        if f.clusters:
            items = "".join(f"<li>cluster {_esc(c)}: {len(a)} albums</li>"
                            for c, a in sorted(f.clusters.items(), key=lambda kv: _cluster_order(kv[0])))
            parts.append(f"<ul>{items}</ul>")
        parts.append("</div>")
    return "".join(parts)


def _synonyms_html(pairs: list[SynonymPair]) -> str:
    if not pairs:
        return '<p class="none">No open synonym candidates (artdb synonyms).</p>'
    rows = ["<table><thead><tr><th>#</th><th>page A</th><th>page B</th><th>score</th><th>audio</th>"
            "<th>name</th><th>metadata</th><th>evidence</th></tr></thead><tbody>"]
    for i, p in enumerate(pairs, 1):
        ev = p.evidence or {}
        meta = ev.get("metadata") or {}
        audio = ev.get("audio") or {}
        bits = []
        if ev.get("source"):
            bits.append(f"found by {ev['source']}")
        if audio.get("cosine") is not None:
            bits.append(f"cosine {audio['cosine']:.3f}")
        for side in ("unit_a", "unit_b"):
            if (audio.get(side) or {}).get("cluster") is not None:
                bits.append(f"{side[-1].upper()}: cluster {audio[side]['cluster']}")
        if meta.get("shared_labels"):
            bits.append("labels " + ", ".join(meta["shared_labels"]))
        if meta.get("year_gap") is not None:
            bits.append(f"years {meta.get('years_a')} / {meta.get('years_b')}")
        if meta.get("shared_genres"):
            bits.append("genre " + ", ".join(meta["shared_genres"]))
        rows.append(f"<tr><td class=num>{i}</td>"
                    f"<td>{_esc(p.page_a)} <span class=meta>#{p.page_a_id}</span></td>"
                    f"<td>{_esc(p.page_b)} <span class=meta>#{p.page_b_id}</span></td>"
                    f"<td class=num>{p.score:.3f}</td><td class=num>{p.audio_score:.3f}</td>"
                    f"<td class=num>{p.name_score:.3f}</td><td class=num>{p.metadata_score:.3f}</td>"
                    f"<td class=meta>{_esc('; '.join(bits))}</td></tr>")
    rows.append("</tbody></table>")
    return "".join(rows)


def render_report(catalog: Catalog, paths: Paths, model: Model | None = None, top: int = 10,
                  synonyms: int = 100, device: str = "cpu") -> tuple[str, ReportSummary]:
    """The report as an HTML string, and what it holds (``path`` left empty)."""
    if model is None:
        model = active_model(catalog)
    run = latest_homonym_run(catalog, model)
    findings = collect_findings(catalog, run)
    notes = _attach_figures(catalog, paths, model, findings, run, top, device) if run else []
    pairs = synonym_candidates(catalog, status="open", limit=synonyms)
    generated = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    model_name = model.name if model else "none"
    body = (
        f"<h1>artdb audit report</h1>"
        f'<p class="meta">Catalog {_esc(catalog.url)} · model {_esc(model_name)} · {generated}</p>'
        + "".join(f'<p class="meta">{_esc(n)}</p>' for n in notes)
        + f"<h2>Homonym pages ({len(findings)})</h2>" + _findings_html(run, findings, top)
        + f"<h2>Synonym candidates ({len(pairs)})</h2>" + _synonyms_html(pairs)
    )
    doc = ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
           "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
           f"<title>artdb report</title><style>{CSS}</style></head><body>{body}</body></html>\n")
    summary = ReportSummary("", model.name if model else None, run.id if run else None, len(findings),
                            sum(1 for f in findings if f.figure), len(pairs), len(doc.encode()), notes)
    return doc, summary


def write_report(catalog: Catalog, paths: Paths, out: str | Path, model: Model | None = None,
                 top: int = 10, synonyms: int = 100, device: str = "cpu") -> ReportSummary:
    """Render the report and write it to ``out`` atomically (a temporary file, then a rename)."""
    require_folder_of(out)  # before the rendering, which can take a while
    doc, summary = render_report(catalog, paths, model, top=top, synonyms=synonyms, device=device)
    out = write_atomically(out, lambda f: f.write(doc.encode("utf-8")))
    summary.path = str(out)
    return summary
