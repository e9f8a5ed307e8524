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


def test_unreachable_database_gives_clean_error(tmp_path):
    from click.testing import CliRunner

    from artdb.cli.main import cli

    url = "postgresql+psycopg://nobody@127.0.0.1:1/none"
    result = CliRunner().invoke(cli, ["--db", url, "stats"])
    assert result.exit_code != 0
    assert "cannot open catalog" in result.output
