"""What the vectors say about the catalog: homonym pages, synonym pages, where a release belongs.

- :mod:`.clustering`: agglomerative clustering with a distance threshold, artificial homonym
  groups, ARI, threshold fitting (shared by training, audit and evaluation);
- :mod:`.audit`: pages whose albums form several artists (``artdb audit``);
- :mod:`.synonyms`: pages with different names that sound like one artist;
- :mod:`.placement`: which artist of an ambiguous name made a new album (``artdb place``).
"""

import lazy_loader as lazy

__getattr__, __dir__, __all__ = lazy.attach(__name__, submod_attrs={
    "clustering": ["LINKAGES", "cluster_with_threshold", "fit_threshold", "make_homonym_groups",
                   "mean_ari"],
    "audit": ["AuditReport", "PageAudit", "audit_threshold", "calibrate_threshold",
              "cluster_page", "run_audit"],
    "synonyms": ["SynonymPair", "find_synonyms", "planted_recall", "synonym_candidates"],
    "placement": ["Candidate", "Placement", "place_album", "resolve_album"],
})
