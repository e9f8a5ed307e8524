"""musicnn (MSD_musicnn / MTT_musicnn) in torch: TensorFlow-free port of the pretrained tagger.

* :mod:`.checkpoint` reads TensorFlow v2 checkpoint bundles with numpy alone;
* :mod:`.network` is the musicnn network, loading those weights;
* :mod:`.frontend` is musicnn's input pipeline (16 kHz, 96-band log-mel, 187-frame patches);
* :mod:`.backbone` ties them together: ``MusicnnBackbone.from_package("MSD_musicnn")``.

Parity with the TensorFlow original is tested against ``tests/fixtures/musicnn/``.
"""

from .backbone import MODELS, MusicnnBackbone, MusicnnNotInstalled, musicnn_package_dir
from .checkpoint import CheckpointError, list_tensors, read_checkpoint
from .frontend import N_FRAMES, N_MELS, SR, batch_data, load_audio, log_mel, patches
from .network import LAYERS, MusicnnNet

__all__ = [
    "MODELS", "MusicnnBackbone", "MusicnnNotInstalled", "musicnn_package_dir",
    "CheckpointError", "list_tensors", "read_checkpoint",
    "N_FRAMES", "N_MELS", "SR", "batch_data", "load_audio", "log_mel", "patches",
    "LAYERS", "MusicnnNet",
]
