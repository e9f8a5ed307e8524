"""Evaluation of artist embeddings with the protocol of Royo-Letelier et al. (ISMIR 2018).

- :mod:`.protocol`: units, homonym groups, cross-validated thresholds, ARI/AMI, controls (pure);
- :mod:`.dataset`: a labelled evaluation set (features + true artists) from a catalog folder
  (ingested into a private data dir), an existing catalog, or arrays;
- :mod:`.systems`: the systems compared (MFCC, untrained CNN, CL, ML variants, joint, controls,
  external embedding files, registered models);
- :mod:`.runner`: :func:`run_evaluation` — splits, experiments, every system on identical splits;
- :mod:`.report`: the paper-shaped Markdown tables and the ARI-vs-training-artists plot;
- :mod:`.peers`: the pretrained musicnn peer, run in its own virtual environment.
"""

from artdb.core.evaluation.dataset import EvalDataset, catalog_dataset, from_arrays, open_catalog_dataset
from artdb.core.evaluation.runner import EvalConfig, make_split, run_evaluation

__all__ = ["EvalConfig", "EvalDataset", "catalog_dataset", "from_arrays", "make_split",
           "open_catalog_dataset", "run_evaluation"]
