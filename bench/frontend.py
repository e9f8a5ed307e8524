"""Benchmark the audio front-end against a naive peer, in × realtime of the tracks' full duration.

    .venv/bin/python bench/frontend.py [--tracks 8] [--workers 2] [--data-dir DIR] [--out FILE]

The bench writes its own test tracks (3–5 minutes; FLAC, OGG Vorbis, MP3 and WAV; 44.1 and
48 kHz stereo; silence at the start and the end) with numpy + soundfile, cached in ``--data-dir``.

Measured, each as wall time on this machine with ``--workers`` processes:

- ``ours.decode``: excerpt decoding (probes + k seeks + resample) in the worker pool.
- ``ours.logmel``: the batched torch log-mel of those excerpts in the calling process.
- ``ours.end_to_end``: ``FeatureExtractor.extract`` (both overlapped), pool already started;
  ``ours.end_to_end_cold`` adds starting the pool (``extract_features`` as ingest calls it).
- ``peer``: per file ``librosa.load(sr=16000)`` + ``librosa.feature.melspectrogram`` of the whole
  track + ``power_to_db``, same STFT/mel parameters, in a pool of the same size; its decode and
  log-mel seconds are summed over workers (CPU-seconds, hence "per core").

Both sides are warmed up before timing: the peer's workers run it once on a short file in their
initializer (numba compilation, ~20 s), and our pool and torch kernels run once on a track.
× realtime = total track duration / wall seconds; "per core" divides by the number of workers;
"per CPU second" divides the duration by the CPU seconds the processes used (from /proc), which
holds up when other jobs share the cores.
Output: one JSON object on stdout (and in ``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np
import soundfile as sf

from artdb.core.executor import process_pool
from artdb.core.features.frontend import FeatureExtractor, FrontendConfig, LogMel, extract_features

TRACK_PLAN = [  # (seconds, extension, format, subtype, sample rate)
    (185, "flac", "FLAC", "PCM_16", 44100),
    (240, "ogg", "OGG", "VORBIS", 44100),
    (210, "mp3", "MP3", "MPEG_LAYER_III", 44100),
    (300, "wav", "WAV", "PCM_16", 48000),
    (270, "flac", "FLAC", "PCM_24", 48000),
    (195, "ogg", "OGG", "VORBIS", 48000),
    (255, "mp3", "MP3", "MPEG_LAYER_III", 48000),
    (225, "wav", "WAV", "PCM_16", 44100),
]


def synth_track(seconds: int, sr: int, seed: int) -> np.ndarray:
    """Stereo 'music': a chord progression of harmonic notes, noise hits, silence at both ends."""
    rng = np.random.default_rng(seed)
    n = seconds * sr
    t = np.arange(n, dtype=np.float64) / sr
    out = np.zeros(n)
    note_len = sr // 2
    for voice in range(3):
        pitches = 110.0 * 2 ** (rng.integers(0, 36, size=n // note_len + 1) / 12)
        f = np.repeat(pitches, note_len)[:n]
        phase = 2 * np.pi * np.cumsum(f) / sr
        for h in range(1, 5):
            out += (0.12 / (h * (voice + 1))) * np.sin(h * phase)
    hits = (rng.random(n // (sr // 4) + 1) < 0.5).repeat(sr // 4)[:n]
    env = np.exp(-((t * 4) % 1.0) * 12)
    out += 0.08 * rng.standard_normal(n) * env * hits
    lead, tail = int(rng.uniform(2, 6) * sr), int(rng.uniform(3, 8) * sr)
    out[:lead] = 0
    out[n - tail :] = 0
    right = np.roll(out, 37) * 0.9
    return np.stack([out, right], axis=1).astype(np.float32)


def make_tracks(data_dir: Path, count: int) -> list[tuple[Path, float]]:
    data_dir.mkdir(parents=True, exist_ok=True)
    tracks = []
    for i in range(count):
        seconds, ext, fmt, subtype, sr = TRACK_PLAN[i % len(TRACK_PLAN)]
        path = data_dir / f"track{i:02d}-{sr // 1000}k.{ext}"
        if not path.exists():
            audio = synth_track(seconds, sr, seed=i)
            tmp = path.with_name("tmp-" + path.name)
            # 1 s blocks: libsndfile 1.2 crashes writing long Vorbis blocks in one call.
            with sf.SoundFile(tmp, "w", sr, 2, subtype=subtype, format=fmt) as f:
                for s in range(0, len(audio), sr):
                    f.write(audio[s : s + sr])
            tmp.rename(path)
        info = sf.info(str(path))
        tracks.append((path, info.frames / info.samplerate))
    return tracks


# -- the naive peer ----------------------------------------------------------------------------

_PEER_CFG: FrontendConfig | None = None


def _peer_init(cfg_dict: dict, warm_path: str) -> None:
    global _PEER_CFG
    _PEER_CFG = FrontendConfig.from_dict(cfg_dict)
    _peer_one(warm_path)  # numba/librosa compilation happens here, before timing


def _peer_one(path: str) -> tuple[float, float]:
    import librosa

    cfg = _PEER_CFG
    t0 = time.process_time()
    y, _ = librosa.load(path, sr=cfg.sample_rate, mono=True)
    t1 = time.process_time()
    mel = librosa.feature.melspectrogram(
        y=y, sr=cfg.sample_rate, n_fft=cfg.n_fft, hop_length=cfg.hop_length,
        n_mels=cfg.n_mels, fmin=cfg.fmin, fmax=cfg.fmax,
    )
    librosa.power_to_db(mel, ref=1.0, amin=cfg.amin, top_db=None).astype(np.float16)
    return t1 - t0, time.process_time() - t1


def _ready(_: int) -> int:
    return os.getpid()


def _cpu_seconds(pids) -> float:
    """user + system CPU seconds of processes (Linux /proc), for a contention-proof figure."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return total / os.sysconf("SC_CLK_TCK")


def run_peer(paths: list[str], cfg: FrontendConfig, workers: int, warm_path: str) -> dict:
    with process_pool(workers, start_method="spawn",
                      initializer=partial(_peer_init, cfg.to_dict(), warm_path)) as pool:
        list(pool.map(_ready, range(workers * 2)))  # every worker has run its warm-up
        pids = list(pool._processes)
        c0, t0 = _cpu_seconds(pids), time.perf_counter()
        phases = list(pool.map(_peer_one, paths))
        wall = time.perf_counter() - t0
        cpu = _cpu_seconds(pids) - c0
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "decode_cpu_s": sum(p[0] for p in phases),
        "logmel_cpu_s": sum(p[1] for p in phases),
    }


# -- ours --------------------------------------------------------------------------------------


def run_ours(paths: list[str], cfg: FrontendConfig, workers: int, warm_path: str) -> dict:
    with FeatureExtractor(cfg, workers=workers) as fx:
        fx.start()
        list(fx.extract([warm_path]))  # warm: torch kernels, soxr, page cache
        t0 = time.perf_counter()
        decoded = [r[2][1] for r in fx.decode(paths) if r[2][0] == "ok"]
        t_decode = time.perf_counter() - t0
        audio = np.stack(decoded)
        transform = LogMel(cfg)
        t0 = time.perf_counter()
        for start in range(0, len(audio), fx.batch_tracks):
            transform(audio[start : start + fx.batch_tracks]).to(dtype=__import__("torch").float16)
        t_logmel = time.perf_counter() - t0
        pids = [os.getpid(), *fx._executor()._processes]
        c0, t0 = _cpu_seconds(pids), time.perf_counter()
        results = list(fx.extract(paths))
        t_e2e = time.perf_counter() - t0
        cpu_e2e = _cpu_seconds(pids) - c0
    errors = [str(r[2]) for r in results if not isinstance(r[2], np.ndarray)]
    t0 = time.perf_counter()
    cold = list(extract_features(paths, cfg, workers=workers))
    t_cold = time.perf_counter() - t0
    assert len(cold) == len(paths)
    return {
        "decode_wall_s": t_decode,
        "logmel_wall_s": t_logmel,
        "end_to_end_wall_s": t_e2e,
        "end_to_end_cpu_s": cpu_e2e,
        "end_to_end_cold_wall_s": t_cold,
        "errors": errors,
        "decoded_tracks": len(decoded),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2, help="best of N runs of each side")
    parser.add_argument("--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "artdb-bench-audio")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)

    cfg = FrontendConfig()
    tracks = make_tracks(args.data_dir, args.tracks)
    paths = [str(p) for p, _ in tracks]
    total_s = sum(d for _, d in tracks)
    warm = make_tracks(args.data_dir / "warm", 1)[0][0]
    load_before = os.getloadavg()

    ours = min((run_ours(paths, cfg, args.workers, str(warm)) for _ in range(args.repeats)),
               key=lambda r: r["end_to_end_wall_s"])
    peer = min((run_peer(paths, cfg, args.workers, str(warm)) for _ in range(args.repeats)),
               key=lambda r: r["wall_s"])

    def xrt(seconds: float) -> float:
        return round(total_s / seconds, 1)

    w = args.workers
    report = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
            "note": "machine shared with other jobs: figures are lower bounds",
        },
        "workers": w,
        "tracks": len(tracks),
        "formats": sorted({p.suffix[1:] for p, _ in tracks}),
        "audio_seconds": round(total_s, 1),
        "config": {**cfg.to_dict(), "fingerprint": cfg.fingerprint()},
        "decoded_seconds_per_track": cfg.excerpts_per_track * cfg.excerpt_seconds,
        "bytes_per_track": cfg.bytes_per_track,
        "warmup": "both sides run once on a warm-up track before timing (peer: in each worker)",
        "ours": {
            "decode_xrt": xrt(ours["decode_wall_s"]),
            "logmel_xrt": xrt(ours["logmel_wall_s"]),
            "end_to_end_xrt": xrt(ours["end_to_end_wall_s"]),
            "end_to_end_xrt_per_core": round(total_s / ours["end_to_end_wall_s"] / w, 1),
            "end_to_end_xrt_per_cpu_second": xrt(ours["end_to_end_cpu_s"]),
            "end_to_end_cold_xrt": xrt(ours["end_to_end_cold_wall_s"]),
            **{k: round(v, 4) if isinstance(v, float) else v for k, v in ours.items()},
        },
        "peer": {
            "end_to_end_xrt": xrt(peer["wall_s"]),
            "end_to_end_xrt_per_core": round(total_s / peer["wall_s"] / w, 1),
            "end_to_end_xrt_per_cpu_second": xrt(peer["cpu_s"]),
            "decode_xrt_per_core": xrt(peer["decode_cpu_s"]),
            "logmel_xrt_per_core": xrt(peer["logmel_cpu_s"]),
            **{k: round(v, 4) for k, v in peer.items()},
        },
        "speedup_end_to_end": round(peer["wall_s"] / ours["end_to_end_wall_s"], 2),
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
