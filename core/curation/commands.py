"""The exact ``artdb`` command lines a curator runs on a finding (one home for their syntax).

``artdb show``, ``review``, ``synonyms`` and the HTML report all print the commands that act on a
finding; they build them here, so a change of syntax (``merge SOURCE --into TARGET``) reaches
every place at once. Arguments are shell-quoted (``shlex.quote``), and the global options that
name a non-default data directory or database come first, where ``artdb`` reads them.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from artdb.core.config import default_data_home, home_database_url


@dataclass(frozen=True)
class CommandLine:
    """How to call ``artdb`` for one catalog: the global options it needs (none for the default
    home and database)."""

    home: str | None = None
    db: str | None = None

    @classmethod
    def for_catalog(cls, home: str, url: str) -> CommandLine:
        """The options that reach the catalog at ``url`` with data directory ``home``: ``--home``
        unless it is the platform's default, ``--db`` unless the URL is the home's own SQLite file.
        (``ARTDB_HOME`` is not assumed to be set where the command is pasted.)"""
        return cls(home=None if str(home) == str(default_data_home()) else str(home),
                   db=None if url == home_database_url(home) else url)

    def __call__(self, *args: str) -> str:
        words = ["artdb"]
        if self.home:
            words += ["--home", self.home]
        if self.db:
            words += ["--db", self.db]
        return " ".join(shlex.quote(str(w)) for w in [*words, *args])

    def show(self, page: str) -> str:
        return self("show", page)

    def split(self, page: str, ref: str, dry_run: bool = False) -> str:
        return self("split", page, "--finding", ref, *(["--dry-run"] if dry_run else []))

    def merge(self, source: str, target: str, ref: str | None = None, dry_run: bool = False) -> str:
        extra = (["--candidate", ref] if ref else []) + (["--dry-run"] if dry_run else [])
        return self("merge", source, "--into", target, *extra)

    def reject(self, ref: str) -> str:
        return self("reject", ref)

    def place(self, album: str, dry_run: bool = False) -> str:
        return self("place", album, "--dry-run" if dry_run else "--apply")


__all__ = ["CommandLine"]
