"""``artdb db``: catalog schema management."""

from __future__ import annotations

import click

from artdb.cli.context import AppContext, emit_json, handle_errors, pass_app

JSON = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")


@click.group()
def db() -> None:
    """Catalog database schema (migrations apply themselves on first use)."""


@db.command()
@click.argument("revision", default="head")
@JSON
@pass_app
@handle_errors
def upgrade(app: AppContext, revision: str, as_json: bool) -> None:
    """Apply migrations up to REVISION (default: head)."""
    from artdb.db.session import current_revision, make_engine, upgrade as do_upgrade

    engine = make_engine(app.url)
    before = current_revision(engine)
    do_upgrade(engine, revision)
    _say(as_json, before, current_revision(engine))


def _say(as_json: bool, before: str | None, after: str | None) -> None:
    if as_json:
        emit_json({"from": before, "revision": after})
    else:
        click.echo(f"catalog at revision {after}" + (f" (was {before})" if before != after else ""))


@db.command()
@click.argument("revision")
@click.confirmation_option(prompt="Downgrading can drop tables and data. Continue?")
@JSON
@pass_app
@handle_errors
def downgrade(app: AppContext, revision: str, as_json: bool) -> None:
    """Revert migrations down to REVISION ('base' drops every table)."""
    from artdb.db.session import current_revision, downgrade as do_downgrade, make_engine

    engine = make_engine(app.url)
    before = current_revision(engine)
    do_downgrade(engine, revision)
    _say(as_json, before, current_revision(engine))


@db.command()
@JSON
@pass_app
@handle_errors
def current(app: AppContext, as_json: bool) -> None:
    """Show the catalog's schema revision and the newest one this artdb knows."""
    from artdb.db.session import current_revision, head_revision, make_engine

    now, head = current_revision(make_engine(app.url)), head_revision()
    if as_json:
        emit_json({"current": now, "head": head})
    else:
        click.echo(f"current {now}  head {head}")
