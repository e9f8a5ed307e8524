"""Generate a catalog on disk: plan it, render and write each track (in a pool), write the truth."""

from __future__ import annotations

import os
from itertools import repeat
from pathlib import Path

from artdb.core.errors import ConfigError
from artdb.core.executor import make_executor
from artdb.core.progress import Progress, report
from artdb.core.synth.config import SynthConfig
from artdb.core.synth.encode import write_audio, write_tags
from artdb.core.synth.plan import TrackJob, plan_catalog
from artdb.core.synth.render import render_track
from artdb.core.synth.truth import TRUTH_FILE, CatalogTruth

STAGE = "synthesize"  # progress(STAGE, done, total)
POOL_MIN_TRACKS = 24  # below this a pool's start-up costs more than it saves


def run_job(job: TrackJob, out_dir: str) -> tuple[str, float]:
    """Render, encode and tag one track; returns (relative path, seconds of audio)."""
    path = Path(out_dir) / job.path
    path.parent.mkdir(parents=True, exist_ok=True)
    audio = render_track(job.artist, job.production, job.seconds, job.synth_rate,
                         job.sample_rate, job.seed)
    tmp = path.with_name(path.name + ".part")
    write_audio(tmp, audio, job.sample_rate, job.codec, job.quality)
    write_tags(tmp, job.codec, job.tags)
    os.replace(tmp, path)
    return job.path, len(audio) / job.sample_rate


def default_workers(n_jobs: int) -> int:
    if n_jobs < POOL_MIN_TRACKS:
        return 1
    return max(1, min(2, os.cpu_count() or 1))


def generate_catalog(out_dir: str | os.PathLike, config: SynthConfig | None = None,
                     progress: Progress | None = None, overwrite: bool = False) -> CatalogTruth:
    """Write a synthetic catalog under ``out_dir`` and its answer key ``out_dir/truth.json``.

    The result depends only on ``config`` (its seed included), not on ``config.workers``: each
    track is rendered from its own seed (see :func:`artdb.core.synth.plan.track_seed`).
    ``progress("synthesize", done, total)`` is called after each track. A non-empty ``out_dir`` is
    refused unless ``overwrite``.
    """
    config = (config or SynthConfig()).validate()
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out} exists and is not a folder")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ConfigError(f"{out} is not empty (pass overwrite=True / --force to write into it)")
    out.mkdir(parents=True, exist_ok=True)
    stale = out / TRUTH_FILE
    if stale.exists():
        stale.unlink()  # a truth.json must never describe a half-written catalog

    truth, jobs = plan_catalog(config)
    workers = config.workers if config.workers is not None else default_workers(len(jobs))
    total = len(jobs)
    report(progress, STAGE, 0, total)
    durations: dict[str, float] = {}
    # spawn (make_executor's default): no fork of a parent that may hold threads (torch, BLAS).
    # Workers keep their C-level stderr (initializer=None), as they always have.
    with make_executor(workers, initializer=None) as ex:
        for i, (rel, dur) in enumerate(ex.map(run_job, jobs, repeat(str(out)), chunksize=2), 1):
            durations[rel] = dur
            report(progress, STAGE, i, total)
    for track in truth.tracks:
        track.duration = round(durations[track.path], 4)
    truth.write(out)
    return truth
