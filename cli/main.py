"""The ``artdb`` command group.

Each command lives in its own module (``artdb.cli.<name>``) and is imported only when invoked, so
``artdb --help`` stays fast and a heavy dependency (torch, faiss, librosa) loads only where used.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

import click

from artdb.core.errors import ArtdbError

# command name -> "module:attribute" inside artdb.cli
COMMANDS: dict[str, str] = {
    "db": "dbcmd:db",
    "index": "index:index",
    "stats": "stats:stats",
    "synth": "synth:synth",
    "neighbors": "neighbors:neighbors",
    "train": "train:train",
    "models": "models:models",
    "audit": "audit:audit",
    "place": "place:place",
    "review": "review:review",
    "split": "review:split",
    "merge": "review:merge",
    "reject": "review:reject",
    "undo": "review:undo",
    "report": "report:report",
    "evaluate": "evaluate:evaluate",
    "export": "export:export",
    "demo": "demo:demo",
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        names = [n for n, target in COMMANDS.items() if _module_exists(target)]
        return sorted(names)

    def get_command(self, ctx: click.Context, cmd_name: str):
        target = COMMANDS.get(cmd_name)
        if target is None or not _module_exists(target):
            return None
        module_name, attr = target.split(":")
        module = importlib.import_module(f"artdb.cli.{module_name}")
        return getattr(module, attr)


def _module_exists(target: str) -> bool:
    return importlib.util.find_spec(f"artdb.cli.{target.split(':')[0]}") is not None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--db",
    "db_url",
    envvar="ARTDB_DATABASE_URL",
    default=None,
    help="Catalog database URL (default: SQLite in the data dir). Env: ARTDB_DATABASE_URL.",
)
@click.option(
    "--home",
    envvar="ARTDB_HOME",
    default=None,
    type=click.Path(file_okay=False),
    help="Data directory (catalog, features, indexes, models). Env: ARTDB_HOME.",
)
@click.option("-v", "--verbose", is_flag=True, help="Show debug logging.")
@click.version_option(package_name="artdb")
@click.pass_context
def cli(ctx: click.Context, db_url: str | None, home: str | None, verbose: bool) -> None:
    """artdb: tell music artists apart by their audio.

    Ingest catalogs, learn an artist embedding, find artist pages that mix several artists
    (homonyms) and artists split over several pages (synonyms).
    """
    import logging

    from artdb.cli.context import AppContext

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    ctx.obj = AppContext(db_url=db_url, home=home)


def main(argv: list[str] | None = None) -> None:
    try:
        cli.main(args=argv, prog_name="artdb", standalone_mode=True)
    except ArtdbError as exc:  # pragma: no cover - standalone_mode handles ClickException
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
