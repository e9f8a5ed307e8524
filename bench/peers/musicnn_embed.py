#!/usr/bin/env python3
"""The pretrained peer: musicnn's MSD model, 200-d ``penultimate`` features per track.

Runs in musicnn's own virtual environment (``bench/peers/musicnn_setup.sh``; TensorFlow 2.15,
numpy < 2), never in artdb's. Per track: the log-mel front-end of ``musicnn.extractor.batch_data``
(16 kHz, 96 mels, 3-s patches without overlap), the MSD_musicnn graph built and restored *once*,
and the mean of the patches' ``penultimate`` vectors. Output: an embeddings file that
``artdb evaluate --embeddings musicnn=FILE`` reads (``.npz`` with ``vectors`` + ``paths``).

    /work/cache/musicnn-venv/bin/python bench/peers/musicnn_embed.py --out musicnn.npz FILE...
    ... --list paths.txt          (one path per line)

``--max-seconds S`` reads only a centred window of S seconds of each track (to bound the cost on a
CPU; the default reads everything). Tracks that cannot be decoded are listed on stderr and left
out of the file (evaluate then names them). Nothing is downloaded: the weights ship inside the
musicnn wheel.
"""

from __future__ import annotations

import argparse
import os
import sys
import time


def _fix_numpy_overflow(config):
    """musicnn computes ``log10(10000 * float16 mel + 1)``; with numpy >= 2 the float16 product
    overflows to inf (numpy 2 keeps float16 for python-scalar products). Refuse that setup."""
    import numpy as np

    if int(np.__version__.split(".")[0]) >= 2:
        sys.exit("musicnn needs numpy < 2 (its float16 spectrogram overflows to inf); "
                 "run bench/peers/musicnn_setup.sh and use that venv's python")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("paths", nargs="*")
    ap.add_argument("--list", help="file with one audio path per line")
    ap.add_argument("--out", required=True, help="output .npz (vectors, paths)")
    ap.add_argument("--model", default="MSD_musicnn")
    ap.add_argument("--layer", default="penultimate", choices=["penultimate", "mean_pool", "max_pool"])
    ap.add_argument("--batch", type=int, default=64, help="patches per forward pass")
    ap.add_argument("--max-seconds", type=float, default=None,
                    help="read at most this much of each track (centred; default: the whole track)")
    ap.add_argument("--threads", type=int, default=int(os.environ.get("MUSICNN_THREADS", "2")))
    args = ap.parse_args(argv)
    paths = list(args.paths)
    if args.list:
        with open(args.list, encoding="utf-8") as f:
            paths += [line.rstrip("\n") for line in f if line.strip()]
    if not paths:
        ap.error("no audio files given")

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import librosa
    import numpy as np
    import tensorflow as tf
    from musicnn import configuration as config, models

    def batch_data(path, n_frames, overlap):
        """musicnn.extractor.batch_data (same front-end), optionally on a centred window."""
        offset, duration = 0.0, None
        if args.max_seconds:
            total = librosa.get_duration(path=path)
            if total > args.max_seconds:
                offset, duration = (total - args.max_seconds) / 2, args.max_seconds
        audio, sr = librosa.load(path, sr=config.SR, offset=offset, duration=duration)
        rep = librosa.feature.melspectrogram(y=audio, sr=sr, hop_length=config.FFT_HOP,
                                             n_fft=config.FFT_SIZE, n_mels=config.N_MELS).T
        rep = np.log10(10000 * rep.astype(np.float16) + 1)
        starts = range(0, rep.shape[0] - n_frames + 1, overlap)
        return np.stack([rep[t:t + n_frames] for t in starts]), rep

    _fix_numpy_overflow(config)
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    tf.compat.v1.disable_eager_execution()
    labels = config.MSD_LABELS if "MSD" in args.model else config.MTT_LABELS
    n_frames = librosa.time_to_frames(3, sr=config.SR, n_fft=config.FFT_SIZE, hop_length=config.FFT_HOP) + 1
    tf.compat.v1.reset_default_graph()
    with tf.name_scope("model"):
        x = tf.compat.v1.placeholder(tf.float32, [None, n_frames, config.N_MELS])
        is_training = tf.compat.v1.placeholder(tf.bool)
        outs = models.define_model(x, is_training, args.model, len(labels))
    layer = {"mean_pool": outs[6], "max_pool": outs[7], "penultimate": outs[8]}[args.layer]
    sess = tf.compat.v1.Session()
    sess.run(tf.compat.v1.global_variables_initializer())
    import musicnn

    weights = os.path.join(os.path.dirname(musicnn.__file__), args.model) + "/"
    tf.compat.v1.train.Saver().restore(sess, weights)

    vectors, kept, failed = [], [], []
    t0 = time.perf_counter()
    for i, path in enumerate(paths):
        try:
            batch, _ = batch_data(path, n_frames, n_frames)
        except Exception as exc:  # noqa: BLE001 - one bad file never stops the run
            failed.append((path, f"{type(exc).__name__}: {exc}"))
            continue
        if not np.all(np.isfinite(batch)):
            failed.append((path, "non-finite spectrogram"))
            continue
        feats = np.concatenate([sess.run(layer, feed_dict={x: batch[s:s + args.batch], is_training: False})
                                for s in range(0, len(batch), args.batch)])
        vectors.append(feats.reshape(len(feats), -1).mean(axis=0))
        kept.append(path)
        if (i + 1) % 20 == 0:
            print(f"{i + 1}/{len(paths)} tracks, {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    for path, why in failed:
        print(f"failed: {path}: {why}", file=sys.stderr)
    out = args.out if args.out.endswith(".npz") else args.out + ".npz"
    tmp = out + ".part.npz"
    np.savez(tmp, vectors=np.asarray(vectors, dtype=np.float32), paths=np.asarray(kept, dtype=str),
             model=np.asarray(f"musicnn {args.model} {args.layer}, mean over 3-s patches"))
    os.replace(tmp, out)
    print(f"wrote {len(kept)} vectors ({len(failed)} failed) to {out} in {time.perf_counter() - t0:.0f} s",
          file=sys.stderr)
    return 0 if kept else 1


if __name__ == "__main__":
    sys.exit(main())
