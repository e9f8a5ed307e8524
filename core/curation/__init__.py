"""The curator's workflow: review findings, split, merge, reject, move an album, undo."""

import lazy_loader as lazy

__getattr__, __dir__, __all__ = lazy.attach(__name__, submod_attrs={
    "actions": ["KINDS", "Decision", "list_decisions", "merge_pages", "move_album",
                "open_findings", "parse_finding_ref", "reject_finding", "split_page",
                "undo_decision"],
})
