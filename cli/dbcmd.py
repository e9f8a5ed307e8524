"""``artdb db``: catalog schema management."""

from __future__ import annotations

import click

from artdb.cli.context import AppContext, handle_errors, pass_app


@click.group()
def db() -> None:
    """Catalog database schema (migrations apply themselves on first use)."""


@db.command()
@click.argument("revision", default="head")
@pass_app
@handle_errors
def upgrade(app: AppContext, revision: str) -> None:
    """Apply migrations up to REVISION (default: head)."""
    from artdb.db.session import current_revision, make_engine, upgrade as do_upgrade

    engine = make_engine(app.url)
    do_upgrade(engine, revision)
    click.echo(f"catalog at revision {current_revision(engine)}")


@db.command()
@click.argument("revision")
@click.confirmation_option(prompt="Downgrading can drop tables and data. Continue?")
@pass_app
@handle_errors
def downgrade(app: AppContext, revision: str) -> None:
    """Revert migrations down to REVISION ('base' drops every table)."""
    from artdb.db.session import current_revision, downgrade as do_downgrade, make_engine

    engine = make_engine(app.url)
    do_downgrade(engine, revision)
    click.echo(f"catalog at revision {current_revision(engine)}")


@db.command()
@pass_app
@handle_errors
def current(app: AppContext) -> None:
    """Show the catalog's schema revision and the newest one this artdb knows."""
    from artdb.db.session import current_revision, head_revision, make_engine

    click.echo(f"current {current_revision(make_engine(app.url))}  head {head_revision()}")
