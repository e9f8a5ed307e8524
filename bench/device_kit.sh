#!/usr/bin/env bash
# What bench/gpu_check.py needs on the lent GPU machine, and the one command that runs it there.
#
#   bash bench/device_kit.sh prepare [PYVER]   # here, with the package registry: fills .whl/ (ignored)
#   bash bench/device_kit.sh run               # there (device tool, carry [".whl"]): writes $OUT/gpu_check.json
#
# The GPU machine has python3 3.12 with torch (CUDA), numpy, scipy, scikit-learn, numba, joblib,
# msgpack, lazy_loader, packaging, rich, click (/work/.library/device/KINDS.md) and no registry, so
# what artdb's GPU paths import beyond that travels as cp312 manylinux wheels (~45 MiB with the
# working tree; the tool's limit is 64 MiB): FAISS (CPU build: the indexer package imports it),
# librosa and its readers, pytorch-metric-learning, and musicnn's MSD weights alone (its package
# holds four models, 36 MiB). artdb itself is the working tree, put on the path as `artdb`.
# `prepare 3.11` makes the same kit for this machine's Python, to try `run --device cpu` here in a
# venv holding only what the GPU machine has (docs/frontend.md, "GPU check").
set -euo pipefail
cd "$(dirname "$0")/.."
KIT=.whl
WHEELS=(faiss-cpu==1.15.1 librosa==0.11.0 soundfile==0.14.0 soxr==1.1.0
        pytorch-metric-learning==2.9.0 pooch==1.9.0 platformdirs==4.14.9 decorator==5.3.1 cffi==2.1.1)

case "${1:-}" in
prepare)
    pyver="${2:-3.12}"
    rm -rf "$KIT" && mkdir -p "$KIT"
    .venv/bin/python -m pip download -q --no-deps --only-binary=:all: --python-version "$pyver" \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        --platform manylinux1_x86_64 -d "$KIT" "${WHEELS[@]}"
    # musicnn's MSD_musicnn checkpoint and the two small files artdb reads (no TensorFlow code runs)
    src=$(.venv/bin/python -c "from artdb.core.features.musicnn.backbone import musicnn_package_dir as d; print(d())")
    mkdir -p "$KIT/musicnn-pkg/musicnn"
    cp "$src/__init__.py" "$src/configuration.py" "$KIT/musicnn-pkg/musicnn/"
    cp -r "$src/MSD_musicnn" "$KIT/musicnn-pkg/musicnn/"
    du -sh "$KIT"
    ;;
run)
    out="${OUT:-/tmp/gpu-check-out}"
    mkdir -p "$out" /tmp/artdb-path
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site "$KIT"/*.whl
    ln -sfn "$PWD" /tmp/artdb-path/artdb  # the working tree is the artdb namespace (pyproject.toml)
    export PYTHONPATH="/tmp/site:/tmp/artdb-path:$PWD/$KIT/musicnn-pkg${PYTHONPATH:+:$PYTHONPATH}"
    export PYTHONUNBUFFERED=1
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || true
    shift
    python3 bench/gpu_check.py --out "$out/gpu_check.json" "$@"
    ;;
*)
    sed -n '2,14p' "$0"
    exit 64
    ;;
esac
