"""Pretrained peers run outside artdb's environment, producing embeddings files.

musicnn (MSD model, 200-d ``penultimate`` features, mean over 3-s patches) needs TensorFlow 2.15
and numpy < 2, so it runs in its own virtual environment (``bench/peers/musicnn_setup.sh``)
through ``bench/peers/musicnn_embed.py``; :func:`run_musicnn` calls it as a subprocess and returns
the path of the ``.npz`` it wrote, which :func:`artdb.core.export.read_embeddings` reads.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

from artdb.core.errors import ArtdbError, ConfigError
from artdb.core.processes import ask_kernel_to_kill_me_with_parent

PEERS = ("musicnn",)


class PeerError(ArtdbError):
    """The peer's script failed or is not installed."""


def default_script() -> Path:
    """``bench/peers/musicnn_embed.py`` of the source tree artdb runs from."""
    return Path(__file__).resolve().parents[2] / "bench" / "peers" / "musicnn_embed.py"


def run_musicnn(paths: list[str], python: str | os.PathLike, out: str | os.PathLike,
                script: str | os.PathLike | None = None, threads: int = 2,
                timeout: float | None = None) -> Path:
    """Embed ``paths`` with musicnn in the interpreter ``python``; returns the written ``.npz``."""
    python, script = Path(python), Path(script) if script else default_script()
    if not python.exists():
        raise ConfigError(f"{python}: no such interpreter; create the peer's venv with "
                          "bench/peers/musicnn_setup.sh")
    if not script.exists():
        raise ConfigError(f"{script}: musicnn peer script not found (run from a source checkout)")
    out = Path(out)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False, encoding="utf-8") as f:
        f.write("\n".join(str(p) for p in paths) + "\n")
        listing = f.name
    try:
        proc = subprocess.run([str(python), str(script), "--list", listing, "--out", str(out),
                               "--threads", str(threads)], capture_output=True, text=True,
                              timeout=timeout, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
                              # the peer (TensorFlow, minutes of work) dies with this process
                              preexec_fn=ask_kernel_to_kill_me_with_parent)
    finally:
        os.unlink(listing)
    if proc.returncode != 0 or not out.exists():
        tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
        raise PeerError(f"musicnn peer failed (exit {proc.returncode}): {tail}")
    return out
