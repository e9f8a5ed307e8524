"""Metadata ingest throughput (tracks/s) on SQLite and PostgreSQL, JSON out.

Generates N small tagged audio files (default 10,000; FLAC/WAV/OGG/MP3 mix), then times
``artdb.core.ingest.ingest`` without feature extraction (this bench measures the catalog side):

- ``first``: a first ingest of the folder (batched transactions, worker pool);
- ``rerun``: the same folder again (every file unchanged: stat only, nothing read);
- ``naive``: the peer, one file per transaction in the calling process, on a 1,000-file sample.

Usage: python bench/ingest_metadata.py [--n 10000] [--pg URL] [--out bench/results/ingest_metadata.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from audiofiles import write_audio  # noqa: E402

from artdb.core.ingest import IngestOptions, ingest  # noqa: E402
from artdb.db.session import Catalog  # noqa: E402

EXTS = [".flac", ".wav", ".ogg", ".mp3"]


def make_files(root: Path, n: int, seed0: int = 0) -> None:
    for i in range(n):
        artist = f"Artist {i // 40:04d}"
        album = f"Album {i // 10:05d}"
        write_audio(root / artist / album / f"{i:06d}{EXTS[i % 4]}", seconds=0.25, sr=16000,
                    freq=100 + (i % 500), seed=seed0 + i, artist=artist, album=album, title=f"Track {i}",
                    genre=f"Genre {i % 7}", date=str(1990 + i % 30), isrc=f"XX0000{i:07d}"[:12],
                    tracknumber=str(i % 10 + 1))


def time_ingest(url: str, root: Path, options: IngestOptions) -> dict:
    cat = Catalog.open(url)
    t = time.perf_counter()
    summary = ingest(cat, root, options)
    dt = time.perf_counter() - t
    cat.close()
    return {"files": summary.files, "seconds": round(dt, 3), "tracks_per_s": round(summary.files / dt, 1),
            "counts": summary.counts}


def pg_schema_url(base: str):
    from sqlalchemy import create_engine, text

    schema = f"artdb_bench_{uuid.uuid4().hex[:8]}"
    engine = create_engine(base)
    with engine.begin() as c:
        c.execute(text(f'CREATE SCHEMA "{schema}"'))

    def drop():
        with engine.begin() as c:
            c.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()

    return f"{base}?options=-csearch_path%3D{schema}", drop


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--naive-n", type=int, default=1_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    ap.add_argument("--out", default="bench/results/ingest_metadata.json")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        root, sample = tmp / "lib", tmp / "sample"
        t = time.perf_counter()
        make_files(root, args.n)
        make_files(sample, args.naive_n, seed0=10**6)
        gen_s = time.perf_counter() - t
        fast = IngestOptions(workers=args.workers, batch_size=256)
        naive = IngestOptions(workers=1, batch_size=1)
        results: dict = {}
        backends = {"sqlite": (f"sqlite:///{tmp / 'bench.sqlite'}", lambda: None)}
        try:
            backends["postgresql"] = pg_schema_url(args.pg)
        except Exception as exc:  # noqa: BLE001
            results["postgresql"] = {"skipped": f"no server at {args.pg}: {exc}"}
        for name, (url, cleanup) in backends.items():
            try:
                first = time_ingest(url, root, fast)
                rerun = time_ingest(url, root, fast)
                peer_url = url if name == "postgresql" else f"sqlite:///{tmp / 'naive.sqlite'}"
                peer = time_ingest(peer_url, sample, naive)
                results[name] = {
                    "first": first, "rerun": rerun, "naive_peer": peer,
                    "speedup_vs_naive": round(first["tracks_per_s"] / peer["tracks_per_s"], 2),
                }
            finally:
                cleanup()
    out = {
        "bench": "ingest_metadata", "n_files": args.n, "workers": args.workers,
        "file_generation_s": round(gen_s, 1), "cpu_count": os.cpu_count(),
        "python": platform.python_version(), "results": results,
        "note": "features off: catalog side only; naive peer = 1 file per transaction, in-process",
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
