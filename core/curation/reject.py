"""Reject a finding (``artdb reject``): the same evidence is not raised again; and undo it."""

from __future__ import annotations

from typing import Any

from artdb.core.curation.common import (
    FINDING_ROWS,
    Decision,
    not_open,
    parse_finding_ref,
    restore_status,
)
from artdb.core.errors import CatalogError
from artdb.db.models import CuratorDecision
from artdb.db.session import Catalog


def reject_finding(catalog: Catalog, finding: str | int, note: str | None = None) -> Decision:
    """Mark a finding rejected; the audit will not raise the same evidence again."""
    kind, fid = parse_finding_ref(finding)
    with catalog.session() as s:
        row = s.get(FINDING_ROWS[kind], fid, with_for_update=True)
        if row is None:
            raise CatalogError(f"no {kind} finding {kind[0]}{fid}")
        if row.status != "open":
            raise not_open(s, kind, row)
        undo = {"finding": {"kind": kind, "id": fid, "status": row.status}, "pages": []}
        row.status = "rejected"
        d = CuratorDecision(action="reject", finding_kind=kind, finding_id=fid,
                            evidence_hash=row.evidence_hash, undo=undo, note=note)
        s.add(d)
        s.flush()
        return Decision(d.id, "reject", kind, fid, {"evidence_hash": row.evidence_hash})


def undo_reject(s, u: dict[str, Any]) -> dict[str, Any]:
    """Reopen the finding (if it is still rejected)."""
    f = u["finding"]
    return restore_status(s, f["kind"], f["id"], "rejected", f["status"])


__all__ = ["reject_finding", "undo_reject"]
