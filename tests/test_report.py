"""``artdb report``: one self-contained HTML page, on a real catalog, index and audit rows.

The page is checked structurally (html.parser: no external resource, every figure a decodable
PNG, names escaped) and, where Debian's ``chromium`` is installed, rendered in headless Chromium
with its images loaded.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser

import pytest
import soundfile as sf
from audiofiles import write_audio
from click.testing import CliRunner
from sqlalchemy import select

from artdb.core.analysis.synonyms import find_synonyms
from artdb.core.config import Paths
from artdb.core.features.frontend import FrontendConfig
from artdb.core.ingest import IngestOptions
from artdb.core.ingest.service import index_catalog
from artdb.core.learn.registry import register_model
from artdb.core.reporting.excerpts import (
    CONTAINER_BYTES,
    PLANNED_BYTES_PER_SECOND,
    AudioBudget,
    ExcerptOptions,
    codec,
)
from artdb.core.reporting.figures import cluster_colour
from artdb.core.reporting.report import render_report, write_report
from artdb.db.models import Album, ArtistPage, AuditFinding, AuditRun, Track

FRONTEND = FrontendConfig(excerpt_seconds=1.0, excerpts_per_track=2)
NASTY = 'Les "Enfants" <Terribles> & Co'
# page -> {album: tone frequency}; "Eclipse" mixes a low and a high artist.
LIBRARY = {
    "Eclipse": {"Тёмная ночь": 150, "Dark II": 160, "Bright": 2400, "Bright II": 2500},
    NASTY: {"<Un>": 700, "Deux & Trois": 3500},
    "Dim Lanterns": {"Glow": 2400},
    "Dim Lanterns Band": {"Glow Again": 2450},
}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    root = tmp_path_factory.mktemp("reportlib")
    n = 0
    for page, albums in LIBRARY.items():
        for album, freq in albums.items():
            for t in range(2):
                n += 1
                tags = {"date": "2001", "label": "Kite Records"} if album == "Bright" else {}
                write_audio(root / f"p{n}" / f"{t}.wav", seconds=2.0, freq=freq + 7 * t, seed=n,
                            artist=page, album=album, title=f"{album} {t}", **tags)
    return root


@pytest.fixture
def audited(catalog, library, tmp_path):
    """An indexed catalog with a homonym run (two findings) and a synonym run."""
    paths = Paths.from_home(tmp_path / "home")
    model = register_model(catalog, name="mfcc-test", kind="mfcc", dim=38,
                           config={"frontend": FRONTEND.to_dict(), "n_mfcc": 20}, activate=True)
    index_catalog(catalog, paths, library, IngestOptions(workers=1))
    with catalog.session() as s:
        pages = dict(s.execute(select(ArtistPage.display_name, ArtistPage.id)).all())
        albums = dict(s.execute(select(Album.title, Album.id)).all())
        run = AuditRun(model_id=model.id, kind="homonym",
                       params={"threshold": 0.25, "linkage": "average", "metric": "cosine"})
        s.add(run)
        s.flush()
        eclipse = {albums["Тёмная ночь"]: 0, albums["Dark II"]: 0, albums["Bright"]: 1,
                   albums["Bright II"]: 1}
        s.add(AuditFinding(run_id=run.id, page_id=pages["Eclipse"], n_clusters=2, score=0.9,
                           proposal={"partition": {str(a): c for a, c in eclipse.items()},
                                     "threshold": 0.25}, evidence_hash="e1"))
        s.add(AuditFinding(run_id=run.id, page_id=pages[NASTY], n_clusters=2, score=0.4,
                           proposal={"partition": {str(albums["<Un>"]): 0, str(albums["Deux & Trois"]): 1}},
                           evidence_hash="e2"))
    find_synonyms(catalog, paths, model, min_score=0.0)
    return catalog, paths, model


class Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[str] = []
        self.images: list[dict] = []
        self.audios: list[dict] = []
        self.external: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if tag == "img":
            self.images.append(attrs)
        if tag == "audio":
            self.audios.append(attrs)
        for key in ("src", "href"):
            value = attrs.get(key) or ""
            if value and not value.startswith(("data:", "#")):
                self.external.append(value)
        if tag in ("script", "link", "iframe", "object", "embed"):
            self.external.append(tag)

    def handle_data(self, data):
        self.text.append(data)


def decode_png(src: str) -> bytes:
    prefix = "data:image/png;base64,"
    assert src.startswith(prefix)
    return base64.b64decode(src[len(prefix):], validate=True)


def test_report_is_self_contained_with_figures(audited, tmp_path):
    catalog, paths, model = audited
    out = tmp_path / "report.html"
    summary = write_report(catalog, paths, out, top=1)
    doc = out.read_text(encoding="utf-8")
    assert summary.path == str(out) and summary.findings == 2 and summary.figures == 1
    assert summary.synonym_candidates > 0 and summary.bytes == len(doc.encode())

    page = Page()
    page.feed(doc)
    page.close()
    assert page.external == [] and "style" in page.tags
    # --top 1: the best finding (Eclipse) has its figure, the other is listed without one
    assert len(page.images) == 1
    png = decode_png(page.images[0]["src"])
    assert png.startswith(PNG_SIGNATURE)
    import matplotlib.image

    pixels = matplotlib.image.imread(io.BytesIO(png), format="png")
    assert pixels.shape[0] > 100 and pixels.shape[1] > 300 and pixels.std() > 0.01  # not blank
    text = "".join(page.text)
    # names are escaped in the source and come back intact as text
    assert NASTY in text and "<Terribles>" not in doc
    assert "Eclipse" in text and "Dim Lanterns" in text
    assert text.index("Eclipse") < text.index(NASTY), "findings ranked by score"

    all_figs, _ = render_report(catalog, paths, model, top=10)
    parser = Page()
    parser.feed(all_figs)
    assert len(parser.images) == 2
    for img in parser.images:
        assert decode_png(img["src"]).startswith(PNG_SIGNATURE)


def test_a_page_restricted_audit_keeps_the_other_findings(audited):
    """A later audit of one page (as ingest runs on a release it cannot place) does not hide the
    open findings of the full run, which the report keeps describing."""
    catalog, paths, model = audited
    from artdb.core.analysis.audit import run_audit

    with catalog.session() as s:
        first = s.scalar(select(AuditRun.id))
    run_audit(catalog, paths, model, pages=["Dim Lanterns Band", "Eclipse"], threshold=0.25)
    doc, summary = render_report(catalog, paths, model, top=0)
    # Eclipse's finding is replaced by the new run's (the hand-made evidence differs), NASTY's kept
    assert summary.homonym_run_id == first and summary.findings == 2
    assert f"Audit run #{first} of" in doc and "Les &quot;Enfants&quot;" in doc and "Eclipse" in doc

    # a finding acted on stays in the table with its status, but is no longer shown in full
    from artdb.core.curation.reject import reject_finding

    with catalog.session() as s:
        nasty = s.scalar(select(AuditFinding.id).where(AuditFinding.status == "open",
                                                       AuditFinding.run_id == first))
    reject_finding(catalog, f"h{nasty}")
    doc, summary = render_report(catalog, paths, model, top=10, audio=ExcerptOptions(enabled=False))
    assert summary.findings == 2 and summary.figures == 1 and summary.audio_excerpts == 0
    assert f'id="finding-{nasty}"' not in doc and f"<td>h{nasty}</td>" in doc and "rejected" in doc
    assert "<audio" not in doc


def test_report_without_audits(catalog, tmp_path):
    paths = Paths.from_home(tmp_path / "home")
    doc, summary = render_report(catalog, paths)
    assert summary.findings == 0 and summary.synonym_candidates == 0 and summary.model is None
    assert "No homonym audit has been run" in doc and "<img" not in doc


def test_report_cli(audited, catalog_url, tmp_path):
    catalog, paths, model = audited
    out = tmp_path / "r.html"
    r = CliRunner().invoke(_cli(), ["--db", catalog_url, "--home", str(paths.home), "report",
                                    str(out), "--top", "2", "--json"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert summary["figures"] == 2 and out.exists()
    r = CliRunner().invoke(_cli(), ["--db", catalog_url, "--home", str(paths.home), "report", str(out)])
    assert r.exit_code == 0 and "2 homonym pages" in r.output


# Audio and browser cases need no second back-end (the SQL they read is covered by the others).
SQLITE_ONLY = pytest.mark.parametrize("catalog_url", ["sqlite"], indirect=True)


def decode_ogg(src: str) -> tuple[float, int]:
    """(seconds, sample rate) of a data: URI holding Ogg audio, read back by libsndfile."""
    prefix = "data:audio/ogg;base64,"
    assert src.startswith(prefix)
    audio, rate = sf.read(io.BytesIO(base64.b64decode(src[len(prefix):], validate=True)))
    assert audio.ndim == 1 and float(abs(audio).max()) > 0.01  # mono, not silence
    return len(audio) / rate, rate


def cluster_blocks(doc: str) -> dict[str, str]:
    """data-cluster -> the HTML of that cluster's block in the first finding."""
    first = doc[doc.index('<div class="finding"'):]
    first = first[:first.index('<div class="figs">')]
    marker = '<div class="cluster" data-cluster="'
    return {part.split('"', 1)[0]: part for part in first.split(marker)[1:]}


def test_report_a_curator_acts_from(audited, catalog_url):
    """Albums per cluster in the cluster's colour (the same in the map and the dendrogram),
    typical-track excerpts that decode at the asked length, the ref, the reason, the commands."""
    catalog, paths, model = audited
    options = ExcerptOptions(seconds=1.5, per_cluster=2)
    doc, summary = render_report(catalog, paths, model, top=10, audio=options)
    page = Page()
    page.feed(doc)
    text = "".join(page.text)
    with catalog.session() as s:
        finding = s.scalars(select(AuditFinding).order_by(AuditFinding.score.desc())).first()
        album_of = dict(s.execute(select(Track.id, Track.album_id)).all())
        albums = dict(s.execute(select(Album.title, Album.id)).all())
    ref = f"h{finding.id}"
    assert f"1. Eclipse {ref}" in text
    assert ("Two groups of albums whose sound differs more than between any two albums of a "
            "typical artist; margin 0.90") in text
    assert "average linkage on cosine distance" in text and "threshold=" not in text

    # every excerpt decodes at the asked length; the total is what the summary says, within budget
    assert page.audios and summary.audio_excerpts == len(page.audios)
    for a in page.audios:
        seconds, rate = decode_ogg(a["src"])
        assert abs(seconds - 1.5) < 0.01 and rate == codec()[1]
    assert summary.audio_bytes == sum(len(a["src"]) for a in page.audios) <= options.budget_bytes

    blocks = cluster_blocks(doc)
    assert set(blocks) == {"1", "2"}
    low = {albums["Тёмная ночь"], albums["Dark II"]}
    for c, block in blocks.items():
        colour = cluster_colour(c)
        assert f"border-color:{colour}" in block and f'<h4 style="color:{colour}">' in block
        # the cluster's map points wear the same colour
        assert re.search(rf'data-cluster="{c}"><title>[^<]*</title><circle [^>]*fill="{colour}"', doc)
        tracks = [int(t) for t in re.findall(r'data-track="(\d+)"', block)]
        assert len(tracks) == 2 and len({album_of[t] for t in tracks}) == 2  # one per album first
        in_low = {album_of[t] in low for t in tracks}
        assert in_low == {("Тёмная ночь" in block)}  # a cluster's excerpts come from its albums
    assert re.search(r"Bright</td><td class=num>2001</td><td>Kite Records</td><td class=num>2</td>",
                     doc)

    # the commands name this catalog (a test home and database are not the defaults)
    home = str(paths.home)
    assert f"--home {home}" in text and "--db" in text
    assert re.search(rf"artdb --home \S+ --db \S+ split Eclipse --finding {ref} --dry-run", text)
    assert f"reject {ref}" in text and "show Eclipse" in text
    assert re.search(r"merge \S.* --into .* --candidate s\d+ --dry-run", text)


@SQLITE_ONLY
def test_report_audio_budget_shortens_then_leaves_out(audited):
    catalog, paths, model = audited
    per_excerpt = CONTAINER_BYTES + 2 * PLANNED_BYTES_PER_SECOND[codec()[0]]
    # planned to fit 2-s excerpts of 4-s asks: every excerpt is shortened, the rest left out
    budget = AudioBudget(ExcerptOptions(seconds=4, min_seconds=1, budget_bytes=10 * per_excerpt), 10)
    assert budget.shortened and budget.seconds == 2.0
    options = ExcerptOptions(seconds=2.0, per_cluster=3, budget_bytes=3 * per_excerpt)
    doc, summary = render_report(catalog, paths, model, top=10, audio=options)
    page = Page()
    page.feed(doc)
    assert 0 < summary.audio_bytes <= options.budget_bytes
    assert summary.audio_excerpts == len(page.audios) < 10
    assert "left out: the audio budget" in doc and "shortened" in doc
    # first excerpts go first: both clusters of the best finding can be heard
    blocks = cluster_blocks(doc)
    assert all("<audio" in b for b in blocks.values())


@SQLITE_ONLY
def test_report_missing_audio_file_is_a_note(audited):
    catalog, paths, model = audited
    with catalog.session() as s:
        dark = s.scalar(select(Album.id).where(Album.title == "Dark II"))
        for t in s.scalars(select(Track).where(Track.album_id == dark)):
            t.audio_path = f"/nonexistent/{t.id}.wav"
    doc, summary = render_report(catalog, paths, model, top=1, audio=ExcerptOptions(seconds=1.5))
    assert "audio file missing: /nonexistent/" in doc and summary.audio_excerpts > 0
    assert "have no player: their audio file is missing" in doc


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PROBE = """<script>window.addEventListener("load", function () {
  var imgs = Array.from(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 100; }).length;
  document.body.setAttribute("data-probe", ok + "/" + imgs.length);
  var audios = Array.from(document.querySelectorAll("audio"));
  var playable = 0;
  audios.forEach(function (a) {
    a.addEventListener("loadedmetadata", function () {
      if (isFinite(a.duration) && a.duration > 1) { playable += 1; }
      document.body.setAttribute("data-audio", playable + "/" + audios.length);
    });
    a.preload = "metadata";
    a.load();
  });
});</script>"""


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not installed (apt-get install chromium)")
@SQLITE_ONLY
def test_report_renders_in_chromium(audited, tmp_path):
    catalog, paths, model = audited
    doc, summary = render_report(catalog, paths, model, top=10, audio=ExcerptOptions(seconds=1.5))
    assert summary.figures == 2 and summary.audio_excerpts > 4
    # The probe is added to a copy only: the report itself carries no script.
    probe = tmp_path / "probe.html"
    probe.write_text(doc.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run",
             f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000"]
    env = {**os.environ, "HOME": str(tmp_path)}
    dom = subprocess.run([*flags, "--dump-dom", probe.as_uri()], capture_output=True, text=True,
                         timeout=120, env=env)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert 'data-probe="2/2"' in dom.stdout, dom.stdout[:500]
    # every excerpt is an Ogg the browser decodes (its duration read from the data: URI)
    n = summary.audio_excerpts
    assert f'data-audio="{n}/{n}"' in dom.stdout, re.findall(r'data-audio="[^"]*"', dom.stdout)
    assert dom.stdout.count("<audio") == n and re.search(r"artdb --home \S+ --db \S+ reject h\d+", dom.stdout)
    assert dom.stdout.count("<circle") == 6  # every album of both figured pages on its map
    shot = tmp_path / "shot.png"
    run = subprocess.run([*flags, f"--screenshot={shot}", "--window-size=1200,1600", probe.as_uri()],
                         capture_output=True, text=True, timeout=120, env=env)
    assert run.returncode == 0 and shot.read_bytes().startswith(PNG_SIGNATURE), run.stderr[-2000:]
    if os.environ.get("ARTDB_KEEP_SCREENSHOT"):
        shutil.copy(shot, os.environ["ARTDB_KEEP_SCREENSHOT"])


def _cli():
    from artdb.cli.main import cli

    return cli
