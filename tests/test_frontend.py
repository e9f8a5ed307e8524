"""Front-end: config, log-mel against known answers, decoding of every format, silence, errors."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from artdb.core.errors import AudioError, ConfigError, ModelMismatchError
from artdb.core.features.frontend import (
    FeatureExtractor,
    FrontendConfig,
    LogMel,
    check_compatible,
    decode_excerpts,
    extract_features,
    mel_matrix,
)
from artdb.core.features.frontend.decode import plan_windows

# Small and fast: 3 excerpts of 1 s.
CFG = FrontendConfig(excerpt_seconds=1.0, excerpts_per_track=3, probes=8, min_track_seconds=0.5)

FORMATS = [  # (extension, format, subtype)
    ("wav", "WAV", "PCM_16"),
    ("flac", "FLAC", "PCM_16"),
    ("ogg", "OGG", "VORBIS"),
    ("mp3", "MP3", "MPEG_LAYER_III"),
]


def tone(freq: float, seconds: float, sr: int, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(round(seconds * sr))) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write(path, audio: np.ndarray, sr: int, fmt: str = "WAV", subtype: str = "PCM_16", stereo=True):
    data = np.stack([audio, audio], axis=1) if stereo else audio
    # Written in 1 s blocks: libsndfile 1.2 crashes writing long Vorbis blocks in one call.
    channels = data.shape[1] if data.ndim == 2 else 1
    with sf.SoundFile(path, "w", sr, channels, subtype=subtype, format=fmt) as f:
        for i in range(0, len(data), sr):
            f.write(data[i : i + sr])
    return path


def peak_hz(excerpt: np.ndarray, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(excerpt * np.hanning(len(excerpt))))
    return float(np.argmax(spectrum) * sr / len(excerpt))


def silent_blocks(excerpt: np.ndarray, sr: int, db: float = -60.0) -> int:
    block = sr // 20
    n = len(excerpt) // block
    power = np.mean(excerpt[: n * block].reshape(n, block) ** 2, axis=1)
    return int(np.sum(power < 10 ** (db / 10)))


# -- config ------------------------------------------------------------------------------------


def test_config_round_trip_and_fingerprint():
    cfg = FrontendConfig()
    assert FrontendConfig.from_dict(cfg.to_dict()) == cfg
    assert FrontendConfig.from_dict(cfg.to_dict()).fingerprint() == cfg.fingerprint()
    # Pinned: a change of defaults or of the algorithm version must be deliberate.
    assert cfg.fingerprint() == "300a2e2e8a78eb17"
    assert FrontendConfig(fmax=8000).fingerprint() == cfg.fingerprint()  # int vs float alike
    assert FrontendConfig(n_mels=128).fingerprint() != cfg.fingerprint()
    assert cfg.feature_shape == (6, 96, 151)


def test_config_validation():
    with pytest.raises(ConfigError, match="fmax"):
        FrontendConfig(fmax=9000)
    with pytest.raises(ConfigError, match="normalisation"):
        FrontendConfig(normalisation="minmax")
    with pytest.raises(ConfigError, match="unknown FrontendConfig field"):
        FrontendConfig.from_dict({"sample_rate": 16000, "colour": "red"})


def test_check_compatible_names_the_difference():
    check_compatible(CFG, FrontendConfig.from_dict(CFG.to_dict()))
    other = FrontendConfig(**{**CFG.to_dict(), "hop_length": 160})
    with pytest.raises(ModelMismatchError, match="hop_length: 320 != 160"):
        check_compatible(CFG, other, what="model m1")


# -- log-mel -----------------------------------------------------------------------------------


@pytest.mark.parametrize("freq", [220.0, 1000.0, 3500.0])
def test_sine_peaks_in_its_mel_band(freq):
    cfg = FrontendConfig()
    feats = LogMel(cfg)(tone(freq, cfg.excerpt_seconds, cfg.sample_rate))
    assert feats.shape == (cfg.n_mels, cfg.frames)
    band = int(feats.mean(dim=1).argmax())
    fft_bin = int(round(freq * cfg.n_fft / cfg.sample_rate))
    assert band == int(np.argmax(mel_matrix(cfg)[:, fft_bin]))  # the band whose filter holds f
    import librosa

    edges = librosa.mel_frequencies(cfg.n_mels + 2, fmin=cfg.fmin, fmax=cfg.fmax)
    assert edges[band] < freq < edges[band + 2]


def test_log_mel_matches_librosa():
    import librosa

    cfg = FrontendConfig(normalisation="none")
    rng = np.random.default_rng(0)
    y = (0.1 * rng.standard_normal(cfg.excerpt_samples)).astype(np.float32) + tone(440, 3.0, 16000)
    ref = librosa.power_to_db(
        librosa.feature.melspectrogram(
            y=y, sr=cfg.sample_rate, n_fft=cfg.n_fft, hop_length=cfg.hop_length,
            n_mels=cfg.n_mels, fmin=cfg.fmin, fmax=cfg.fmax, power=2.0, center=True,
            pad_mode="constant",
        ),
        ref=1.0, amin=cfg.amin, top_db=None,
    )
    ours = LogMel(cfg)(y).numpy()
    np.testing.assert_allclose(ours, ref, atol=2e-3)
    fixed = LogMel(FrontendConfig())(y).numpy()
    np.testing.assert_allclose(fixed, (ref + 40) / 20, atol=1e-3)


def test_log_mel_batched_equals_single_and_per_excerpt_normalisation():
    cfg = FrontendConfig(excerpt_seconds=1.0, normalisation="per_excerpt")
    rng = np.random.default_rng(1)
    audio = rng.standard_normal((2, 3, cfg.excerpt_samples)).astype(np.float32)
    batched = LogMel(cfg)(audio)
    assert batched.shape == (2, 3, cfg.n_mels, cfg.frames)
    single = LogMel(cfg)(audio[1, 2])
    torch.testing.assert_close(batched[1, 2], single, atol=1e-4, rtol=1e-4)
    assert abs(float(batched[0, 0].mean())) < 1e-4 and abs(float(batched[0, 0].std()) - 1) < 1e-3


# -- decoding ----------------------------------------------------------------------------------


@pytest.mark.parametrize("sr", [44100, 48000])
@pytest.mark.parametrize("ext,fmt,subtype", FORMATS)
def test_every_format_decodes_and_keeps_the_tone(tmp_path, ext, fmt, subtype, sr):
    path = write(tmp_path / f"tone-{sr}.{ext}", tone(1000.0, 6.0, sr), sr, fmt, subtype)
    x = decode_excerpts(path, CFG)
    assert x.shape == (CFG.excerpts_per_track, CFG.excerpt_samples) and x.dtype == np.float32
    for excerpt in x:
        assert abs(peak_hz(excerpt, CFG.sample_rate) - 1000.0) <= 2.0  # resampling kept f
        assert silent_blocks(excerpt, CFG.sample_rate) == 0


def test_mono_and_downmix(tmp_path):
    sr = 22050
    left, right = tone(500.0, 4.0, sr), tone(500.0, 4.0, sr, amp=0.1)
    with sf.SoundFile(tmp_path / "lr.wav", "w", sr, 2, subtype="FLOAT", format="WAV") as f:
        f.write(np.stack([left, right], axis=1))
    x = decode_excerpts(tmp_path / "lr.wav", CFG)
    assert np.isclose(np.abs(x[1]).max(), 0.2, atol=0.01)  # mean of 0.3 and 0.1


def test_leading_and_trailing_silence_skipped(tmp_path):
    sr = 44100
    rng = np.random.default_rng(2)
    music = tone(700.0, 6.0, sr) + (0.05 * rng.standard_normal(6 * sr)).astype(np.float32)
    silence = np.zeros(4 * sr, np.float32)
    path = write(tmp_path / "padded.flac", np.concatenate([silence, music, silence]), sr, "FLAC")
    x = decode_excerpts(path, CFG)
    assert all(silent_blocks(e, CFG.sample_rate) == 0 for e in x)


def test_silent_break_mid_track_avoided(tmp_path):
    sr = 16000
    cfg = FrontendConfig(excerpt_seconds=1.0, excerpts_per_track=3, probes=16, min_track_seconds=0.5)
    a, gap = tone(600.0, 3.5, sr), np.zeros(5 * sr, np.float32)
    path = write(tmp_path / "break.wav", np.concatenate([a, gap, a]), sr)
    x = decode_excerpts(path, cfg)
    # Without the check the middle window would sit in the 5 s break.
    assert all(silent_blocks(e, sr) <= 10 for e in x)


def test_plan_windows_spreads_over_loud_region():
    starts = np.arange(0, 100, 10)
    loud = np.array([False, False, True, True, True, True, True, True, False, False])
    got = plan_windows(100, 10, starts, loud, probe_len=2, k=3)
    assert got.tolist() == [24, 41, 58]  # region 20..72, centres at 1/6, 3/6, 5/6 of it
    assert plan_windows(100, 10, starts, np.zeros(10, bool), 2, 2).tolist() == [20, 70]


def test_short_tracks(tmp_path):
    sr = 44100
    path = write(tmp_path / "short.wav", tone(440.0, 0.7, sr), sr)
    x = decode_excerpts(path, CFG)
    assert x.shape == (3, CFG.excerpt_samples)
    assert np.abs(x[0, : int(0.6 * CFG.sample_rate)]).max() > 0.2  # the track…
    assert np.abs(x[0, int(0.75 * CFG.sample_rate) :]).max() == 0  # …then zero padding
    reject = FrontendConfig(**{**CFG.to_dict(), "short_tracks": "reject"})
    with pytest.raises(AudioError, match=r"short\.wav: track is 0\.70 s long, shorter than one 1 s"):
        decode_excerpts(path, reject)
    tiny = write(tmp_path / "tiny.wav", tone(440.0, 0.2, sr), sr)
    with pytest.raises(AudioError, match="shorter than min_track_seconds=0.5"):
        decode_excerpts(tiny, CFG)


def test_bad_files_give_clear_audio_errors(tmp_path, rng):
    garbage = tmp_path / "garbage.mp3"
    garbage.write_bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(AudioError) as err:
        decode_excerpts(garbage, CFG)
    # an .mp3 that libsndfile (which reads MP3) cannot decode is not audio: no talk of ffmpeg
    assert err.value.path == str(garbage) and err.value.reason == (
        "not decodable audio: libsndfile cannot decode this MP3 file (format not recognised)")
    with pytest.raises(AudioError, match="file not found"):
        decode_excerpts(tmp_path / "nope.flac", CFG)
    empty = tmp_path / "empty.ogg"
    empty.write_bytes(b"")
    with pytest.raises(AudioError, match="empty.ogg"):
        decode_excerpts(empty, CFG)
    silent = write(tmp_path / "silent.wav", np.zeros(5 * 16000, np.float32), 16000)
    with pytest.raises(AudioError, match="silent"):
        decode_excerpts(silent, CFG)


def test_truncated_file_is_error_or_usable(tmp_path):
    """A file cut short after its header: either an AudioError naming it or valid excerpts."""
    sr = 44100
    full = write(tmp_path / "full.flac", tone(900.0, 8.0, sr), sr, "FLAC")
    cut = tmp_path / "cut.flac"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 3])
    try:
        x = decode_excerpts(cut, CFG)
    except AudioError as exc:
        assert exc.path == str(cut)
    else:
        assert x.shape == (3, CFG.excerpt_samples) and np.isfinite(x).all()


def _ogg_crc(data: bytes) -> int:
    """Ogg's page checksum: CRC-32, polynomial 0x04C11DB7, unreflected, initial value 0."""
    crc = 0
    for byte in data:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else crc << 1
        crc &= 0xFFFFFFFF
    return crc


def overstate_ogg_length(path, extra_frames: int) -> None:
    """Raise the final page's granule position (what libsndfile reads as the length) by
    ``extra_frames``, with a valid checksum: a stream whose header promises more than it decodes."""
    import struct

    data = bytearray(path.read_bytes())
    last = data.rfind(b"OggS")
    n_segments = data[last + 26]
    size = 27 + n_segments + sum(data[last + 27:last + 27 + n_segments])
    granule = struct.unpack_from("<q", data, last + 6)[0]
    struct.pack_into("<q", data, last + 6, granule + extra_frames)
    struct.pack_into("<I", data, last + 22, 0)
    struct.pack_into("<I", data, last + 22, _ogg_crc(bytes(data[last:last + size])))
    path.write_bytes(bytes(data))


def test_ogg_whose_header_overstates_its_length_decodes_to_its_last_real_frames(tmp_path):
    """Real Ogg Vorbis files (dev catalog) promise ~100 frames more than they decode; a window
    planned to end at the promised end is read again ending where the audio ends. Much more
    missing than that stays an error naming the file."""
    sr = 44100
    t = np.arange(20 * sr) / sr
    chirp = (0.3 * np.sin(2 * np.pi * (200 + 40 * t) * t)).astype(np.float32)  # no two windows alike
    path = write(tmp_path / "quirk.ogg", chirp, sr, "OGG", "VORBIS", stereo=False)
    overstate_ogg_length(path, 300)
    with sf.SoundFile(path) as f:
        promised, decoded = f.frames, len(f.read())
    assert promised > decoded  # the quirk is real: libsndfile reports the page's granule position
    cfg = FrontendConfig(excerpts_per_track=12)  # 12 x 2.976 s over 20 s: the last one ends at the end
    x = decode_excerpts(path, cfg)
    assert x.shape == (12, cfg.excerpt_samples) and np.isfinite(x).all()
    assert np.abs(x[-1, -cfg.sample_rate // 10:]).max() > 0.1  # real audio to the last 0.1 s, not padding

    gross = write(tmp_path / "gross.ogg", chirp, sr, "OGG", "VORBIS", stereo=False)
    overstate_ogg_length(gross, 5 * sr)
    with pytest.raises(AudioError, match="file ended early") as exc:
        decode_excerpts(gross, cfg)
    assert exc.value.path == str(gross)


# -- pipeline ----------------------------------------------------------------------------------


def _mixed_paths(tmp_path):
    sr = 44100
    good1 = write(tmp_path / "é-one.flac", tone(500.0, 4.0, sr), sr, "FLAC")
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF....WAVEfmt garbage")
    good2 = write(tmp_path / "two.ogg", tone(2000.0, 3.0, 48000), 48000, "OGG", "VORBIS")
    return [good1, bad, good2]


def test_extract_features_in_process(tmp_path):
    paths = _mixed_paths(tmp_path)
    seen = []
    results = list(extract_features(paths, CFG, workers=0,
                                    progress=lambda *a, **info: seen.append((*a, info))))
    assert [r[0] for r in results] == [0, 1, 2]
    assert [r[1] for r in results] == [str(p) for p in paths]
    assert seen == [("features", n, 3, {"path": str(p)}) for n, p in enumerate(paths, 1)]
    f0, err, f2 = (r[2] for r in results)
    assert isinstance(err, AudioError) and err.path == str(paths[1])
    for feats, freq in ((f0, 500.0), (f2, 2000.0)):
        assert feats.dtype == np.float16 and feats.shape == CFG.feature_shape
        band = int(feats.astype(np.float32).mean(axis=(0, 2)).argmax())
        assert band == int(np.argmax(mel_matrix(CFG)[:, round(freq * CFG.n_fft / CFG.sample_rate)]))


def test_worker_pool_matches_in_process(tmp_path):
    paths = _mixed_paths(tmp_path) * 2
    serial = list(extract_features(paths, CFG, workers=0, batch_tracks=2))
    with FeatureExtractor(CFG, workers=2, batch_tracks=4) as fx:
        pooled = list(fx.extract(iter(paths)))  # an iterator: no len, progress total is None
    assert len(pooled) == len(serial) == 6
    for (i, p, a), (j, q, b) in zip(serial, pooled):
        assert (i, p) == (j, q)
        if isinstance(a, AudioError):
            assert isinstance(b, AudioError) and b.reason == a.reason
        else:
            np.testing.assert_array_equal(a, b)


def test_mp3_seek_reads_what_a_full_decode_reads(tmp_path):
    """libsndfile's MP3 seek yields silence until the bit reservoir refills: pre-roll fixes it."""
    from artdb.core.features.frontend.decode import _open

    sr = 44100
    path = write(tmp_path / "tonal.mp3", tone(1000.0, 6.0, sr), sr, "MP3", "MPEG_LAYER_III")
    full = sf.read(path, dtype="float32")[0].mean(axis=1)
    source = _open(str(path))
    try:
        for start in (22050, 100000, 123457, 200000):
            np.testing.assert_allclose(source.read(start, 20000), full[start : start + 20000], atol=1e-6)
    finally:
        source.close()


def _crash_on_bad(path, config):
    """Stands for libsndfile segfaulting on a malformed file inside a worker."""
    import os

    from artdb.core.features.frontend.decode import decode_task

    if os.path.basename(path) == "crash.wav":
        os._exit(139)
    return decode_task(path, config)


def test_worker_crash_costs_only_that_file(tmp_path, monkeypatch):
    monkeypatch.setattr("artdb.core.features.frontend.pipeline.decode_task", _crash_on_bad)
    sr = 22050
    good = [write(tmp_path / f"ok{i}.wav", tone(400.0 + 100 * i, 3.0, sr), sr) for i in range(6)]
    (tmp_path / "second").mkdir()
    crash = [
        write(tmp_path / "crash.wav", tone(300.0, 3.0, sr), sr),
        write(tmp_path / "second" / "crash.wav", tone(300.0, 3.0, sr), sr),
    ]
    paths = good[:2] + [crash[0]] + good[2:5] + [crash[1]] + good[5:]
    results = list(extract_features(paths, CFG, workers=2, batch_tracks=2))
    assert [r[0] for r in results] == list(range(8))
    for n, (_, path, result) in enumerate(results):
        if n in (2, 6):
            assert isinstance(result, AudioError) and "decoder crashed" in result.reason
        else:
            assert isinstance(result, np.ndarray), (path, result)


class _FakeReader:
    """Stands in for an audioread backend (e.g. ffmpeg) decoding a format libsndfile lacks."""

    channels, samplerate = 2, 22050

    def __init__(self, pcm: np.ndarray):
        self._pcm = pcm

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def __iter__(self):
        for i in range(0, len(self._pcm), 4096):
            yield self._pcm[i : i + 4096].tobytes()


def test_fallback_decoder_used_when_libsndfile_cannot_read(tmp_path, monkeypatch):
    import audioread

    sr = _FakeReader.samplerate
    mono = np.concatenate([np.zeros(2 * sr, np.float32), tone(800.0, 5.0, sr)])
    pcm = (np.repeat(mono[:, None], 2, axis=1) * 32767).astype("<i2").reshape(-1)
    path = tmp_path / "song.m4a"
    path.write_bytes(b"\x00\x00\x00\x20ftypM4A not for libsndfile")
    monkeypatch.setattr(audioread, "audio_open", lambda p: _FakeReader(pcm))
    x = decode_excerpts(path, CFG)
    assert x.shape == (3, CFG.excerpt_samples)
    for excerpt in x:
        assert abs(peak_hz(excerpt, CFG.sample_rate) - 800.0) <= 2.0
        assert silent_blocks(excerpt, CFG.sample_rate) == 0

    def no_backend(p):
        raise audioread.NoBackendError()

    monkeypatch.setattr(audioread, "audio_open", no_backend)
    with pytest.raises(AudioError, match="no fallback decoder is available.*install ffmpeg"):
        decode_excerpts(path, CFG)
