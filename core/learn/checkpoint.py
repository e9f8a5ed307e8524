"""Model checkpoints: weights + every config needed to use them, written atomically.

A checkpoint is a ``torch.save`` of plain values only (tensors, dicts, lists, str, numbers), so
:func:`load_checkpoint` can use ``torch.load(weights_only=True)``. It holds the state dict, the
model config, the training config, the front-end config (dict + fingerprint), the training summary
and metrics, and the artdb version. :func:`save_checkpoint` returns the file's sha256.

Loading with ``expect_frontend`` refuses (``ModelMismatchError``) a checkpoint trained on features
from a different front-end, naming the differing settings.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from artdb.core import __version__
from artdb.core.config import Paths
from artdb.core.errors import ArtdbError, ModelMismatchError
from artdb.core.faults import kill_point
from artdb.core.learn.backbone import ARCH as BACKBONE_ARCH, BackboneHead
from artdb.core.learn.networks import ArtistNet, build_model
from artdb.indexer.persist import temporary_path

# How torch.load(weights_only=True) names what it refused ("unsupported GLOBAL posix.system").
_UNSUPPORTED_GLOBAL = re.compile(r"unsupported GLOBAL ([\w.]+)", re.IGNORECASE)
_TORCH_ADVICE = re.compile(r"weights.only|check the documentation|please file an issue", re.IGNORECASE)

__all__ = ["Checkpoint", "checkpoint_file", "file_sha256", "load_checkpoint", "save_checkpoint"]

FORMAT = "artdb-model"
FORMAT_VERSION = 1


@dataclass
class Checkpoint:
    """A loaded checkpoint; ``model`` is rebuilt and in eval mode on ``map_location``."""

    model: ArtistNet | BackboneHead
    model_config: dict
    train_config: dict
    frontend: dict | None
    frontend_fingerprint: str | None
    summary: dict
    metrics: dict
    artdb_version: str
    sha256: str
    path: Path


def _frontend_parts(frontend: Any) -> tuple[dict | None, str | None]:
    """``(dict, fingerprint)`` from a FrontendConfig-like object (to_dict/fingerprint) or a dict."""
    if frontend is None:
        return None, None
    if isinstance(frontend, dict):
        d = dict(frontend)
    elif hasattr(frontend, "to_dict"):
        d = dict(frontend.to_dict())
    else:
        raise ArtdbError(f"front-end config must be a dict or have to_dict(), got {type(frontend)!r}")
    if hasattr(frontend, "fingerprint"):
        fp = str(frontend.fingerprint())
    else:
        fp = hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]
    # JSON round trip: plain types only (tuples -> lists), as weights_only loading needs
    return json.loads(json.dumps(d, default=str)), fp


def _plain(x: Any) -> Any:
    return json.loads(json.dumps(x, default=str)) if x is not None else {}


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_checkpoint(
    path: str | os.PathLike,
    model_or_result: Any,
    *,
    frontend: Any = None,
    train_config: dict | None = None,
    summary: dict | None = None,
    metrics: dict | None = None,
) -> str:
    """Write a checkpoint atomically (temp file + ``os.replace``); returns its sha256 (hex).

    Args:
        model_or_result: a model (:class:`ArtistNet`, :class:`BackboneHead`), or a ``TrainResult``
            (then its model, training config, summary and validation history are stored unless
            given explicitly).
        frontend: the ``FrontendConfig`` (or its ``to_dict()``) the features were made with.
    """
    if isinstance(model_or_result, nn.Module):
        model = model_or_result
    else:  # TrainResult (duck-typed to avoid an import cycle)
        res = model_or_result
        model = res.model
        train_config = train_config if train_config is not None else res.train_config
        summary = summary if summary is not None else res.summary()
        if metrics is None:
            metrics = {
                "val": [h for h in res.history if h.get("event") == "val"],
                "class_ids": list(res.class_ids),
                "val_artists": list(res.val_artists),
            }
    fe_dict, fe_fp = _frontend_parts(frontend)
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "artdb_version": str(__version__),
        "torch_version": str(torch.__version__),
        "model_config": _plain(model.config()),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "train_config": _plain(train_config),
        "frontend": fe_dict,
        "frontend_fingerprint": fe_fp,
        "summary": _plain(summary),
        "metrics": _plain(metrics),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # the temporary name records this process: a killed training's file is removed at next start
    tmp = temporary_path(path)
    try:
        with open(tmp, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        digest = file_sha256(tmp)
        kill_point("before checkpoint rename")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return digest


def _torch_reason(exc: Exception) -> str:
    """torch.load's reason on one line, without its advice (which suggests weights_only=False)."""
    for line in str(exc).splitlines():
        line = line.strip().removeprefix("WeightsUnpickler error:").strip()
        if line and not _TORCH_ADVICE.search(line):
            return line
    return type(exc).__name__


def checkpoint_file(stored: str, paths: Paths | None = None) -> Path:
    """The checkpoint file a model row names (``Model.checkpoint_path``).

    Stored relative to the data directory (``paths``; default: the current one, ``ARTDB_HOME``)
    since artdb wrote it there; an absolute path (rows written before, or a checkpoint outside any
    home) is used as it is, except when it names another home's ``models/NAME`` and this home has
    ``models/NAME``: a copied or moved home uses its own copy (the row's sha256 still checks it on
    load).
    """
    path = Path(stored)
    if not path.is_absolute():
        return (paths or Paths.from_home()).resolve(path)
    if paths is not None and path.parent.name == paths.models.name:
        own = paths.models / path.name
        if own != path and own.is_file():
            return own
    return path


def load_checkpoint(
    path: str | os.PathLike,
    expect_frontend: Any = None,
    map_location: str = "cpu",
    expect_sha256: str | None = None,
) -> Checkpoint:
    """Load and rebuild a checkpoint (``torch.load(weights_only=True)``).

    Raises:
        ArtdbError: unreadable file, not an artdb checkpoint, or sha256 differs from ``expect_sha256``.
        ModelMismatchError: ``expect_frontend`` (FrontendConfig or dict) differs from the stored one.
    """
    path = Path(path)
    if not path.is_file():
        raise ArtdbError(f"{path}: no such checkpoint")
    digest = file_sha256(path)
    if expect_sha256 is not None and digest != expect_sha256:
        raise ArtdbError(f"{path}: sha256 {digest} differs from the expected {expect_sha256}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch's message advises weights_only=False, i.e. running the file's code: never repeat it
        found = _UNSUPPORTED_GLOBAL.search(str(exc))
        if found:
            raise ArtdbError(
                f"{path}: refused: the checkpoint holds Python objects other than weights "
                f"({found.group(1)}), which could run code when loaded; artdb loads weights only — "
                "retrain the model, or use a checkpoint artdb wrote") from None
        raise ArtdbError(f"{path}: not a loadable checkpoint ({_torch_reason(exc)})") from None
    except Exception as exc:  # torch raises several types for a corrupt or foreign file
        raise ArtdbError(f"{path}: not a loadable checkpoint ({_torch_reason(exc)})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ArtdbError(f"{path}: not an artdb model checkpoint")
    if payload.get("format_version", 0) > FORMAT_VERSION:
        raise ArtdbError(f"{path}: checkpoint format {payload['format_version']} is newer than this artdb")
    if expect_frontend is not None:
        want, want_fp = _frontend_parts(expect_frontend)
        have = payload.get("frontend")
        if have is None:
            raise ModelMismatchError(f"{path}: the checkpoint records no front-end config to check against")
        if have != want:
            keys = sorted(set(have) | set(want))
            diffs = [f"{k}: model {have.get(k)!r} vs features {want.get(k)!r}"
                     for k in keys if have.get(k) != want.get(k)]
            raise ModelMismatchError(
                f"{path}: the model was trained on a different audio front-end "
                f"(fingerprint {payload.get('frontend_fingerprint')} vs {want_fp}): " + "; ".join(diffs)
            )
    config = payload["model_config"]
    model = BackboneHead.from_config(config) if config.get("arch") == BACKBONE_ARCH else build_model(config)
    model.load_state_dict(payload["state_dict"])
    model.to(map_location).eval()
    return Checkpoint(
        model=model,
        model_config=payload["model_config"],
        train_config=payload.get("train_config") or {},
        frontend=payload.get("frontend"),
        frontend_fingerprint=payload.get("frontend_fingerprint"),
        summary=payload.get("summary") or {},
        metrics=payload.get("metrics") or {},
        artdb_version=payload.get("artdb_version", "unknown"),
        sha256=digest,
        path=path,
    )
