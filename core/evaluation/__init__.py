"""Evaluation of artist embeddings with the protocol of Royo-Letelier et al. (ISMIR 2018).

- :mod:`.protocol`: units, homonym groups, cross-validated thresholds, ARI/AMI, controls (pure);
- :mod:`.dataset`: a labelled evaluation set (features + true artists) from a catalog folder
  (ingested into a private data dir), an existing catalog, or arrays;
- :mod:`.systems`: the systems compared (MFCC, untrained CNN, CL, ML variants, joint, controls,
  external embedding files, registered models);
- :mod:`.runner`: :class:`EvalConfig` (and its ``artdb evaluate`` preset) and
  :func:`run_evaluation` — splits, experiments, every system on identical splits;
- :mod:`.service`: what ``artdb evaluate`` calls (data, peers, registered models, outputs);
- :mod:`.report`: the paper-shaped Markdown tables and the ARI-vs-training-artists plot;
- :mod:`.peers`: the pretrained musicnn peer, run in its own virtual environment.

Names are re-exported lazily (the submodules import each other, never this package).
"""

import lazy_loader as lazy

__getattr__, __dir__, __all__ = lazy.attach(
    __name__,
    submodules=["dataset", "peers", "protocol", "report", "runner", "service", "systems"],
    submod_attrs={
        "dataset": ["EvalDataset", "catalog_dataset", "from_arrays", "open_catalog_dataset"],
        "runner": ["EvalConfig", "make_split", "run_evaluation"],
        "service": ["evaluate", "synth_catalog"],
        "systems": ["DEFAULT_SYSTEMS", "SystemSpec", "artdb_train_default"],
    },
)
