"""User errors: one line on stderr (what, where, what to do), exit status != 0, no traceback unless
``--debug`` / ``ARTDB_DEBUG=1`` (issue 13; docs/reliability.md "Bad input").

Each case runs the real ``artdb`` entry point in its own process, as a user would.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from artdb.core.config import Paths
from artdb.core.errors import ArtdbError, CatalogError, ConfigError, IndexMismatchError
from artdb.core.ingest import IngestOptions

URL_FORMS = "sqlite:////ABSOLUTE/PATH/catalog.sqlite or postgresql+psycopg://USER@HOST:PORT/DBNAME"


def artdb(*args: str, home, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "ARTDB_HOME": str(home), **(env or {})}
    for key in ("ARTDB_DATABASE_URL", "ARTDB_DEBUG"):
        if key not in (env or {}):
            full_env.pop(key, None)
    return subprocess.run([sys.executable, "-m", "artdb.cli.main", *args], env=full_env,
                          capture_output=True, text=True, timeout=120)


def one_line_error(result: subprocess.CompletedProcess, status: int) -> str:
    """The error line, after checking it is the only thing on stderr and the exit status."""
    assert result.returncode == status, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest.mark.parametrize(("url", "expected"), [
    ("notaurl", f"Error: Invalid value for '--db': 'notaurl' is not a database URL: use {URL_FORMS} "
                "(see 'artdb --help')"),
    ("foo://", "Error: Invalid value for '--db': unsupported database back-end 'foo': artdb supports "
               f"SQLite and PostgreSQL ({URL_FORMS}) (see 'artdb --help')"),
    ("mysql://me:secret@db.example/music",
     "Error: Invalid value for '--db': unsupported database back-end 'mysql': artdb supports SQLite "
     f"and PostgreSQL ({URL_FORMS}) (see 'artdb --help')"),
])
def test_bad_database_url_is_one_line(tmp_path, url, expected):
    """Was: 45-52 lines of traceback."""
    assert one_line_error(artdb("--db", url, "stats", home=tmp_path), 2) == expected
    # the same from the environment
    assert one_line_error(artdb("stats", home=tmp_path, env={"ARTDB_DATABASE_URL": url}), 2) == expected


def test_sqlite_in_a_missing_directory_is_refused(tmp_path):
    """Was: a new, empty catalog silently created in the mistyped directory."""
    missing = tmp_path / "typo" / "dir"
    line = one_line_error(artdb("--db", f"sqlite:///{missing}/c.sqlite", "stats", home=tmp_path), 2)
    assert line == (f"Error: Invalid value for '--db': directory {missing} does not exist: create it, "
                    "or correct the SQLite path in the database URL (see 'artdb --help')")
    assert not (tmp_path / "typo").exists()
    # an existing directory still works, and the default catalog in the home needs nothing
    ok = artdb("--db", f"sqlite:///{tmp_path}/c.sqlite", "stats", "--json", home=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert artdb("stats", "--json", home=tmp_path / "new-home").returncode == 0


@pytest.mark.parametrize("k", ["-3", "0"])
def test_neighbour_count_below_one_is_refused(tmp_path, k):
    """Was: -3 a traceback; 0 an empty table with exit status 0."""
    line = one_line_error(artdb("neighbors", "5", "-k", k, home=tmp_path), 2)
    assert line == (f"Error: Invalid value for '-k': {k} is not in the range x>=1. "
                    "(see 'artdb neighbors --help')")


def test_batch_size_zero_is_refused(tmp_path):
    (tmp_path / "music").mkdir()
    line = one_line_error(artdb("index", str(tmp_path / "music"), "--batch-size", "0", home=tmp_path), 2)
    assert line == ("Error: Invalid value for '--batch-size': 0 is not in the range x>=1. "
                    "(see 'artdb index --help')")
    with pytest.raises(ConfigError, match="batch size must be at least 1"):
        IngestOptions(batch_size=0)  # the library refuses it too


def test_train_on_an_empty_catalog_says_what_to_do(tmp_path, sqlite_url):
    """Was: "frontend.json missing" (--backbone none) or a message about features."""
    from artdb.core.learn.catalog import train_from_catalog
    from artdb.core.learn.config import TrainConfig
    from artdb.db.session import Catalog

    expected = "the catalog holds no tracks to train on: ingest audio first (artdb index PATH)"
    line = one_line_error(artdb("train", "--no-progress", home=tmp_path), 1)  # the musicnn default
    assert line == f"Error: {expected}"
    catalog = Catalog.open(sqlite_url)
    with pytest.raises(CatalogError) as err:  # the log-mel CNN (--backbone none)
        train_from_catalog(catalog, Paths.from_home(tmp_path / "home"), TrainConfig())
    assert str(err.value) == expected
    catalog.close()


def test_unexpected_error_is_one_line_unless_debugging(tmp_path):
    """An error artdb did not foresee (here: a data directory under a regular file)."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    home = blocker / "home"
    line = one_line_error(artdb("stats", home=home), 1)
    assert line.startswith("Error: unexpected NotADirectoryError: ")
    assert line.endswith("(run with --debug for the traceback)")
    for result in (artdb("--debug", "stats", home=home), artdb("stats", home=home, env={"ARTDB_DEBUG": "1"})):
        assert result.returncode == 1
        assert "Traceback (most recent call last)" in result.stderr
        assert result.stderr.strip().splitlines()[-1].startswith("NotADirectoryError: ")


def test_malicious_checkpoint_refusal_gives_no_unsafe_advice(tmp_path):
    """Was: torch's advice to load it with weights_only=False, repeated to the user."""
    import torch

    from artdb.core.learn.checkpoint import load_checkpoint

    class RunsCode:
        def __reduce__(self):
            return (os.system, ("echo this must never run",))

    path = tmp_path / "evil.pt"
    torch.save({"format": "artdb-model", "payload": RunsCode()}, path)
    with pytest.raises(ArtdbError) as err:
        load_checkpoint(path)
    message = str(err.value)
    assert message == (f"{path}: refused: the checkpoint holds Python objects other than weights "
                       "(posix.system), which could run code when loaded; artdb loads weights only — "
                       "retrain the model, or use a checkpoint artdb wrote")
    assert "weights_only" not in message and "\n" not in message
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")  # torch words this refusal with the same advice
    with pytest.raises(ArtdbError) as err:
        load_checkpoint(garbage)
    assert str(err.value) == f"{garbage}: not a loadable checkpoint (Unsupported operand 110)"


def test_rebuild_hint_names_the_required_path(catalog, tmp_path):
    """Was: "run `artdb index --rebuild-index`", which click refuses for want of PATH."""
    from artdb.core.learn.registry import register_mfcc_baseline
    from artdb.core.vectors import index as vectors
    from artdb.indexer import FaissIndex

    paths = Paths.from_home(tmp_path / "home")
    model = register_mfcc_baseline(catalog, activate=True)
    FaissIndex(model.dim, model="someone-else", name="track").save(vectors.index_path(paths, model))
    with pytest.raises(IndexMismatchError) as err:
        vectors.open_track_index(catalog, paths, model)
    assert "rebuild it with `artdb index --rebuild-index PATH` (PATH: your catalog folder" in str(err.value)


@pytest.mark.parametrize(("command", "floor"), [("index", 0), ("audit", 1), ("synth", 1),
                                                ("evaluate", 0)])
def test_negative_worker_counts_are_refused(tmp_path, command, floor):
    """Was: accepted, then a traceback from the process pool (``max_workers must be > 0``)."""
    args = {"index": [str(tmp_path)], "synth": [str(tmp_path / "out")], "audit": [],
            "evaluate": []}[command]
    line = one_line_error(artdb(command, *args, "--workers", "-3", home=tmp_path), 2)
    assert line == (f"Error: Invalid value for '--workers': -3 is not in the range x>={floor}. "
                    f"(see 'artdb {command} --help')")
    with pytest.raises(ConfigError, match="workers must be 0"):
        IngestOptions(workers=-1)


def test_a_report_into_a_missing_folder_is_refused(tmp_path):
    """Was: the folders of a mistyped path created silently, as for the SQLite URL."""
    out = tmp_path / "typo" / "dir" / "report.html"
    line = one_line_error(artdb("report", str(out), home=tmp_path / "home"), 1)
    assert line == (f"Error: directory {out.parent} does not exist: create it, or write report.html "
                    "somewhere that exists")
    assert not (tmp_path / "typo").exists()
