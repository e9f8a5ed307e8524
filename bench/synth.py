"""Benchmarks of the catalog generator, JSON out.

    python bench/synth.py speed [--seconds 20] [--tracks 24]
        seconds of audio generated per wall second, one process (render + encode + tag + write)
    python bench/synth.py difficulty [--difficulty 0.7] [--seed 0] [--homonym-groups 12] ...
        generate a catalog and score the MFCC baseline on its homonym pages (ARI)
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from dataclasses import replace

import click

from artdb.core.synth import SynthConfig, generate_catalog
from artdb.core.synth.catalog import run_job
from artdb.core.synth.difficulty import homonym_baseline
from artdb.core.synth.plan import plan_catalog


@click.group()
def main() -> None:
    pass


@main.command()
@click.option("--seconds", default=20.0, show_default=True)
@click.option("--tracks", default=24, show_default=True)
@click.option("--seed", default=0, show_default=True)
def speed(seconds: float, tracks: int, seed: int) -> None:
    """Single-process speed in x realtime over the first TRACKS tracks of a default plan."""
    config = SynthConfig(seconds=seconds, seed=seed)
    _, jobs = plan_catalog(config)
    jobs = jobs[:: max(1, len(jobs) // tracks)][:tracks]  # spread over artists and codecs
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        audio = sum(run_job(job, tmp)[1] for job in jobs)
        wall = time.perf_counter() - t0
    codecs = sorted({j.codec for j in jobs})
    json.dump({"bench": "synth.speed", "tracks": len(jobs), "audio_seconds": round(audio, 1),
               "wall_seconds": round(wall, 2), "x_realtime": round(audio / wall, 1),
               "codecs": codecs, "processes": 1}, sys.stdout, indent=2)
    sys.stdout.write("\n")


@main.command()
@click.option("--difficulty", default=0.7, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--artists", default=40, show_default=True)
@click.option("--homonym-groups", default=12, show_default=True)
@click.option("--synonym-pairs", default=2, show_default=True)
@click.option("--seconds", default=10.0, show_default=True)
@click.option("--out", default=None, help="Keep the catalog here (default: a temporary folder).")
def difficulty(difficulty: float, seed: int, artists: int, homonym_groups: int,
               synonym_pairs: int, seconds: float, out: str | None) -> None:
    """MFCC-baseline ARI on the homonym pages of a generated catalog."""
    config = replace(SynthConfig(), difficulty=difficulty, seed=seed, artists=artists,
                     homonym_groups=homonym_groups, synonym_pairs=synonym_pairs, seconds=seconds)
    with tempfile.TemporaryDirectory() as tmp:
        root = out or tmp
        t0 = time.perf_counter()
        truth = generate_catalog(root, config, overwrite=True)
        gen = time.perf_counter() - t0
        report = homonym_baseline(root, truth)
    json.dump({"bench": "synth.difficulty", "config": config.to_dict(),
               "generate_seconds": round(gen, 1), **report.to_dict()},
              sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
