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
import shutil
import subprocess
from html.parser import HTMLParser

import pytest
from audiofiles import write_audio
from click.testing import CliRunner
from sqlalchemy import select

from artdb.core.analysis.synonyms import find_synonyms
from artdb.core.config import Paths
from artdb.core.features.frontend import FrontendConfig
from artdb.core.ingest import IngestOptions
from artdb.core.ingest.service import index_catalog
from artdb.core.learn.registry import register_model
from artdb.core.reporting.report import render_report, write_report
from artdb.db.models import Album, ArtistPage, AuditFinding, AuditRun

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
                write_audio(root / f"p{n}" / f"{t}.wav", seconds=2.0, freq=freq + 7 * t, seed=n,
                            artist=page, album=album, title=f"{album} {t}")
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
        self.external: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if tag == "img":
            self.images.append(attrs)
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


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PROBE = """<script>window.addEventListener("load", function () {
  var imgs = Array.from(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 100; }).length;
  document.body.setAttribute("data-probe", ok + "/" + imgs.length);
});</script>"""


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not installed (apt-get install chromium)")
def test_report_renders_in_chromium(audited, tmp_path):
    catalog, paths, model = audited
    doc, summary = render_report(catalog, paths, model, top=10)
    assert summary.figures == 2
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
    shot = tmp_path / "shot.png"
    run = subprocess.run([*flags, f"--screenshot={shot}", "--window-size=1200,1600", probe.as_uri()],
                         capture_output=True, text=True, timeout=120, env=env)
    assert run.returncode == 0 and shot.read_bytes().startswith(PNG_SIGNATURE), run.stderr[-2000:]


def _cli():
    from artdb.cli.main import cli

    return cli
