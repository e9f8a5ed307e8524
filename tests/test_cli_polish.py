"""The CLI's small promises to a person at a shell (issue 12 item 7): global options after the
command, ``--json`` on ``models activate`` / ``add-baseline``, plain words, and synth's progress
kept off stdout."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from artdb.cli.main import COMMANDS, cli, hoist_global_options


@pytest.mark.parametrize("args,expected", [
    (["show", "X", "--home", "H"], ["--home", "H", "show", "X"]),
    (["--db", "U", "show", "X", "--home=H", "--debug"], ["--db", "U", "--home=H", "--debug", "show", "X"]),
    (["models", "activate", "m", "--db", "U", "--json"], ["--db", "U", "models", "activate", "m", "--json"]),
    (["--home", "show", "ls", "--home", "B"], ["--home", "show", "--home", "B", "ls"]),  # a home named "show"
    (["show", "--", "--home"], ["show", "--", "--home"]),  # after --, an argument stays one
    (["--version"], ["--version"]),
    (["nosuchcommand", "--home", "H"], ["nosuchcommand", "--home", "H"]),
])
def test_global_options_are_hoisted_before_the_command(args, expected):
    assert hoist_global_options(args, COMMANDS) == expected


def test_global_options_after_the_command_reach_the_catalog(tmp_path):
    home, url = tmp_path / "home", f"sqlite:///{tmp_path / 'c.sqlite'}"
    runner = CliRunner()
    before = runner.invoke(cli, ["--home", str(home), "--db", url, "stats", "--json"])
    after = runner.invoke(cli, ["stats", "--json", "--home", str(home), "--db", url])
    assert before.exit_code == after.exit_code == 0, after.output
    assert json.loads(after.stdout)["database"] == json.loads(before.stdout)["database"] == url
    # a wrong value after the command is refused as it is before it: one line
    bad = runner.invoke(cli, ["stats", "--db", "mysql://x/y"])
    assert bad.exit_code == 2 and "unsupported database back-end 'mysql'" in bad.output
    assert len(bad.output.strip().splitlines()) == 1


def test_models_activate_and_add_baseline_speak_json(tmp_path):
    runner = CliRunner()
    base = ["--home", str(tmp_path / "home"), "--db", f"sqlite:///{tmp_path / 'c.sqlite'}", "models"]
    r = runner.invoke(cli, [*base, "add-baseline", "mfcc", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["model"]["name"] == "mfcc" and out["active"] is False and out["embedding"] is None
    r = runner.invoke(cli, [*base, "activate", "mfcc", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["active"] is True and out["embedding"]["model"] == "mfcc"
    assert out["embedding"]["total"] == 0  # an empty catalog: nothing embedded
    assert "embedded 0 tracks; the index holds 0 vectors" in r.stderr
    r = runner.invoke(cli, [*base, "activate", "mfcc"])
    assert r.stdout.startswith("active model: mfcc\n")


def test_synth_keeps_stdout_for_its_summary(tmp_path):
    r = CliRunner().invoke(cli, ["synth", str(tmp_path / "cat"), "--artists", "2",
                                 "--albums-per-artist", "1", "--tracks-per-album", "1", "--seconds", "2",
                                 "--genres", "1", "--homonym-groups", "0", "--synonym-pairs", "0"])
    assert r.exit_code == 0, r.output
    assert r.stdout.count("\n") == 1 and r.stdout.startswith("2 tracks")
