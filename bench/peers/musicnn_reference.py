#!/usr/bin/env python3
"""Write the musicnn parity fixture (``tests/fixtures/musicnn/``) with the TensorFlow original.

Runs ONCE, in musicnn's own virtual environment (``bench/peers/musicnn_setup.sh``: TensorFlow 2.15,
numpy < 2, librosa 0.11), never in artdb's:

    /work/cache/musicnn-venv/bin/python bench/peers/musicnn_reference.py \
        --catalog /work/cache/realcat-dev [--out tests/fixtures/musicnn]

1. cuts three short clips (three artists of the real dev catalog, free licences) to 16 kHz mono
   16-bit FLAC: ``librosa.load(sr=16000)`` of the source, the chosen window, clipped to 16-bit range;
2. per clip, musicnn's own ``musicnn.extractor.batch_data(clip, 187, 187)`` gives the log-mel patches
   (the input of ``extractor(input_overlap=False)``);
3. the MSD_musicnn graph is built exactly as ``musicnn.extractor.extractor`` builds it
   (``models.define_model`` under ``tf.name_scope('model')``, ``Saver().restore``) and every layer
   that ``extractor`` exposes is fetched for the whole batch of patches at once. (``extractor`` itself
   feeds one patch at a time, squeezes the batch axis, and concatenates the *first* patch's
   cnn1/cnn2/cnn3 and penultimate for every later patch, a bug; its taggram, mean_pool and max_pool
   (all patches) and penultimate (first patch) are checked against the graph outputs here, to 1e-5.)
4. MTT_musicnn's taggram and penultimate are stored too.

Output ``reference.npz``: for clip ``c``: ``c__mel`` (n, 187, 96) float32, ``c__taggram``,
``c__logits``, ``c__penultimate``, ``c__mean_pool``, ``c__max_pool`` (n, ...) float32, and the
time-distributed layers ``c__timbral``, ``c__temporal``, ``c__cnn1``-``c__cnn3`` only at the frames
in ``frames`` (both edges, where padding matters, and a stride through the middle: keeps the
fixture small); ``c__mtt_taggram``, ``c__mtt_penultimate``; ``clips``, ``versions``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from pathlib import Path

# (catalog path, start second, seconds): three artists, three genres.
CLIPS = {
    "0zone0ne_bay": ("0zone0ne/supertuxkart/bay.ogg", 60.0, 4.5),
    "zhelanov_founders": ("alexandr-zhelanov/freecol/founders.ogg", 80.0, 4.5),
    "kpone_motorway": ("martin-strohmeier-k-pone/openclonk/motorway.ogg", 95.0, 6.2),
}
LAYERS = ["taggram", "logits", "timbral", "temporal", "cnn1", "cnn2", "cnn3", "mean_pool", "max_pool",
          "penultimate"]
TIME_LAYERS = ("timbral", "temporal", "cnn1", "cnn2", "cnn3")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--catalog", default="/work/cache/realcat-dev")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[2] / "tests/fixtures/musicnn"))
    args = ap.parse_args(argv)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np

    if int(np.__version__.split(".")[0]) >= 2:
        sys.exit("run this in musicnn's venv (numpy < 2): bench/peers/musicnn_setup.sh")
    import librosa
    import musicnn
    import soundfile as sf
    import tensorflow as tf
    from musicnn import configuration as config, extractor as mx, models

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    catalog = Path(args.catalog)
    with open(catalog / "manifest.csv", newline="", encoding="utf-8") as f:
        manifest = {row["path"]: row for row in csv.DictReader(f)}

    # 1. clips
    clip_rows = []
    for name, (rel, start, seconds) in CLIPS.items():
        audio, sr = librosa.load(str(catalog / "audio" / rel), sr=config.SR, offset=start, duration=seconds)
        audio = np.clip(audio, -1.0, 32767 / 32768)
        sf.write(str(out / f"{name}.flac"), audio, sr, subtype="PCM_16")
        row = manifest[rel]
        clip_rows.append({"clip": f"{name}.flac", "source": rel, "start_s": start, "seconds": seconds,
                          "artist": row["artist"], "title": row["title"], "album": row["album"],
                          "package": row["source_package"], "licence": row["licence"]})

    n_frames = librosa.time_to_frames(3, sr=config.SR, n_fft=config.FFT_SIZE, hop_length=config.FFT_HOP) + 1
    assert n_frames == 187
    frames = np.r_[0:4, 20:184:24, 183:187]

    def graph(model):
        tf.compat.v1.reset_default_graph()
        with tf.name_scope("model"):
            x = tf.compat.v1.placeholder(tf.float32, [None, n_frames, config.N_MELS])
            is_training = tf.compat.v1.placeholder(tf.bool)
            y, timbral, temporal, cnn1, cnn2, cnn3, mean_pool, max_pool, pen = models.define_model(
                x, is_training, model, 50)
            outs = dict(taggram=tf.nn.sigmoid(y), logits=y, timbral=timbral, temporal=temporal, cnn1=cnn1,
                        cnn2=cnn2, cnn3=cnn3, mean_pool=mean_pool, max_pool=max_pool, penultimate=pen)
        sess = tf.compat.v1.Session()
        sess.run(tf.compat.v1.global_variables_initializer())
        tf.compat.v1.train.Saver().restore(sess, os.path.dirname(musicnn.__file__) + "/" + model + "/")
        return sess, x, is_training, outs

    # 2.-3. MSD_musicnn
    data = {}
    batches = {}
    sess, x, is_training, outs = graph("MSD_musicnn")
    for name in CLIPS:
        batch, _ = mx.batch_data(str(out / f"{name}.flac"), n_frames, n_frames)
        batch = batch.astype(np.float32)
        assert np.all(np.isfinite(batch)), name
        batches[name] = batch
        res = sess.run(outs, feed_dict={x: batch, is_training: False})
        data[f"{name}__mel"] = batch
        for layer in LAYERS:
            v = np.asarray(res[layer], dtype=np.float32)
            if layer in TIME_LAYERS:
                v = v.reshape(v.shape[0], v.shape[1], -1)[:, frames]  # (n, frames, channels)
            data[f"{name}__{layer}"] = v
        print(name, batch.shape, {k: data[f"{name}__{k}"].shape for k in LAYERS}, file=sys.stderr)
    sess.close()

    # the published extractor, patch by patch, agrees with the batched graph
    for name in CLIPS:
        taggram, _, feats = mx.extractor(str(out / f"{name}.flac"), model="MSD_musicnn",
                                         extract_features=True)
        err = {k: float(np.abs(np.asarray(v) - data[f"{name}__{k}"][:len(v)]).max()) for k, v in
               (("taggram", taggram), ("mean_pool", feats["mean_pool"]), ("max_pool", feats["max_pool"]),
                ("penultimate", feats["penultimate"][:1]))}
        print(f"{name}: extractor vs graph: " + ", ".join(f"{k} {v:.1e}" for k, v in err.items()),
              file=sys.stderr)
        assert max(err.values()) < 1e-5, name

    # 4. MTT_musicnn
    sess, x, is_training, outs = graph("MTT_musicnn")
    for name in CLIPS:
        res = sess.run({k: outs[k] for k in ("taggram", "penultimate")},
                       feed_dict={x: batches[name], is_training: False})
        data[f"{name}__mtt_taggram"] = res["taggram"].astype(np.float32)
        data[f"{name}__mtt_penultimate"] = res["penultimate"].astype(np.float32)
    sess.close()

    versions = {"tensorflow": tf.__version__, "numpy": np.__version__, "librosa": librosa.__version__,
                "musicnn": "0.1.0", "python": sys.version.split()[0]}
    data["frames"] = frames.astype(np.int64)
    data["clips"] = np.asarray(list(CLIPS))
    data["versions"] = np.asarray(json.dumps(versions))
    np.savez_compressed(out / "reference.npz", **data)
    (out / "clips.json").write_text(json.dumps({"clips": clip_rows, "versions": versions}, indent=1) + "\n")
    total = sum(p.stat().st_size for p in out.iterdir() if p.is_file())
    print(f"wrote {out} ({total / 1e3:.0f} kB)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
