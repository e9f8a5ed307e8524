"""How the CLI reports a failure: one line on stderr and a non-zero exit status, never a traceback
unless asked for (``--debug`` or ``ARTDB_DEBUG=1``).

- A user error — artdb's own hierarchy (``artdb.core.errors``), the catalog layer's
  ``DatabaseError``, a ``click.ClickException`` — prints ``Error: <what, where, what to do>``,
  exit status 1.
- A bad option or argument (``click.UsageError``, e.g. ``click.BadParameter`` / ``IntRange``) prints
  the same single line with a pointer to ``--help`` instead of click's usage block, exit status 2.
- Anything else is a bug or an environment problem: ``Error: unexpected <type>: <message> (run
  with --debug for the traceback)``, exit status 1; with ``--debug`` the exception propagates.
"""

from __future__ import annotations

import click

from artdb.core.errors import ArtdbError

DEBUG_ENV = "ARTDB_DEBUG"


def one_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message (database errors append their SQL and a
    link on later lines)."""
    for line in str(exc).splitlines():
        if line.strip():
            return line.strip()
    return type(exc).__name__


class OneLineUsageError(click.UsageError):
    """A usage error shown as one line (click's default prints the usage block first)."""

    @classmethod
    def of(cls, exc: click.UsageError) -> OneLineUsageError:
        new = cls(exc.format_message(), ctx=exc.ctx)
        new.exit_code = exc.exit_code
        return new

    def show(self, file=None) -> None:  # noqa: ANN001 - click's signature
        where = self.ctx.command_path if self.ctx is not None else "artdb"
        click.echo(f"Error: {one_line(self)} (see '{where} --help')", file=file, err=file is None)


def as_click_error(exc: Exception, debug: bool) -> click.ClickException | None:
    """The ClickException to raise instead of ``exc``; None to let ``exc`` propagate (click's own
    exceptions and exits, and anything unexpected under ``--debug``)."""
    from artdb.db.session import DatabaseError

    if isinstance(exc, OneLineUsageError):
        return None
    if isinstance(exc, click.UsageError):
        return OneLineUsageError.of(exc)
    if isinstance(exc, (click.ClickException, click.exceptions.Exit, click.Abort)):
        return None
    if isinstance(exc, (ArtdbError, DatabaseError)):
        return click.ClickException(one_line(exc))
    if debug:
        return None
    return click.ClickException(
        f"unexpected {type(exc).__name__}: {one_line(exc)} (run with --debug for the traceback)")
