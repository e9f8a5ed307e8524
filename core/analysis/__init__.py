"""What the vectors say about the catalog: homonym pages, synonym pages, where a release belongs.

- :mod:`.clustering`: agglomerative clustering with a distance threshold, the tree cut, artificial
  homonym groups, ARI, threshold fitting and its cross-validation over groups (shared by training,
  audit and evaluation);
- :mod:`.findings`: what the stages share — the proposed split of a page (``Partition``) and its
  stored form, the "Name [n]" page label, evidence hashes, threshold resolution;
- :mod:`.audit`: pages whose albums form several artists (``artdb audit``);
- :mod:`.synonyms`: pages with different names that sound like one artist;
- :mod:`.placement`: which artist of an ambiguous name made a new album (``artdb place``).
"""

import lazy_loader as lazy

__getattr__, __dir__, __all__ = lazy.attach(__name__, submod_attrs={
    "clustering": ["LINKAGES", "check_linkage", "cluster_with_threshold", "codes", "cut_tree",
                   "cv_thresholds", "fit_threshold", "linkage_tree", "make_homonym_groups",
                   "mean_ari"],
    "findings": ["Partition", "Threshold", "audit_method", "audit_threshold", "canonical_labels",
                 "cluster_number", "find_pages", "page_label", "page_pair_hash", "parse_page_label",
                 "partition_hash", "reconcile", "resolve_pages", "resolve_threshold"],
    "audit": ["AuditReport", "PageAudit", "album_vectors", "calibrate_threshold", "cluster_page",
              "merge_heights", "run_audit", "split_margin", "suspect_pages"],
    "synonyms": ["CandidatePair", "Neighbours", "SynonymPair", "SynonymSearch",
                 "calibrate_min_score", "candidate_pairs", "filter_pairs", "find_synonyms",
                 "neighbour_units", "planted_recall", "score_pairs", "store_pairs",
                 "synonym_candidates"],
    "placement": ["Candidate", "Placement", "apply_placement", "place_album", "resolve_album"],
})
