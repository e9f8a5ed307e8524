"""Shared state for commands: where the data lives and a lazily opened catalog."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import click

from artdb.cli.errors import one_line
from artdb.core.config import Paths, database_url
from artdb.core.errors import ArtdbError, CatalogError


@dataclass
class AppContext:
    db_url: str | None = None
    home: str | None = None
    _catalog: Any = field(default=None, repr=False)

    @property
    def paths(self) -> Paths:
        return Paths.from_home(self.home)

    @property
    def url(self) -> str:
        return database_url(self.db_url, self.home)

    def catalog(self):
        """The opened catalog (migrations applied on first use); a catalog that cannot be opened
        or migrated is a :class:`CatalogError`."""
        if self._catalog is None:
            from artdb.db.session import Catalog, DatabaseError

            try:
                self._catalog = Catalog.open(self.url)
            except DatabaseError as exc:
                raise CatalogError(str(exc)) from exc
        return self._catalog


pass_app = click.make_pass_decorator(AppContext, ensure=True)


def handle_errors(func: Callable) -> Callable:
    """Turn artdb's own errors into a one-line message and exit status 1 (no traceback), for a
    command invoked outside the ``artdb`` group (the group does the same for every command:
    ``artdb.cli.errors``).

    ``DatabaseError`` too: ``artdb db`` drives the schema through ``artdb.db`` directly."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        from artdb.db.session import DatabaseError

        try:
            return func(*args, **kwargs)
        except (ArtdbError, DatabaseError) as exc:
            raise click.ClickException(one_line(exc)) from exc

    return wrapper


def plural(count: int, noun: str) -> str:
    """``"1 album"``, ``"3 albums"``."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def emit_json(obj: Any) -> None:
    """Write one JSON document to stdout (for ``--json``)."""
    json.dump(obj, sys.stdout, indent=2, default=str, ensure_ascii=False)
    sys.stdout.write("\n")
