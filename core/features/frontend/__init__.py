"""Audio front-end: decode → excerpts → batched log-mel, with one config stored beside every model.

Public API (imported lazily, so ``import artdb.core.features.frontend.decode`` in a worker process does not
pull in torch):

- :class:`FrontendConfig`, :func:`check_compatible` (``.config``)
- :func:`decode_excerpts`, :func:`audio_duration` (``.decode``; numpy/soundfile/soxr only)
- :class:`LogMel`, :func:`log_mel`, :func:`mel_matrix` (``.logmel``; torch)
- :func:`extract_features`, :class:`FeatureExtractor` (``.pipeline``; worker pool + batching)
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "FrontendConfig": "config",
    "check_compatible": "config",
    "ALGORITHM_VERSION": "config",
    "decode_excerpts": "decode",
    "audio_duration": "decode",
    "LogMel": "logmel",
    "log_mel": "logmel",
    "mel_matrix": "logmel",
    "extract_features": "pipeline",
    "FeatureExtractor": "pipeline",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
