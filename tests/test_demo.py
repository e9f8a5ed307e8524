"""``artdb demo`` end to end on a tiny catalog: every stage runs and the comparison is complete."""

from __future__ import annotations

import json
import shlex

import click
from click.testing import CliRunner

from artdb.cli.main import cli


def test_demo_runs_end_to_end(tmp_path, artdb_home):
    result = CliRunner().invoke(cli, [
        "demo", "--artists", "14", "--albums-per-artist", "3", "--tracks-per-album", "2",
        "--seconds", "5", "--homonym-groups", "2", "--synonym-pairs", "2", "--train-steps", "8",
        "--json", "--no-progress"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    # MFCC, the CNN learnt from scratch, and what `artdb train` trains with no options (the report's)
    assert set(out["systems"]) == {"mfcc-baseline", "cnn-scratch", "artdb-default"}
    assert out["systems"]["artdb-default"]["model"] == "artdb-default"
    assert len(out["homonym_pages"]) == 2 and len(out["synonym_pairs"]) == 2
    for page in out["homonym_pages"]:
        assert page["true_artists"] >= 2
        for prefix in ("", "mfcc_", "cnn_"):  # each system: a score exactly when the page was audited
            audited = page[f"{prefix}clusters" if prefix else "found_clusters"] is not None
            assert (page[f"{prefix}ari"] is not None) == audited
            if audited:
                assert -1.0 <= page[f"{prefix}ari"] <= 1.0
    report = artdb_home / "demo" / "report.html"
    assert report.exists()
    assert report.read_text(encoding="utf-8").lstrip().lower().startswith("<!doctype html")
    for system in out["systems"].values():
        assert system["planted_pages"] == 2
        assert (system["planted_pages_exact"] + system["planted_pages_wrong_split"]
                == system["planted_pages_flagged"])

    # the words a person reads, from the same result: verdicts, ARI explained, how to explore
    from artdb.cli.demo import echo_demo

    text = CliRunner().invoke(click.command()(lambda: echo_demo(out))).output
    assert "ARI (adjusted Rand index) compares the proposed clusters" in text
    verdicts = [p["verdict"] for p in out["homonym_pages"]]
    assert all(v in ("not flagged", "exact split", "wrong split") for v in verdicts)
    assert all(("not flagged" if not p["flagged"] else p["verdict"]) == p["verdict"]
               for p in out["homonym_pages"])
    assert f"artdb --home {shlex.quote(str(artdb_home / 'demo'))} review" in text and "{" not in text
