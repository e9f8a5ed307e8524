"""What every curator action shares: the decision record, finding references, page lookup, and the
one primitive that moves albums and credits between pages and moves them back.

Every action runs in ONE catalog transaction (:func:`action_session`) and records a
:class:`CuratorDecision` whose ``undo`` JSON holds exactly what it changed; a dry run runs the very
same code and rolls the transaction back, so what it reports is exactly what the action would do
and nothing is left changed. Moves are recorded as ``[id, from page, to page]`` rows (albums
and track credits); :func:`move_pages` applies such rows and, with ``back=True``, reverts them, so
an action and its undo run the same code in opposite directions.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, update

from artdb.core.analysis.findings import page_label, resolve_pages
from artdb.core.errors import CatalogError, ConfigError
from artdb.db.models import Album, ArtistPage, AuditFinding, SynonymCandidate, TrackCredit
from artdb.db.session import Catalog

KINDS = {"h": "homonym", "s": "synonym"}
# The row a finding of each kind is stored in.
FINDING_ROWS = {"homonym": AuditFinding, "synonym": SynonymCandidate}


@dataclass
class Decision:
    id: int | None  # None for a dry run (nothing was recorded)
    action: str
    finding_kind: str | None
    finding_id: int | None
    summary: dict[str, Any] = field(default_factory=dict)
    dry_run: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"decision_id": self.id, "action": self.action, "finding_kind": self.finding_kind,
                "finding_id": self.finding_id, "dry_run": self.dry_run, **self.summary}


@contextlib.contextmanager
def action_session(catalog: Catalog, dry_run: bool = False) -> Iterator[Any]:
    """The one transaction of a curator action: committed on success, rolled back on error and,
    with ``dry_run``, rolled back on success too (ids the rolled-back rows took are not reused on
    SQLite; PostgreSQL sequences advance, which changes no row)."""
    with catalog.sessionmaker() as session:
        tx = session.begin()
        try:
            yield session
        except BaseException:
            tx.rollback()
            raise
        if dry_run:
            tx.rollback()
        else:
            tx.commit()


def record(session, decision, dry_run: bool, summary: dict[str, Any]) -> Decision:
    """Add ``decision`` (a CuratorDecision) and return what the caller reports; in a dry run the
    row is still written (the transaction is rolled back) but its id is not reported."""
    session.add(decision)
    session.flush()
    return Decision(None if dry_run else decision.id, decision.action, decision.finding_kind,
                    decision.finding_id, summary, dry_run)


def parse_finding_ref(ref: str | int) -> tuple[str, int]:
    """``"h12"``/``"12"`` -> ("homonym", 12); ``"s3"`` -> ("synonym", 3)."""
    text = str(ref).strip().lower()
    kind = "homonym"
    if text[:1] in KINDS:
        kind, text = KINDS[text[0]], text[1:]
    if not text.isdigit():
        raise ConfigError(f"a finding is named h<id> (homonym) or s<id> (synonym), got {ref!r}")
    return kind, int(text)


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def label(page: ArtistPage) -> str:
    """The page as curators see it: "Name" or "Name [n]"."""
    return page_label(page.display_name, page.disambiguation)


def one_page(session, ref: str | int, lock: bool = True) -> ArtistPage:
    """The one page ``ref`` (id, name or "Name [n]") names, locked for update; a CatalogError if
    it names none or several."""
    ids = resolve_pages(session, [ref])
    if len(ids) > 1:
        rows = session.scalars(select(ArtistPage).where(ArtistPage.id.in_(ids))
                               .order_by(ArtistPage.disambiguation, ArtistPage.id)).all()
        names = ", ".join(f"{label(p)!r} (#{p.id})" for p in rows)
        raise CatalogError(f"{ref!r} names several pages: use one of {names}")
    return session.get(ArtistPage, ids[0], with_for_update=lock)


# -- the move-and-restore primitive ------------------------------------------------------------------
def _by_direction(rows: Sequence[Sequence[int]], back: bool) -> dict[tuple[int, int], list[int]]:
    out: dict[tuple[int, int], list[int]] = defaultdict(list)
    for row_id, src, dst in rows:
        out[(dst, src) if back else (src, dst)].append(row_id)
    return out


def move_pages(session, albums: Sequence[Sequence[int]] = (), credits: Sequence[Sequence[int]] = (),
               *, back: bool = False) -> None:
    """Apply recorded moves: each album ``[album id, from, to]`` goes to page ``to``, each track
    credit ``[track id, from, to]`` naming page ``from`` is re-pointed to ``to``. With ``back``,
    the same rows are reverted (to ``from``; a credit only where it still names ``to``)."""
    for (_, dst), ids in _by_direction(albums, back).items():
        session.execute(update(Album).where(Album.id.in_(ids)).values(page_id=dst))
    for (src, dst), ids in _by_direction(credits, back).items():
        session.execute(update(TrackCredit)
                        .where(TrackCredit.track_id.in_(ids), TrackCredit.page_id == src)
                        .values(page_id=dst))


def successor(session, kind: str, finding_id: int) -> Any | None:
    """The finding that replaced ``finding_id`` (changed evidence), following the chain to the
    newest; None if none did."""
    row_type, seen, found = FINDING_ROWS[kind], {finding_id}, None
    while True:
        nxt = session.scalars(select(row_type).where(row_type.replaces_id == finding_id)
                              .order_by(row_type.id.desc())).first()
        if nxt is None or nxt.id in seen:
            return found
        seen.add(nxt.id)
        found, finding_id = nxt, nxt.id


def not_open(session, kind: str, row: Any) -> CatalogError:
    """The error for acting on a finding that is not open, saying what to act on instead."""
    ref = f"{kind[0]}{row.id}"
    if row.status == "superseded":
        newer = successor(session, kind, row.id)
        if newer is not None and newer.status == "open":
            return CatalogError(f"{kind} finding {ref} was replaced by {kind[0]}{newer.id} (its "
                                f"evidence changed): act on {kind[0]}{newer.id} (artdb review)")
        return CatalogError(f"{kind} finding {ref} is superseded (no longer found by the latest "
                            "run): see `artdb review` for the open ones")
    return CatalogError(f"{kind} finding {ref} is {row.status}, not open")


def restore_status(session, kind: str, finding_id: int, expect: str, restore: str) -> dict[str, Any]:
    """Put a finding back to ``restore`` if it is still ``expect`` (what an action made it)."""
    row = session.get(FINDING_ROWS[kind], finding_id, with_for_update=True)
    if row is not None and row.status == expect:
        newer = successor(session, kind, finding_id) if restore == "open" else None
        # a finding replaced meanwhile (changed evidence) is history: the newer one is current
        row.status = "superseded" if newer is not None and newer.status == "open" else restore
    return {"finding_status": row.status if row is not None else None}


__all__ = ["FINDING_ROWS", "KINDS", "Decision", "action_session", "label", "move_pages", "not_open",
           "now", "one_page", "parse_finding_ref", "record", "restore_status", "successor"]
