"""Catalog schema: migrations up/down/up on both backends, and models == migrations."""

from __future__ import annotations

from sqlalchemy import inspect

from artdb.db.models import Base
from artdb.db.session import Catalog, current_revision, downgrade, head_revision, make_engine, upgrade


def _tables(engine) -> set[str]:
    return set(inspect(engine).get_table_names()) - {"alembic_version"}


def test_upgrade_downgrade_upgrade(catalog_url):
    engine = make_engine(catalog_url)
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    assert _tables(engine) == set(Base.metadata.tables)
    downgrade(engine, "base")
    assert _tables(engine) == set()
    upgrade(engine)
    assert _tables(engine) == set(Base.metadata.tables)
    engine.dispose()


def test_autogenerate_finds_no_difference(catalog_url):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    engine = make_engine(catalog_url)
    upgrade(engine)
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(ctx, Base.metadata)
    engine.dispose()
    assert diff == []


def test_migrations_apply_on_first_open(catalog_url):
    cat = Catalog.open(catalog_url)
    assert set(Base.metadata.tables) <= set(cat.table_names())
    cat.close()


def test_sqlite_pragmas(sqlite_url):
    from sqlalchemy import text

    cat = Catalog.open(sqlite_url)
    with cat.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
    cat.close()


def test_cli_db_upgrade_and_current(sqlite_url):
    from click.testing import CliRunner

    from artdb.cli.main import cli

    runner = CliRunner()
    result = runner.invoke(cli, ["--db", sqlite_url, "db", "upgrade"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(cli, ["--db", sqlite_url, "db", "current"])
    assert head_revision() in result.output
    # --json, and the global option after the command
    import json

    result = runner.invoke(cli, ["db", "current", "--json", "--db", sqlite_url])
    assert json.loads(result.stdout) == {"current": head_revision(), "head": head_revision()}
    result = runner.invoke(cli, ["db", "upgrade", "--json", "--db", sqlite_url])
    assert json.loads(result.stdout) == {"from": head_revision(), "revision": head_revision()}


def test_unreachable_database_gives_clean_error(tmp_path):
    from click.testing import CliRunner

    from artdb.cli.main import cli

    url = "postgresql+psycopg://nobody@127.0.0.1:1/none"
    result = CliRunner().invoke(cli, ["--db", url, "stats"])
    assert result.exit_code != 0
    assert "cannot open catalog" in result.output


OPEN_AT_ONCE = """
import os, sys, time
from artdb.db.session import Catalog
go = sys.argv[2]
open(f"{go}.{os.getpid()}", "w").close()  # ready
while not os.path.exists(go):  # a barrier: every process opens the new catalog at the same moment
    time.sleep(0.001)
Catalog.open(sys.argv[1]).close()
print("opened")
"""


def test_concurrent_first_opens_migrate_once(catalog_url, tmp_path):
    """Several processes opening a new catalog at once: one migrates, the others wait for it
    (a file lock beside a SQLite catalog, an advisory lock on PostgreSQL) and none fails with
    "table ... already exists"."""
    import subprocess
    import sys
    import time

    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", OPEN_AT_ONCE, catalog_url, str(go)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(4)]
    deadline = time.monotonic() + 120
    while len(list(tmp_path.glob("go.*"))) < len(procs) and time.monotonic() < deadline:
        time.sleep(0.01)  # every process has imported SQLAlchemy and waits at the barrier
    go.touch()
    results = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, results):
        assert p.returncode == 0 and out.strip() == "opened", err
    engine = make_engine(catalog_url)
    assert current_revision(engine) == head_revision()
    assert _tables(engine) == set(Base.metadata.tables)
    engine.dispose()
