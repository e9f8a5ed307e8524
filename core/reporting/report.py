"""The audit report: one self-contained HTML page a curator acts from (``artdb report OUT.html``).

For each homonym finding of the latest homonym audit run, best first: its ref (``h12``), a
one-line reason in words, each proposed cluster as a list of its albums (title, year, label,
track count) in the cluster's colour with short audio excerpts of its most typical tracks, the
albums' dendrogram and 2-D map in the same colours (:mod:`artdb.core.reporting.figures`), and the
exact commands to inspect, split or reject it (:class:`~artdb.core.curation.commands.CommandLine`,
with ``--home``/``--db`` when the catalog is not the default one). Then the open synonym
candidates, each with one excerpt per side and its commands. The run's parameters are said in
words.

Styles are inline, figures are a base64 PNG and inline SVG, excerpts are base64 Ogg
(:mod:`artdb.core.reporting.excerpts`, within an audio budget): the file can be mailed or archived
as is and plays offline; it carries no script. Every catalog string is HTML-escaped. A finding
may carry ``reasons`` (a list of plain-language lines, e.g. metadata evidence) in its proposal;
they are listed under the reason line.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import and_, func, or_, select

from artdb.core.analysis.findings import Partition, cluster_number, page_label
from artdb.core.analysis.fusion import Fusion
from artdb.core.analysis.metadata import reason_lines
from artdb.core.analysis.synonyms import SynonymPair, latest_homonym_run, synonym_candidates
from artdb.core.config import DEFAULT_LINKAGE, DEFAULT_METRIC, Paths
from artdb.core.curation.commands import CommandLine
from artdb.core.learn.registry import active_model
from artdb.core.recovery import require_folder_of, write_atomically
from artdb.core.reporting.excerpts import AudioBudget, Excerpt, ExcerptOptions, typical_tracks
from artdb.core.reporting.figures import UNASSIGNED, cluster_colour, dendrogram_png, map_svg
from artdb.core.vectors.index import open_level_index
from artdb.db.models import Album, ArtistPage, AuditFinding, AuditRun, Label, Model, Track
from artdb.db.session import Catalog

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2em auto;max-width:1100px;
color:#222;line-height:1.4;padding:0 1em}
h1{font-size:1.6em}h2{margin-top:2em;border-bottom:1px solid #ccc}h3{margin-bottom:.2em}
h4{margin:.2em 0}
table{border-collapse:collapse;width:100%;font-size:.92em}
th,td{border-bottom:1px solid #e3e3e3;padding:.3em .5em;text-align:left;vertical-align:top}
th{background:#f4f4f4}td.num{text-align:right;font-variant-numeric:tabular-nums}
.meta{color:#666;font-size:.9em}.finding{margin:1.5em 0;padding:1em;border:1px solid #ddd;
border-radius:6px}.figs{display:flex;flex-wrap:wrap;gap:1em;align-items:flex-start;margin:.8em 0}
.figs img{max-width:100%;height:auto}.none{color:#888;font-style:italic}
.ref{font-family:ui-monospace,monospace;background:#eef;border-radius:4px;padding:0 .3em}
.reason{font-size:1.02em;margin:.3em 0}.cluster{border-left:6px solid;padding:.2em .8em;margin:.8em 0}
.excerpts{display:flex;flex-wrap:wrap;gap:.6em 1.2em;margin:.4em 0}.excerpt{font-size:.85em}
.excerpt audio{display:block;height:2em;width:15em}
pre.commands{background:#f6f6f6;padding:.6em;border-radius:4px;white-space:pre-wrap;
overflow-wrap:anywhere;font-size:.88em}
"""
NUMBER_WORDS = ["no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]


@dataclass
class AlbumRow:
    id: int
    number: int  # 1, 2, … in the order the report lists the page's albums
    title: str
    year: int | None
    label: str | None
    tracks: int
    cluster: str  # "1", "2", … or UNASSIGNED (added since the audit)


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
    replaces_id: int | None = None
    reasons: list[str] = field(default_factory=list)  # extra plain-language evidence lines
    albums: list[AlbumRow] = field(default_factory=list)
    excerpts: dict[str, list[Excerpt]] = field(default_factory=dict)
    figure: str | None = None  # data: URI of the dendrogram PNG
    map: str | None = None  # inline SVG
    note: str | None = None

    @property
    def ref(self) -> str:
        return f"h{self.id}"

    @property
    def reason(self) -> str:
        """The finding in one plain-language line."""
        n = self.n_clusters
        groups = NUMBER_WORDS[n] if n < len(NUMBER_WORDS) else str(n)
        return (f"{groups.capitalize()} groups of albums whose sound differs more than between any "
                f"two albums of a typical artist; margin {self.score:.2f}")


@dataclass
class PairView:
    pair: SynonymPair
    excerpts: dict[str, Excerpt] = field(default_factory=dict)  # "a" / "b"


@dataclass
class ReportSummary:
    path: str
    model: str | None
    homonym_run_id: int | None
    findings: int
    figures: int
    synonym_candidates: int
    bytes: int
    audio_excerpts: int = 0
    audio_bytes: int = 0
    audio_budget: int = 0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _threshold(params: dict[str, Any]) -> float | None:
    for key in ("threshold", "distance_threshold"):
        value = (params or {}).get(key)
        if isinstance(value, (int, float)) and np.isfinite(value):
            return float(value)
    return None


def _cluster_order(c: str) -> tuple:
    """Clusters "1", "2", …, "10" in numeric order, the unassigned last."""
    return (c == UNASSIGNED, int(c) if str(c).isdigit() else 0, str(c))


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


# -- reading the catalog ---------------------------------------------------------------------------
def collect_findings(catalog: Catalog, run: AuditRun | None) -> list[FindingView]:
    """The findings of ``run`` that no later run superseded, and every open homonym finding of
    its model's other runs (a page-restricted audit, e.g. the one ingest runs on a release it
    could not place, moves only its pages' findings), best first."""
    if run is None:
        return []
    with catalog.session() as s:
        runs = select(AuditRun.id).where(AuditRun.kind == "homonym", AuditRun.model_id == run.model_id)
        rows = s.execute(
            select(AuditFinding, ArtistPage.display_name, ArtistPage.disambiguation)
            .join(ArtistPage, AuditFinding.page_id == ArtistPage.id)
            .where(or_(and_(AuditFinding.run_id == run.id, AuditFinding.status != "superseded"),
                       and_(AuditFinding.status == "open", AuditFinding.run_id.in_(runs))))
            .order_by(AuditFinding.score.desc(), AuditFinding.id)).all()
        counts = dict(s.execute(select(Album.page_id, func.count()).group_by(Album.page_id)).all())
    out = []
    for f, name, dis in rows:
        clusters = {str(cluster_number(c)): albums
                    for c, albums in Partition.from_proposal(f.proposal).clusters().items()}
        out.append(FindingView(f.id, f.page_id, page_label(name, dis), f.n_clusters, float(f.score),
                               f.status, clusters, counts.get(f.page_id, 0),
                               replaces_id=f.replaces_id, reasons=finding_reason_lines(f.proposal)))
    return out


def finding_reason_lines(proposal: Any) -> list[str]:
    """The reasons an audit stored in a finding's proposal, one line each: per-cluster reasons
    (``{"cluster", "versus", "reasons"}``, issue 16) in words; plain strings as they are."""
    reasons = proposal.get("reasons") if isinstance(proposal, dict) else None
    if not isinstance(reasons, list):
        return []
    if all(isinstance(r, dict) for r in reasons):
        return reason_lines(reasons)
    return [str(r) for r in reasons]


def fusion_html(params: dict[str, Any]) -> str:
    """The evidence a run weighed and, for a fused run, each feature's weight (its calibration
    report, issue 16); empty for an audio-only run."""
    if not isinstance(params.get("fusion"), dict):
        return ""
    lines = Fusion.from_dict(params["fusion"]).calibration_lines()
    return ('<div class="fusion"><p class="meta">' + _esc(lines[0]) + "</p><pre>"
            + _esc("\n".join(lines[1:])) + "</pre></div>")


def report_run(catalog: Catalog, model: Model | None) -> AuditRun | None:
    """The run the report describes: the model's latest audit of every page, else its latest."""
    latest = latest_homonym_run(catalog, model)
    if latest is None or not (latest.params or {}).get("pages"):
        return latest
    with catalog.session() as s:
        runs = s.scalars(select(AuditRun).where(AuditRun.kind == "homonym",
                                                AuditRun.model_id == latest.model_id)
                         .order_by(AuditRun.created_at.desc(), AuditRun.id.desc())).all()
    return next((r for r in runs if not (r.params or {}).get("pages")), latest)


def in_full(findings: list[FindingView], top: int) -> list[FindingView]:
    """The findings shown in full: the ``top`` best still open (a curator acts on those)."""
    return [f for f in findings if f.status == "open"][:max(0, top)]


def _page_albums(s, f: FindingView) -> list[AlbumRow]:
    """The page's albums, cluster by cluster (the unassigned last), numbered in that order."""
    rows = s.execute(
        select(Album.id, Album.title, Album.year, Label.name, func.count(Track.id))
        .outerjoin(Label, Label.id == Album.label_id).outerjoin(Track, Track.album_id == Album.id)
        .where(Album.page_id == f.page_id).group_by(Album.id, Album.title, Album.year, Label.name)
        .order_by(Album.year, Album.title, Album.id)).all()
    cluster_of = {a: c for c, members in f.clusters.items() for a in members}
    albums = sorted(rows, key=lambda r: _cluster_order(cluster_of.get(r[0], UNASSIGNED)))
    return [AlbumRow(aid, i, title, year, label, n, cluster_of.get(aid, UNASSIGNED))
            for i, (aid, title, year, label, n) in enumerate(albums, 1)]


def _track_rows(s, album_ids: list[int]) -> list[tuple[int, int, str, str, str]]:
    """``(track id, album id, track title, album title, audio path)`` of these albums."""
    if not album_ids:
        return []
    return [tuple(r) for r in s.execute(
        select(Track.id, Track.album_id, Track.title, Album.title, Track.audio_path)
        .join(Album, Album.id == Track.album_id).where(Track.album_id.in_(album_ids))
        .order_by(Track.id))]


class _Evidence:
    """Track vectors of the model and the excerpts asked of them, in priority order."""

    def __init__(self, catalog: Catalog, paths: Paths, model: Model | None, device: str):
        self.catalog = catalog
        self.index = open_level_index(catalog, paths, model, "track", device=device) if model else None
        self.requests: list[tuple[tuple, Excerpt, str]] = []

    def ask(self, album_ids: list[int], n: int, priority: tuple) -> list[Excerpt]:
        """Excerpt slots for the ``n`` most typical tracks of these albums (filled by ``fill``)."""
        if self.index is None or n <= 0:
            return []
        with self.catalog.session() as s:
            rows = _track_rows(s, album_ids)
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        have = self.index.contains(ids) if len(ids) else np.zeros(0, dtype=bool)
        if not have.any():
            return []
        ids = ids[have]
        info = {r[0]: r for r in rows}
        chosen = typical_tracks(ids, self.index.reconstruct(ids), {t: info[t][1] for t in ids}, n)
        out = []
        for rank, t in enumerate(chosen):
            _, _, title, album, path = info[t]
            e = Excerpt(int(t), title, album)
            self.requests.append(((rank, *priority, len(self.requests)), e, path))
            out.append(e)
        return out

    def fill(self, options: ExcerptOptions, workers: int = 2) -> AudioBudget:
        budget = AudioBudget(options, len(self.requests))
        budget.fill([(e, path) for _, e, path in sorted(self.requests, key=lambda r: r[0])], workers)
        return budget


def _attach_figures(catalog: Catalog, paths: Paths, model: Model | None, findings: list[FindingView],
                    run: AuditRun, top: int, device: str) -> list[str]:
    notes: list[str] = []
    chosen = in_full(findings, top)
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
        rows = [a for a in f.albums]
        ids = np.array([a.id for a in rows], dtype=np.int64)
        have = index.contains(ids) if len(ids) else np.zeros(0, dtype=bool)
        if not have.any():
            f.note = "no album vectors for this page under the model"
            continue
        rows = [a for a, h in zip(rows, have) if h]
        vectors = index.reconstruct(ids[have])
        labels = [a.cluster for a in rows]
        try:
            png = dendrogram_png([f"{a.number} · {a.title}" for a in rows], vectors, labels,
                                 threshold, linkage, metric)
        except ValueError as exc:  # e.g. an unknown linkage name in the run's params
            f.note = f"figure failed: {exc}"
            continue
        f.figure = _data_uri(png)
        hovers = [f"{a.number}. {a.title}" + (f" ({a.year})" if a.year else "")
                  + (f", cluster {a.cluster}" if a.cluster != UNASSIGNED else ", not in the proposal")
                  for a in rows]
        f.map = map_svg([a.number for a in rows], hovers, vectors, labels)
    if threshold is None:
        notes.append("the audit run records no distance threshold: dendrograms drawn without it")
    return notes


# -- HTML --------------------------------------------------------------------------------------------
def run_in_words(run: AuditRun, model_name: str) -> str:
    """The run's parameters as a sentence."""
    p = run.params or {}
    t = _threshold(p)
    when = run.created_at.strftime("%Y-%m-%d %H:%M") if run.created_at else "?"
    cut = f"cut at distance {t:.3f}" if t is not None else "cut at a threshold the run did not record"
    source = f" ({p['threshold_source']})" if p.get("threshold_source") else ""
    scope = (f"restricted to {', '.join(map(str, p['pages']))}" if p.get("pages")
             else "every page")
    audited = f"; {p['pages_audited']} pages audited" if p.get("pages_audited") is not None else ""
    evidence = p.get("evidence", "audio")
    distance = (f"{p.get('metric', DEFAULT_METRIC)} distance between album vectors" if evidence == "audio"
                else f"1 − P(same artist), {evidence} evidence fused (weights below)")
    return (f"Audit run #{run.id} of {when} with model {model_name}: the albums of {scope} with at "
            f"least {p.get('min_albums', 2)} albums were grouped by "
            f"{p.get('linkage', DEFAULT_LINKAGE)} linkage on {distance} and {cut}{source}{audited}. "
            "A page is flagged when "
            "its albums form two or more groups; the margin says how far the closest two groups "
            "lie beyond the threshold, relative to it (0.12 = 12 % farther apart than the cut).")


def _excerpts_html(excerpts: list[Excerpt]) -> str:
    if not excerpts:
        return ""
    parts = ['<div class="excerpts">']
    for e in excerpts:
        caption = f"{_esc(e.title)} <span class=meta>— {_esc(e.album)}</span>"
        if e.data_uri:
            parts.append(f'<div class="excerpt"><audio controls preload="none" src="{e.data_uri}" '
                         f'data-track="{e.track_id}" data-seconds="{e.seconds:g}"></audio>{caption}</div>')
        else:
            parts.append(f'<div class="excerpt">{caption}<br><span class="none">{_esc(e.note)}</span>'
                         "</div>")
    parts.append("</div>")
    return "".join(parts)


def _cluster_html(f: FindingView, cluster: str, albums: list[AlbumRow], kept: bool) -> str:
    colour = cluster_colour(cluster)
    if cluster == UNASSIGNED:
        title = "Added since the audit (not in the proposal)"
    else:
        role = "keeps the page" if kept else "becomes a new page"
        title = f"Cluster {_esc(cluster)} ({role})"
    rows = "".join(
        f"<tr><td class=num>{a.number}</td><td>{_esc(a.title)}</td><td class=num>{a.year or ''}</td>"
        f"<td>{_esc(a.label or '')}</td><td class=num>{a.tracks}</td></tr>" for a in albums)
    return (f'<div class="cluster" data-cluster="{_esc(cluster)}" style="border-color:{colour}">'
            f'<h4 style="color:{colour}">{title} · {len(albums)} album{"s" if len(albums) != 1 else ""}'
            f"</h4><table><thead><tr><th>#</th><th>album</th><th>year</th><th>label</th>"
            f"<th>tracks</th></tr></thead><tbody>{rows}</tbody></table>"
            f"{_excerpts_html(f.excerpts.get(cluster, []))}</div>")


def _finding_html(i: int, f: FindingView, cmd: CommandLine) -> str:
    replaces = f", replaces h{f.replaces_id}" if f.replaces_id else ""
    parts = [f'<div class="finding" id="finding-{f.id}"><h3>{i}. {_esc(f.page)} '
             f'<span class="ref">{f.ref}</span></h3>',
             f'<p class="reason">{_esc(f.reason)}.</p>']
    if f.reasons:
        parts.append("<ul class=reasons>" + "".join(f"<li>{_esc(r)}</li>" for r in f.reasons) + "</ul>")
    parts.append(f'<p class="meta">page #{f.page_id}, {f.n_albums} albums, {_esc(f.status)}'
                 f"{replaces}</p>")
    by_cluster: dict[str, list[AlbumRow]] = {}
    for a in f.albums:
        by_cluster.setdefault(a.cluster, []).append(a)
    for c in sorted(by_cluster, key=_cluster_order):
        parts.append(_cluster_html(f, c, by_cluster[c], kept=c == "1"))
    if f.figure or f.map:
        img = (f'<img src="{f.figure}" alt="{_esc("dendrogram of the albums of " + f.page)}">'
               if f.figure else "")
        parts.append(f'<div class="figs">{img}{f.map or ""}</div>')
    if f.note:
        parts.append(f'<p class="none">{_esc(f.note)}</p>')
    commands = [("look closer", cmd.show(f.page)), ("see what a split would move",
                                                   cmd.split(f.page, f.ref, dry_run=True)),
                ("split it", cmd.split(f.page, f.ref)), ("not two artists: dismiss", cmd.reject(f.ref))]
    parts.append('<pre class="commands">' + "\n".join(f"# {_esc(what)}\n{_esc(c)}"
                                                      for what, c in commands) + "</pre></div>")
    return "".join(parts)


def _findings_html(run: AuditRun | None, findings: list[FindingView], top: int, model_name: str,
                   cmd: CommandLine) -> str:
    if run is None:
        return '<p class="none">No homonym audit has been run (artdb audit).</p>'
    parts = [f'<p class="meta">{_esc(run_in_words(run, model_name))}</p>', fusion_html(run.params or {})]
    if not findings:
        parts.append('<p class="none">This run flagged no page.</p>')
        return "".join(parts)
    full = in_full(findings, top)
    parts.append("<table><thead><tr><th>#</th><th>ref</th><th>page</th><th>groups</th><th>albums</th>"
                 "<th>margin</th><th>status</th></tr></thead><tbody>")
    for i, f in enumerate(findings, 1):
        anchor = f'<a href="#finding-{f.id}">{_esc(f.page)}</a>' if f in full else _esc(f.page)
        parts.append(f"<tr><td class=num>{i}</td><td>{f.ref}</td><td>{anchor}</td>"
                     f"<td class=num>{f.n_clusters}</td><td class=num>{f.n_albums}</td>"
                     f"<td class=num>{f.score:.3f}</td><td>{_esc(f.status)}</td></tr>")
    parts.append("</tbody></table>")
    if len(full) < len(findings):
        parts.append(f'<p class="meta">The {len(full)} best open findings are shown in full '
                     "(--top); findings already acted on (split, rejected) are listed only.</p>")
    parts += [_finding_html(i, f, cmd) for i, f in enumerate(full, 1)]
    return "".join(parts)


def _evidence_words(p: SynonymPair) -> str:
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
    return "; ".join(bits)


def _synonyms_html(views: list[PairView], cmd: CommandLine) -> str:
    if not views:
        return '<p class="none">No open synonym candidates (artdb synonyms).</p>'
    rows = ['<p class="meta">Pages with different names that sound like one artist. "variant": the '
            'names are alike; "alias": unrelated names found by their sound. Merging moves page B '
            "into page A.</p>"
            "<table><thead><tr><th>#</th><th>ref</th><th>page A</th><th>page B</th><th>kind</th>"
            "<th>score</th><th>audio</th><th>name</th><th>metadata</th></tr></thead><tbody>"]
    for i, v in enumerate(views, 1):
        p = v.pair
        ref = p.ref or ""
        rows.append(f'<tr id="candidate-{p.id}"><td class=num>{i}</td><td>{_esc(ref)}</td>'
                    f"<td>{_esc(p.page_a)} <span class=meta>#{p.page_a_id}</span>"
                    f"{_excerpts_html([v.excerpts['a']] if 'a' in v.excerpts else [])}</td>"
                    f"<td>{_esc(p.page_b)} <span class=meta>#{p.page_b_id}</span>"
                    f"{_excerpts_html([v.excerpts['b']] if 'b' in v.excerpts else [])}</td>"
                    f"<td>{_esc(p.kind)}</td><td class=num>{p.score:.3f}</td>"
                    f"<td class=num>{p.audio_score:.3f}</td><td class=num>{p.name_score:.3f}</td>"
                    f"<td class=num>{p.metadata_score:.3f}</td></tr>")
        commands = [cmd.show(p.page_b), cmd.merge(p.page_b, p.page_a, ref or None, dry_run=True)]
        if ref:
            commands.append(cmd.reject(ref))
        rows.append(f'<tr><td></td><td colspan=8><span class=meta>{_esc(_evidence_words(p))}</span>'
                    f'<pre class="commands">{_esc(chr(10).join(commands))}</pre></td></tr>')
    rows.append("</tbody></table>")
    return "".join(rows)


def _page_album_ids(catalog: Catalog, page_id: int) -> list[int]:
    with catalog.session() as s:
        return list(s.scalars(select(Album.id).where(Album.page_id == page_id)))


def render_report(catalog: Catalog, paths: Paths, model: Model | None = None, top: int = 10,
                  synonyms: int = 100, device: str = "cpu", audio: ExcerptOptions | None = None,
                  workers: int = 2) -> tuple[str, ReportSummary]:
    """The report as an HTML string, and what it holds (``path`` left empty).

    ``top``: flagged pages shown in full (albums, excerpts, figures, commands) and synonym
    candidates given excerpts; ``synonyms``: candidates listed; ``audio``: the excerpts' length,
    number and budget (default :class:`ExcerptOptions`); ``workers``: processes encoding them.
    """
    audio = audio or ExcerptOptions()
    if model is None:
        model = active_model(catalog)
    model_name = model.name if model else "none"
    cmd = CommandLine.for_catalog(str(paths.home), catalog.url)
    run = report_run(catalog, model)
    findings = collect_findings(catalog, run)
    with catalog.session() as s:
        for f in in_full(findings, top):
            f.albums = _page_albums(s, f)
    notes = _attach_figures(catalog, paths, model, findings, run, top, device) if run else []
    pairs = [PairView(p) for p in synonym_candidates(catalog, status="open", limit=synonyms)]
    evidence = _Evidence(catalog, paths, model if audio.enabled else None, device)
    for i, f in enumerate(in_full(findings, top)):
        for c, members in f.clusters.items():
            f.excerpts[c] = evidence.ask(members, audio.per_cluster, (0, i, int(c)))
    for i, v in enumerate(pairs[:max(0, top)]):
        for side, pid in (("a", v.pair.page_a_id), ("b", v.pair.page_b_id)):
            got = evidence.ask(_page_album_ids(catalog, pid), 1, (1, i, side))
            if got:
                v.excerpts[side] = got[0]
    budget = evidence.fill(audio, workers)
    notes += budget.notes()
    if budget.failed:
        notes.append(f"{budget.failed} excerpt(s) have no player: their audio file is missing or "
                     "does not decode (see the note beside each)")
    generated = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    body = (
        f"<h1>artdb audit report</h1>"
        f'<p class="meta">Catalog {_esc(catalog.url)} · model {_esc(model_name)} · {generated}</p>'
        + "".join(f'<p class="meta note">{_esc(n)}</p>' for n in notes)
        + f"<h2>Homonym pages ({len(findings)})</h2>"
        + '<p class="meta">Artist pages whose albums sound like several artists. Each proposed '
          "cluster is a would-be artist: its albums, then a few seconds of its most typical tracks. "
          "Colours are the same in the lists, the dendrogram and the map.</p>"
        + _findings_html(run, findings, top, model_name, cmd)
        + f"<h2>Synonym candidates ({len(pairs)})</h2>" + _synonyms_html(pairs, cmd)
    )
    doc = ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
           "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
           f"<title>artdb report</title><style>{CSS}</style></head><body>{body}</body></html>\n")
    excerpts = [e for _, e, _ in evidence.requests if e.data_uri]
    summary = ReportSummary("", model.name if model else None, run.id if run else None, len(findings),
                            sum(1 for f in findings if f.figure), len(pairs), len(doc.encode()),
                            len(excerpts), budget.used, audio.budget_bytes, notes)
    return doc, summary


def write_report(catalog: Catalog, paths: Paths, out: str | Path, model: Model | None = None,
                 top: int = 10, synonyms: int = 100, device: str = "cpu",
                 audio: ExcerptOptions | None = None, workers: int = 2) -> ReportSummary:
    """Render the report and write it to ``out`` atomically (a temporary file, then a rename)."""
    require_folder_of(out)  # before the rendering, which can take a while
    doc, summary = render_report(catalog, paths, model, top=top, synonyms=synonyms, device=device,
                                 audio=audio, workers=workers)
    out = write_atomically(out, lambda f: f.write(doc.encode("utf-8")))
    summary.path = str(out)
    return summary


__all__ = ["AlbumRow", "FindingView", "ReportSummary", "collect_findings", "render_report",
           "run_in_words", "write_report"]
