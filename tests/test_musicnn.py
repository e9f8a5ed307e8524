"""musicnn in torch (artdb.core.features.musicnn) against the TensorFlow original.

No TensorFlow here: the reference values come from ``tests/fixtures/musicnn/reference.npz``, written
once by ``bench/peers/musicnn_reference.py`` in musicnn's own venv (TF 2.15.1, numpy 1.26.4,
librosa 0.11.0), and from values printed by ``tf.compat.v1.train.NewCheckpointReader``. The weights
come from the ``musicnn`` 0.1.0 wheel (``pip install --no-deps musicnn==0.1.0``, done by
``make setup``); without it these tests skip.

Parity achieved on the fixture (CPU, torch 2.13): log-mel patches bit-identical; network outputs
within 3e-4 max abs (cnn3/max_pool, values up to ~100), taggram within 1e-6, penultimate within 1e-5.
The tests allow 1e-5 (front-end) and 1e-3 (every layer).
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

FIXTURE = Path(__file__).parent / "fixtures" / "musicnn"

if importlib.util.find_spec("musicnn") is None:
    pytest.skip("musicnn's weight files are not installed (pip install --no-deps musicnn==0.1.0)",
                allow_module_level=True)

torch = pytest.importorskip("torch")

from artdb.core.features.musicnn import (  # noqa: E402
    LAYERS,
    MusicnnBackbone,
    MusicnnNet,
    MusicnnNotInstalled,
    backbone as backbone_mod,  # noqa: E402
    batch_data,
    list_tensors,
    log_mel,
    musicnn_package_dir,
    patches,
    read_checkpoint,
)
from artdb.core.features.musicnn.checkpoint import (  # noqa: E402
    CheckpointError,
    read_index,
    snappy_decompress,
)

NET_TOL = 1e-3
MEL_TOL = 1e-5


@pytest.fixture(scope="module")
def ref():
    with np.load(FIXTURE / "reference.npz") as z:
        return {k: z[k] for k in z.files}


@pytest.fixture(scope="module")
def clips(ref):
    return [str(c) for c in ref["clips"]]


@pytest.fixture(scope="module")
def msd():
    return MusicnnBackbone.from_package("MSD_musicnn")


def _prefix(model: str) -> str:
    return str(musicnn_package_dir() / model) + "/"


# ------------------------------------------------------------------ checkpoint reader

def test_list_tensors_names_and_shapes():
    t = list_tensors(_prefix("MSD_musicnn"))
    assert len(t) == 150  # 66 variables + 2 Adam slots each (+ the two beta powers)
    assert "" not in t
    assert t["conv2d/kernel"] == (np.dtype("float32"), (7, 38, 1, 204))
    assert t["conv2d_1/kernel"][1] == (7, 67, 1, 204)
    assert t["conv2d_2/kernel"][1] == (128, 1, 1, 51)
    assert t["conv2d_5/kernel"][1] == (7, 561, 1, 64)
    assert t["batch_normalization_9/moving_variance"][1] == (1506,)
    assert t["dense/kernel"][1] == (1506, 200)
    assert t["dense_1/kernel"][1] == (200, 50)
    assert t["beta1_power"][1] == ()
    assert set(MusicnnNet().tf_variable_names()) <= set(t)


# float.hex of values printed by TensorFlow's NewCheckpointReader (TF 2.15.1).
TF_VALUES = {
    "MSD_musicnn": {
        ("batch_normalization/gamma", (0,)): "0x1.1b6d6c0000000p-1",
        ("batch_normalization/moving_mean", (0,)): "0x1.19519c0000000p+1",
        ("batch_normalization/moving_variance", (0,)): "0x1.95cd020000000p+0",
        ("dense_1/bias", (0,)): "-0x1.45580a0000000p+0",
        ("dense_1/bias", (49,)): "-0x1.58b77c0000000p+2",
        ("dense/kernel", (1505, 199)): "-0x1.4159960000000p-6",
        ("conv2d_5/kernel", (3, 100, 0, 10)): "0x1.3809ec0000000p-21",
        ("conv2d_2/kernel", (64, 0, 0, 7)): "-0x1.6d0db20000000p-43",
        ("batch_normalization_9/moving_variance", (1505,)): "0x1.26e5960000000p-1",
    },
    "MTT_musicnn": {
        ("batch_normalization/gamma", (0,)): "0x1.4b8ba60000000p-2",
        ("dense_1/bias", (49,)): "-0x1.50d4760000000p+1",
        ("dense/kernel", (1505, 199)): "-0x1.116f340000000p-7",
        ("conv2d_2/kernel", (64, 0, 0, 7)): "0x1.5cd49c0000000p-7",
    },
}


@pytest.mark.parametrize("model", sorted(TF_VALUES))
def test_read_checkpoint_values_match_tensorflow(model):
    want = TF_VALUES[model]
    names = sorted({n for n, _ in want})
    got = read_checkpoint(_prefix(model), names, verify=True)  # also checks the tensors' CRC-32C
    for (name, idx), hexval in want.items():
        assert got[name].dtype == np.float32
        assert float(got[name][idx]) == float.fromhex(hexval), (name, idx)


def test_read_checkpoint_errors(tmp_path):
    src = musicnn_package_dir() / "MSD_musicnn"
    with pytest.raises(CheckpointError, match="no checkpoint index"):
        read_index(tmp_path / "nothing")
    with pytest.raises(CheckpointError, match="no tensor named"):
        read_checkpoint(str(src) + "/", ["not/there"])
    # one flipped byte inside the index's data block: the block checksum catches it
    bad = tmp_path / "bad"
    bad.mkdir()
    data = bytearray((src / ".index").read_bytes())
    data[100] ^= 0xFF
    (bad / ".index").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="CRC"):
        read_index(str(bad) + "/")
    # a truncated data shard
    short = tmp_path / "short"
    short.mkdir()
    shutil.copy(src / ".index", short / ".index")
    (short / ".data-00000-of-00001").write_bytes((src / ".data-00000-of-00001").read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="do not hold"):
        read_checkpoint(str(short) + "/", ["dense/kernel"])


def test_snappy_decompress():
    # "abcd" literal, then a 1-byte-offset copy of length 4 back 4, then an overlapping copy (RLE)
    stream = bytes([12, 3 << 2]) + b"abcd" + bytes([((4 - 4) << 2) | 1, 4]) + bytes([((4 - 4) << 2) | 1, 1])
    assert snappy_decompress(stream) == b"abcdabcddddd"
    # 2-byte-offset copy
    stream = bytes([10, 4 << 2]) + b"hello" + bytes([(5 - 1) << 2 | 2, 5, 0])
    assert snappy_decompress(stream) == b"hellohello"
    with pytest.raises(CheckpointError):
        snappy_decompress(bytes([5, 0]) + b"a")  # says 5 bytes, holds 1


# ------------------------------------------------------------------ front-end

def test_frontend_matches_tensorflow_patches(ref, clips):
    for c in clips:
        mine, rep = batch_data(FIXTURE / f"{c}.flac")
        want = ref[f"{c}__mel"]
        assert mine.dtype == np.float32 and mine.shape == want.shape, c
        assert float(np.abs(mine - want).max()) <= MEL_TOL, c
        assert rep.shape[1] == 96 and mine.shape[1:] == (187, 96)


def test_frontend_float16_step_is_numpy1_semantics():
    """musicnn quantizes the mel power to float16 but (numpy 1.x) multiplies in float32: a power
    above 65504/10000 must not overflow to inf as the verbatim line does under numpy 2."""
    t = np.arange(16000 * 4, dtype=np.float32) / 16000
    loud = (0.99 * np.sign(np.sin(2 * np.pi * 440 * t))).astype(np.float32)  # full-scale square wave
    rep = log_mel(loud)
    assert np.isfinite(rep).all()
    assert rep.max() > np.log10(65504 + 1)  # the power did exceed float16 range / 10000
    import librosa

    mel = librosa.feature.melspectrogram(y=loud, sr=16000, hop_length=256, n_fft=512, n_mels=96).T
    want = np.log10(10000 * mel.astype(np.float16).astype(np.float32) + 1)
    np.testing.assert_array_equal(rep, want)


def test_patches_cut_like_musicnn():
    rep = np.arange(400 * 96, dtype=np.float32).reshape(400, 96)
    p = patches(rep)
    assert p.shape == (2, 187, 96) and np.array_equal(p[1], rep[187:374])
    assert patches(rep, hop=93).shape == (3, 187, 96)  # starts 0, 93, 186
    assert patches(rep[:186]).shape == (0, 187, 96)  # shorter than 3 s: no patch (as musicnn)


# ------------------------------------------------------------------ network vs TensorFlow

@pytest.mark.parametrize("layer", LAYERS + ("logits",))
def test_network_matches_tensorflow(msd, ref, clips, layer):
    frames = ref["frames"]
    for c in clips:
        out = msd.embed_patches(ref[f"{c}__mel"], "cpu", layers=(layer,))[layer]
        if out.ndim == 3:  # time-distributed layers are stored at a subset of frames
            out = out[:, frames]
        want = ref[f"{c}__{layer}"]
        assert out.shape == want.shape, (c, layer)
        err = float(np.abs(out - want).max())
        assert err <= NET_TOL, f"{c} {layer}: max abs error {err:.2e}"


def test_mtt_musicnn_same_architecture(ref, clips):
    mtt = MusicnnBackbone.from_package("MTT_musicnn")
    assert mtt.labels[:3] == ["guitar", "classical", "slow"] and len(mtt.labels) == 50
    for c in clips:
        out = mtt.embed_patches(ref[f"{c}__mel"], layers=("taggram", "penultimate"))
        for layer in ("taggram", "penultimate"):
            err = float(np.abs(out[layer] - ref[f"{c}__mtt_{layer}"]).max())
            assert err <= NET_TOL, f"{c} MTT {layer}: {err:.2e}"


def test_labels_and_batching(msd, ref, clips):
    assert msd.labels[:3] == ["rock", "pop", "alternative"] and len(msd.labels) == 50
    mel = np.concatenate([ref[f"{c}__mel"] for c in clips])
    one = msd.embed_patches(mel, layers=("penultimate", "taggram"), batch_size=1)
    many = msd.embed_patches(torch.from_numpy(mel), layers=("penultimate", "taggram"), batch_size=64)
    for k in one:
        np.testing.assert_allclose(one[k], many[k], atol=1e-5)
    empty = msd.embed_patches(mel[:0], layers="all")
    assert empty["timbral"].shape == (0, 187, 408) and empty["penultimate"].shape == (0, 200)
    with pytest.raises(Exception, match="log-mel patches"):
        msd.embed_patches(mel[:, :100])


def test_embed_file_is_mean_penultimate(msd, ref):
    c = "kpone_motorway"
    vec = msd.embed_file(FIXTURE / f"{c}.flac")
    np.testing.assert_allclose(vec, ref[f"{c}__penultimate"].mean(axis=0), atol=NET_TOL)


def _run(net, x, fast: bool):
    net.fast_inference = fast
    try:
        with torch.inference_mode():
            return {k: v.clone() for k, v in net(x).items()}
    finally:
        net.fast_inference = True


def test_fast_cpu_path_matches_convolutions(msd, ref, clips):
    """The eval-mode CPU front-end (Fourier-domain timbral convs, sign-folded maxima) against the
    convolution path, on the fixture and on random patches; batch sizes whose (patch, frame) count
    is not a multiple of the GEMM block, and the several-threads blocking."""
    net = msd.net
    mel = np.concatenate([ref[f"{c}__mel"] for c in clips])
    rng = np.random.default_rng(0)
    noise = rng.uniform(0.0, 4.5, size=(5, 187, 96)).astype(np.float32)  # log10(1 + 10000 mel) range
    threads = torch.get_num_threads()
    try:
        for x, n_threads in ((mel, 1), (noise, 1), (noise[:1], 1), (noise, 2)):
            torch.set_num_threads(n_threads)
            x = torch.from_numpy(x)
            fast, conv = _run(net, x, True), _run(net, x, False)
            assert set(fast) == set(conv)
            for k in conv:
                assert fast[k].shape == conv[k].shape and fast[k].dtype == torch.float32, k
                scale = max(1.0, float(conv[k].abs().max()))
                err = float((fast[k] - conv[k]).abs().max())
                assert err <= 2e-5 * scale, f"{k} ({len(x)} patches, {n_threads} threads): {err:.2e}"
    finally:
        torch.set_num_threads(threads)
    assert net._fast_cache is not None  # the fast path did run


def test_fast_path_follows_new_weights(ref, clips):
    """Weights loaded after a fast forward (in place, as ``load_tf_weights`` does) are used."""
    msd_t = read_checkpoint(_prefix("MSD_musicnn"), MusicnnNet().tf_variable_names())
    mtt_t = read_checkpoint(_prefix("MTT_musicnn"), MusicnnNet().tf_variable_names())
    net = MusicnnNet.from_tf_tensors(msd_t)
    c = clips[0]
    x = torch.from_numpy(ref[f"{c}__mel"])
    with torch.inference_mode():
        first = net(x)["taggram"].numpy()
    assert float(np.abs(first - ref[f"{c}__taggram"]).max()) <= NET_TOL
    net.load_tf_weights(mtt_t)
    with torch.inference_mode():
        out = net(x)
    for layer in ("taggram", "penultimate"):
        err = float(np.abs(out[layer].numpy() - ref[f"{c}__mtt_{layer}"]).max())
        assert err <= NET_TOL, f"{layer} after reloading: {err:.2e}"


def test_fast_path_leaves_state_dict_and_training_alone(msd, ref, clips):
    net = msd.net
    x = torch.from_numpy(ref[f"{clips[0]}__mel"])
    with torch.inference_mode():
        net(x)
    assert net.state_dict().keys() == MusicnnNet().state_dict().keys()
    assert not any("fast" in k for k in net.state_dict())
    # eval with autograd: the convolutions, differentiable
    before = net._fast_cache
    xg = x.clone().requires_grad_(True)
    out = net(xg)
    assert out["timbral"].requires_grad
    out["penultimate"].sum().backward()
    assert xg.grad is not None and net.timbral[0].weight.grad is not None
    assert net._fast_cache is before  # not rebuilt, not used
    net.zero_grad(set_to_none=True)
    # training mode: batch statistics, the literal order; then back to eval unchanged
    state = {k: v.clone() for k, v in net.state_dict().items()}
    try:
        net.train()
        net(torch.from_numpy(np.concatenate([ref[f"{c}__mel"] for c in clips])))
    finally:
        net.load_state_dict(state)
        net.eval()
    with torch.inference_mode():
        again = net(x)["taggram"].numpy()
    assert float(np.abs(again - ref[f"{clips[0]}__taggram"]).max()) <= NET_TOL


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_tensorflow(msd, ref, clips):
    try:
        for c in clips:
            out = msd.embed_patches(ref[f"{c}__mel"], "cuda", layers="all")
            for layer in LAYERS:
                got = out[layer][:, ref["frames"]] if out[layer].ndim == 3 else out[layer]
                err = float(np.abs(got - ref[f"{c}__{layer}"]).max())
                assert err <= NET_TOL, f"cuda {c} {layer}: {err:.2e}"
    finally:
        msd.net.to("cpu")
        msd._device = torch.device("cpu")


def test_missing_package_names_the_install(monkeypatch):
    monkeypatch.setattr(backbone_mod.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(MusicnnNotInstalled, match=r"pip install --no-deps musicnn==0\.1\.0"):
        MusicnnBackbone.from_package("MSD_musicnn")


def test_fixture_is_documented():
    meta = json.loads((FIXTURE / "clips.json").read_text())
    assert len({c["artist"] for c in meta["clips"]}) == 3
    assert (FIXTURE / "README.md").is_file()
