"""The curator's workflow: review findings, split, merge, reject, move an album, undo.

One module per action, its undo beside its apply: :mod:`.split` (a homonym page, as its audit
finding proposes), :mod:`.merge` (synonym pages), :mod:`.reject` (a finding), :mod:`.place` (one
album to another page: ``artdb place --apply``); :mod:`.review` lists what is open, :mod:`.undo`
dispatches ``artdb undo`` to the action's undo, and :mod:`.common` holds the decision record, the
finding references (``h12`` or ``12``: homonym finding 12, ``s3``: synonym candidate 3) and the one
move-and-restore primitive.

Every action runs in ONE catalog transaction and records a ``CuratorDecision`` whose ``undo`` JSON
holds exactly what it changed (each album's and each credit row's previous page, the pages it
created, statuses it overwrote), so :func:`undo_decision` restores the catalog row for row. Each
split, merge, move and undo also bumps the catalog's page-change counter
(:func:`artdb.core.vectors.index.bump_page_changes`) so the derived album and artist-page indexes
are rebuilt on their next open.
"""

import lazy_loader as lazy

__getattr__, __dir__, __all__ = lazy.attach(__name__, submod_attrs={
    "common": ["KINDS", "Decision", "action_session", "move_pages", "parse_finding_ref"],
    "review": ["open_findings"],
    "split": ["split_page"],
    "merge": ["merge_pages"],
    "reject": ["reject_finding"],
    "place": ["move_album"],
    "undo": ["UNDO", "list_decisions", "undo_decision"],
})
