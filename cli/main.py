"""The ``artdb`` command group.

Each command lives in its own module (``artdb.cli.<name>``) and is imported only when invoked, so
``artdb --help`` stays fast and a heavy dependency (torch, faiss, librosa) loads only where used.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import signal
import sys

import click

from artdb.cli.errors import DEBUG_ENV, OneLineUsageError, as_click_error

# command name -> "module:attribute" inside artdb.cli, in the order of the workflow (``--help``
# lists them so): make or get a catalog, ingest, browse, learn, find, curate, report, evaluate.
COMMANDS: dict[str, str] = {
    "demo": "demo:demo",
    "synth": "synth:synth",
    "index": "index:index",
    "stats": "stats:stats",
    "ls": "browse:ls",
    "show": "browse:show",
    "train": "train:train",
    "models": "models:models",
    "neighbors": "neighbors:neighbors",
    "audit": "audit:audit",
    "synonyms": "synonyms:synonyms",
    "review": "review:review",
    "split": "review:split",
    "merge": "review:merge",
    "place": "place:place",
    "reject": "review:reject",
    "undo": "review:undo",
    "report": "report:report",
    "evaluate": "evaluate:evaluate",
    "export": "export:export",
    "db": "dbcmd:db",
}


# The group's own options, which may also be written after the command (`artdb show X --home H`).
GLOBAL_VALUE_OPTIONS = ("--db", "--home")
GLOBAL_FLAGS = ("--debug", "-v", "--verbose")


def hoist_global_options(args: list[str], commands: set[str] | dict) -> list[str]:
    """``args`` with the global options found after the command moved before it, where click
    reads them: ``show X --home H`` -> ``--home H show X``. Nothing after ``--`` moves; an option
    given both before and after the command keeps its later value (click's rule)."""
    args = list(args)
    i = 0
    while i < len(args):  # skip the options already before the command
        a = args[i]
        if a == "--":
            return args
        if a in GLOBAL_VALUE_OPTIONS:
            i += 2
        elif a.startswith("-"):
            i += 1
        else:
            break
    if i >= len(args) or args[i] not in commands:
        return args
    moved: list[str] = []
    rest: list[str] = []
    tail = args[i + 1:]
    j = 0
    while j < len(tail):
        a = tail[j]
        if a == "--":
            rest += tail[j:]
            break
        name = a.split("=", 1)[0]
        if name in GLOBAL_VALUE_OPTIONS:
            take = 1 if "=" in a else 2
            moved += tail[j:j + take]
            j += take
        elif a in GLOBAL_FLAGS:
            moved.append(a)
            j += 1
        else:
            rest.append(a)
            j += 1
    return args[:i] + moved + [args[i]] + rest


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use, and where every failure of a command
    becomes one line and an exit status (``artdb.cli.errors``). Global options are read before or
    after the command (:func:`hoist_global_options`)."""

    def make_context(self, info_name, args, parent=None, **extra):  # noqa: ANN001 - click's signature
        try:
            args = hoist_global_options(args, COMMANDS) if parent is None else args
            return super().make_context(info_name, args, parent, **extra)
        except click.UsageError as exc:  # the group's own options
            raise OneLineUsageError.of(exc) from None

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            # The reader went away (`artdb ls | head`): stop quietly, as ls and cat do; stdout is
            # pointed at /dev/null so that the interpreter's final flush does not fail again.
            try:
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            except (OSError, ValueError):  # no real file descriptor (e.g. a test runner)
                pass
            raise click.exceptions.Exit(141) from None  # 128 + SIGPIPE, what a shell reports
        except KeyboardInterrupt:
            # Ctrl-C or SIGTERM (see _terminate_like_ctrl_c): the commands commit in steps, so
            # say what a stop means instead of click's bare "Aborted!".
            raise click.ClickException(
                "interrupted: what was committed is kept; run the same command again to resume"
            ) from None
        except Exception as exc:
            debug = bool(ctx.params.get("debug")) or os.environ.get(DEBUG_ENV, "") not in ("", "0")
            replacement = as_click_error(exc, debug)
            if replacement is None:
                raise
            raise replacement from None

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [n for n, target in COMMANDS.items() if _module_exists(target)]

    def get_command(self, ctx: click.Context, cmd_name: str):
        target = COMMANDS.get(cmd_name)
        if target is None or not _module_exists(target):
            return None
        module_name, attr = target.split(":")
        module = importlib.import_module(f"artdb.cli.{module_name}")
        return getattr(module, attr)


def _module_exists(target: str) -> bool:
    return importlib.util.find_spec(f"artdb.cli.{target.split(':')[0]}") is not None


def _check_db_url(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Refuse a URL that is not one, names an unsupported back-end, or puts SQLite in a missing
    directory — before any command runs."""
    if value is None:
        return None
    from artdb.db.session import DatabaseError, check_url

    try:
        check_url(value)
    except DatabaseError as exc:
        raise click.BadParameter(str(exc)) from None
    return value


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--db",
    "db_url",
    envvar="ARTDB_DATABASE_URL",
    default=None,
    callback=_check_db_url,
    help="Catalog database URL (default: SQLite in the data dir): sqlite:////PATH/catalog.sqlite or "
         "postgresql+psycopg://USER@HOST:PORT/DBNAME. Env: ARTDB_DATABASE_URL.",
)
@click.option(
    "--home",
    envvar="ARTDB_HOME",
    default=None,
    type=click.Path(file_okay=False),
    help="Data directory (catalog, features, indexes, models). Env: ARTDB_HOME.",
)
@click.option("-v", "--verbose", is_flag=True, help="Show debug logging.")
@click.option("--debug", is_flag=True, envvar=DEBUG_ENV,
              help=f"Show the traceback of an unexpected error. Env: {DEBUG_ENV}=1.")
@click.version_option(package_name="artdb")
@click.pass_context
def cli(ctx: click.Context, db_url: str | None, home: str | None, verbose: bool, debug: bool) -> None:
    """artdb: tell music artists apart by their audio.

    Ingest catalogs, learn an artist embedding, find artist pages that mix several artists
    (homonyms) and artists split over several pages (synonyms).

    The options below (--db, --home, -v, --debug) may also follow the command:
    `artdb show Eclipse --home ~/demo`.
    """
    import logging

    from artdb.cli.context import AppContext

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    ctx.obj = AppContext(db_url=db_url, home=home)


def _terminate_like_ctrl_c(signum, frame) -> None:  # noqa: ANN001 - a signal handler
    """SIGTERM (``kill``, systemd, a container stop) shuts down as Ctrl-C does: the run in flight is
    marked interrupted, worker pools are shut down, files and transactions are closed. A second
    SIGTERM kills at once."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> None:
    signal.signal(signal.SIGTERM, _terminate_like_ctrl_c)
    cli.main(args=argv, prog_name="artdb")


if __name__ == "__main__":
    main()
