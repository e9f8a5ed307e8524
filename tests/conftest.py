"""Shared fixtures: each test gets its own data dir; seeded RNGs."""

from __future__ import annotations

import os
import uuid

import numpy as np
import pytest


@pytest.fixture
def artdb_home(tmp_path, monkeypatch):
    """A private ARTDB_HOME (non-ASCII on purpose, as real users' paths are)."""
    home = tmp_path / "données-artdb"
    home.mkdir()
    monkeypatch.setenv("ARTDB_HOME", str(home))
    monkeypatch.delenv("ARTDB_DATABASE_URL", raising=False)
    return home


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


# --- catalogs: a fresh SQLite file, or a private PostgreSQL schema -------------------------------
PG_URL = os.environ.get("ARTDB_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
# CI sets ARTDB_REQUIRE_POSTGRES=1: there a missing server is a failure, not a skip.
REQUIRE_PG = os.environ.get("ARTDB_REQUIRE_POSTGRES") == "1"


def _pg_reason() -> str | None:
    try:
        from sqlalchemy import create_engine, text

        engine = create_engine(PG_URL)
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
        return None
    except Exception as exc:  # noqa: BLE001 - any failure means "no server here"
        return f"no PostgreSQL answers at {PG_URL} ({type(exc).__name__}: {exc})"


@pytest.fixture(scope="session")
def pg_server():
    reason = _pg_reason()
    if reason:
        if REQUIRE_PG:
            pytest.fail(reason)
        pytest.skip(reason)
    return PG_URL


@pytest.fixture
def pg_url(pg_server):
    """A URL whose connections live in a private, freshly created schema (dropped afterwards)."""
    from sqlalchemy import create_engine, text

    schema = f"artdb_test_{uuid.uuid4().hex[:12]}"
    engine = create_engine(pg_server)
    with engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    yield f"{pg_server}?options=-csearch_path%3D{schema}"
    with engine.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    engine.dispose()


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path / 'catalog.sqlite'}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def catalog_url(request, tmp_path):
    """Run a test against both database backends."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'catalog.sqlite'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def catalog(catalog_url):
    from artdb.db.session import Catalog

    cat = Catalog.open(catalog_url)
    yield cat
    cat.close()
