"""The curator's history (``artdb review --decisions``) and ``artdb undo``.

Each action module holds its own undo beside its apply; :data:`UNDO` maps a decision's action to
it, and :func:`undo_decision` checks that nothing later stands on the same pages before calling it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from artdb.core.curation.common import Decision, now
from artdb.core.curation.merge import undo_merge
from artdb.core.curation.place import undo_place
from artdb.core.curation.reject import undo_reject
from artdb.core.curation.split import undo_split
from artdb.core.errors import CatalogError
from artdb.db.models import CuratorDecision
from artdb.db.session import Catalog

# action -> undo(session, the decision's undo record) -> summary
UNDO: dict[str, Callable[[Any, dict[str, Any]], dict[str, Any]]] = {
    "split": undo_split,
    "merge": undo_merge,
    "place": undo_place,
    "reject": undo_reject,
}


def list_decisions(catalog: Catalog, limit: int = 50) -> list[dict[str, Any]]:
    with catalog.session() as s:
        rows = s.scalars(select(CuratorDecision).order_by(CuratorDecision.id.desc()).limit(limit)).all()
        return [{"decision_id": d.id, "action": d.action, "finding_kind": d.finding_kind,
                 "finding_id": d.finding_id, "created_at": d.created_at, "undone_at": d.undone_at,
                 "note": d.note} for d in rows]


def undo_decision(catalog: Catalog, decision_id: int) -> Decision:
    """Restore the catalog exactly as it was before decision ``decision_id``.

    Refused when a later decision that is still in force touches the same pages (undo that one
    first), or when a page the split created has received other albums or credits since.
    """
    with catalog.session() as s:
        d = s.get(CuratorDecision, int(decision_id), with_for_update=True)
        if d is None:
            raise CatalogError(f"no curator decision #{decision_id}")
        if d.undone_at is not None:
            raise CatalogError(f"decision #{d.id} was already undone at {d.undone_at:%Y-%m-%d %H:%M}")
        u = d.undo or {}
        pages = set(u.get("pages", []))
        if pages:
            for later in s.scalars(select(CuratorDecision).where(
                    CuratorDecision.id > d.id, CuratorDecision.undone_at.is_(None))).all():
                if pages & set((later.undo or {}).get("pages", [])):
                    raise CatalogError(f"decision #{later.id} ({later.action}) changed the same "
                                       f"pages later: undo it first")
        undo = UNDO.get(d.action)
        if undo is None:
            raise CatalogError(f"decision #{d.id} ({d.action}) cannot be undone")
        summary = undo(s, u)
        d.undone_at = now()
        return Decision(d.id, d.action, d.finding_kind, d.finding_id, {"undone": True, **summary})


__all__ = ["UNDO", "list_decisions", "undo_decision"]
