"""Synthetic music catalogs with a known answer: planted homonym pages and synonym pairs.

``generate_catalog(out_dir, SynthConfig(...))`` writes audio files (FLAC/OGG/MP3/WAV, tagged) laid
out ``<page name>/<album>/<nn title>.<ext>`` and ``truth.json`` (see docs/synth.md); it returns the
:class:`CatalogTruth`. Everything is made with numpy from a seed: nothing is downloaded.
``synthetic_training_data`` skips the audio: log-mel-like arrays straight into ``TrainingData``.

Names are re-exported lazily: a worker rendering tracks, or a test wanting only the training
arrays, loads just the modules it uses.
"""

import lazy_loader as lazy

__getattr__, __dir__, __all__ = lazy.attach(__name__, submod_attrs={
    "catalog": ["generate_catalog"],
    "config": ["SynthConfig"],
    "encode": ["read_tags"],
    "plan": ["difficulty_params", "plan_catalog"],
    "training_data": ["synthetic_training_data"],
    "truth": ["TRUTH_FILE", "CatalogTruth"],
})
