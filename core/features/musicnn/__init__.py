"""musicnn (MSD_musicnn / MTT_musicnn) in torch: TensorFlow-free port of the pretrained tagger.

* :mod:`.checkpoint` reads TensorFlow v2 checkpoint bundles with numpy alone;
* :mod:`.network` is the musicnn network, loading those weights;
* :mod:`.frontend` is musicnn's input pipeline (16 kHz, 96-band log-mel, 187-frame patches);
* :mod:`.backbone` ties them together: ``MusicnnBackbone.from_package("MSD_musicnn")``.

Parity with the TensorFlow original is tested against ``tests/fixtures/musicnn/``.
"""

import lazy_loader as lazy

# Lazy, as the other stage packages: importing the reader or the front-end loads no torch.
__getattr__, __dir__, __all__ = lazy.attach(__name__, submod_attrs={
    "backbone": ["MODELS", "MusicnnBackbone", "MusicnnNotInstalled", "musicnn_package_dir"],
    "checkpoint": ["CheckpointError", "list_tensors", "read_checkpoint"],
    "frontend": ["N_FRAMES", "N_MELS", "SR", "batch_data", "load_audio", "log_mel", "patches"],
    "network": ["LAYERS", "MusicnnNet"],
})
