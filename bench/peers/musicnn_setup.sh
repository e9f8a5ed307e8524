#!/usr/bin/env bash
# Create the musicnn peer's own virtual environment (outside the repo by default).
#
#   bench/peers/musicnn_setup.sh [VENV_DIR]      (default: /work/cache/musicnn-venv, or $MUSICNN_VENV)
#
# musicnn 0.1.0 ships its MSD weights in the wheel but pins nothing usable today, so it is
# installed with --no-deps next to a TensorFlow that still has the Keras 2 API (2.15.x) and
# numpy < 2 (with numpy >= 2 musicnn's float16 spectrogram overflows to inf). On Python >= 3.12,
# where TF 2.15 has no wheels, TF 2.16+ with tf_keras and TF_USE_LEGACY_KERAS=1 is used instead.
# Only PyPI is needed; nothing is downloaded at embedding time.
set -euo pipefail
VENV="${1:-${MUSICNN_VENV:-/work/cache/musicnn-venv}}"
PY="${PYTHON:-python3}"
minor=$("$PY" -c 'import sys; print(sys.version_info[1])')
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
"$VENV/bin/pip" install --quiet --upgrade pip
if [ "$minor" -le 11 ]; then
  "$VENV/bin/pip" install --quiet "tensorflow-cpu==2.15.1" "numpy<2" "librosa==0.11.*" soundfile
else
  "$VENV/bin/pip" install --quiet "tensorflow-cpu>=2.16,<2.19" tf_keras "numpy<2" "librosa==0.11.*" soundfile
fi
"$VENV/bin/pip" install --quiet --no-deps "musicnn==0.1.0"
"$VENV/bin/python" - <<'PY'
import os, musicnn, numpy
here = os.path.dirname(musicnn.__file__)
assert os.path.isdir(os.path.join(here, "MSD_musicnn")), "musicnn wheel lacks its MSD_musicnn weights"
print("musicnn", getattr(musicnn, "__version__", "0.1.0"), "numpy", numpy.__version__, "at", here)
PY
echo "ready: $VENV/bin/python"
