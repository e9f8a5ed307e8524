"""Opening the catalog: engine, sessions, and migrations applied on first use.

SQLite (the embedded default) runs in WAL mode with foreign keys on; PostgreSQL is reached with a
``postgresql+psycopg://`` URL. A schema can be chosen with ``?options=-csearch_path%3Dmyschema``.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.resources
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker

from artdb.db.models import Base

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


class DatabaseError(Exception):
    """The catalog database cannot be opened or migrated (core wraps it in its own error)."""


def _migrations_dir() -> Path:
    # Located as package data, not imported: migrations/ builds on db/, not the other way round.
    return Path(str(importlib.resources.files("artdb.migrations"))).resolve()


SUPPORTED_BACKENDS = ("sqlite", "postgresql")
URL_FORMS = "sqlite:////ABSOLUTE/PATH/catalog.sqlite or postgresql+psycopg://USER@HOST:PORT/DBNAME"


def check_url(url: str) -> URL:
    """The parsed catalog URL, or :class:`DatabaseError` saying what is wrong with it: not a URL,
    a back-end artdb does not support, or an SQLite file in a directory that does not exist (which
    would otherwise become a new, empty catalog somewhere unexpected)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        shown = re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)
        raise DatabaseError(f"{shown!r} is not a database URL: use {URL_FORMS}") from None
    backend = parsed.get_backend_name()
    if backend not in SUPPORTED_BACKENDS:
        raise DatabaseError(f"unsupported database back-end {backend!r}: artdb supports SQLite and "
                            f"PostgreSQL ({URL_FORMS})")
    if backend == "sqlite" and parsed.database and parsed.database != ":memory:" \
            and not parsed.database.startswith("file:"):
        directory = Path(parsed.database).expanduser().absolute().parent
        if not directory.is_dir():
            raise DatabaseError(f"directory {directory} does not exist: create it, or correct the "
                                "SQLite path in the database URL")
    return parsed


def make_engine(url: str) -> Engine:
    parsed = check_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(url, connect_args={"timeout": 60})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # noqa: ANN001
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    try:
        return create_engine(url, pool_pre_ping=True)
    except ModuleNotFoundError as exc:  # psycopg missing, or another driver named in the URL
        raise DatabaseError(
            f"PostgreSQL needs the psycopg driver: pip install 'artdb[postgres]' and use "
            f"postgresql+psycopg://... ({exc})"
        ) from None


def alembic_config(engine: Engine | None = None, connection=None):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(_migrations_dir()))
    if engine is not None:
        cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    from alembic.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


@contextlib.contextmanager
def _sqlite_migration_lock(engine: Engine) -> Iterator[None]:
    """An exclusive ``flock`` on ``<catalog file>.migrate.lock`` while migrating a SQLite file.

    SQLite runs alembic's DDL outside one transaction, so two processes migrating a new catalog at
    once both create the tables ("table ... already exists"); the second must wait and then find
    the schema current. The kernel releases the lock if its holder dies.
    """
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:" \
            or database.startswith("file:"):
        yield
        return
    lock = Path(database).with_name(Path(database).name + ".migrate.lock")
    fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # blocking: a migration takes seconds at most
        yield
    finally:
        os.close(fd)


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply migrations up to ``revision``, serialised between processes (an advisory lock on
    PostgreSQL, a file lock beside a SQLite catalog): the ones that waited find nothing to do."""
    from alembic import command

    with _sqlite_migration_lock(engine), engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            # Two processes opening a fresh catalog at once must not both create the tables.
            conn.execute(text("SELECT pg_advisory_xact_lock(727274)"))
        command.upgrade(alembic_config(connection=conn), revision)


def _insert(session: Session, model):
    """The session's dialect's ``INSERT`` for ``model`` (the one that takes ON CONFLICT)."""
    name = session.get_bind().dialect.name
    if name == "postgresql":
        return postgresql.insert(model)
    if name == "sqlite":
        return sqlite.insert(model)
    raise DatabaseError(f"artdb's catalog runs on SQLite or PostgreSQL, not {name}")


def insert_ignoring_conflicts(session: Session, model):
    """``INSERT ... ON CONFLICT DO NOTHING`` for ``model`` in the session's dialect: a row that
    would break any unique constraint is skipped instead of raising, so when several writers race
    to insert one row the database decides who wins and the others carry on (add
    ``.returning(...)`` to learn whether this one did)."""
    return _insert(session, model).on_conflict_do_nothing()


def upsert(session: Session, model, rows: Sequence[dict[str, Any]], key: Sequence[str]):
    """``INSERT ... ON CONFLICT (key) DO UPDATE`` of ``rows`` (distinct keys, the same columns)
    for ``model`` in the session's dialect: a row whose key exists has its other columns set to
    the new values in the same statement, so writers racing on one key leave one row (the last
    commit's), never two, and neither fails on that key."""
    stmt = _insert(session, model).values(list(rows))
    columns = [c for c in rows[0] if c not in key]
    return stmt.on_conflict_do_update(index_elements=list(key),
                                      set_={c: stmt.excluded[c] for c in columns})


def downgrade(engine: Engine, revision: str = "base") -> None:
    from alembic import command

    with engine.begin() as conn:
        command.downgrade(alembic_config(connection=conn), revision)


@dataclass
class Catalog:
    """An opened catalog: its engine and a session factory."""

    engine: Engine
    sessionmaker: sessionmaker

    @classmethod
    def open(cls, url: str, migrate: bool = True) -> Catalog:
        engine = make_engine(url)
        try:
            if migrate and current_revision(engine) != head_revision():
                upgrade(engine)
        except Exception as exc:
            if isinstance(exc, DatabaseError):
                raise
            safe = make_url(url).render_as_string(hide_password=True)
            raise DatabaseError(f"cannot open catalog {safe}: {exc}") from exc
        return cls(engine=engine, sessionmaker=sessionmaker(engine, expire_on_commit=False))

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on error."""
        with self.sessionmaker() as session:
            with session.begin():
                yield session

    def table_names(self) -> list[str]:
        return inspect(self.engine).get_table_names()

    @property
    def url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    def close(self) -> None:
        self.engine.dispose()


__all__ = ["Base", "Catalog", "DatabaseError", "check_url", "insert_ignoring_conflicts", "make_engine",
           "upgrade", "upsert", "downgrade"]
