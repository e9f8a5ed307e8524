"""``artdb demo`` end to end on a tiny catalog: every stage runs and the comparison is complete."""

from __future__ import annotations

import json

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
