"""Synthetic music catalogs with a known answer: planted homonym pages and synonym pairs.

``generate_catalog(out_dir, SynthConfig(...))`` writes audio files (FLAC/OGG/MP3/WAV, tagged) laid
out ``<page name>/<album>/<nn title>.<ext>`` and ``truth.json`` (see docs/synth.md); it returns the
:class:`CatalogTruth`. Everything is made with numpy from a seed: nothing is downloaded.
"""

from artdb.core.synth.catalog import generate_catalog
from artdb.core.synth.config import SynthConfig
from artdb.core.synth.encode import read_tags
from artdb.core.synth.plan import difficulty_params, plan_catalog
from artdb.core.synth.truth import TRUTH_FILE, CatalogTruth

__all__ = [
    "CatalogTruth",
    "SynthConfig",
    "TRUTH_FILE",
    "difficulty_params",
    "generate_catalog",
    "plan_catalog",
    "read_tags",
]
