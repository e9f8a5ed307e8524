"""Atomic save and verified load of an index file plus its JSON sidecar.

Layout: ``<path>`` (a FAISS index file, whatever the backend) and ``<path>.json``, the sidecar::

    {"format": "artdb-vector-index/1", "backend": "faiss", "name": "track", "model": "m-2024",
     "dim": 256, "metric": "cosine", "count": 123, "factory": "IVF4096,SQ8",
     "params": {"nprobe": 16}, "recall": 0.97, "checksum": "sha256:…", "file_bytes": 456,
     "catalog_revision": "…", "created_at": "…", "faiss_version": "1.15.1"}

Save: write each file to a temporary name in the same directory, fsync it, rename it over the
target (index first, then sidecar), fsync the directory. A crash between the two renames leaves a
new index with the old sidecar: the checksum then disagrees and ``load`` refuses it as corrupt —
the caller (``core``) rebuilds from the catalog. ``catalog_revision`` lets ``core`` tell an index
that lags the catalog.

Temporary names say which process wrote them (:func:`temporary_path`: ``.<name>.<pid>@<host>.<random>.tmp``)
so that the temporary files of a killed writer can be told from those of a live one and removed
(:func:`temporary_owner`). ``save_index(..., step=f)`` calls ``f("before index rename")`` and
``f("between index and sidecar")`` at those two moments (the fault suite's kill points).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import re
import socket
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from artdb.indexer.errors import IndexCorruptError, IndexMismatchError

FORMAT = "artdb-vector-index/1"
SIDECAR_SUFFIX = ".json"
_CHUNK = 1 << 22


@dataclass
class IndexInfo:
    """The sidecar's content: the evidence that travels with an index file."""

    backend: str
    dim: int
    count: int
    factory: str
    checksum: str
    file_bytes: int
    metric: str = "cosine"
    name: str | None = None
    model: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    recall: float | None = None
    catalog_revision: str | None = None
    created_at: str = ""
    faiss_version: str = ""
    format: str = FORMAT

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True, ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IndexInfo:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


def sidecar_path(path: str | os.PathLike) -> Path:
    path = Path(path)
    return path.with_name(path.name + SIDECAR_SUFFIX)


def file_checksum(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_TMP_OWNER = re.compile(r"^\..+\.(?P<pid>\d+)@(?P<host>[A-Za-z0-9.-]+)\.[A-Za-z0-9_]+\.tmp$")


def temporary_path(path: str | os.PathLike) -> Path:
    """A new, empty temporary file beside ``path`` whose name records this process (pid, host)."""
    path = Path(path)
    host = re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname()) or "localhost"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}@{host}.", suffix=".tmp",
                               dir=path.parent)
    os.close(fd)
    return Path(tmp)


def temporary_owner(path: str | os.PathLike) -> tuple[str, int] | None:
    """``(host, pid)`` of the process that made a :func:`temporary_path`; None for other names."""
    match = _TMP_OWNER.match(Path(path).name)
    return (match["host"], int(match["pid"])) if match else None


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def save_index(index: Any, path: Path, step: Callable[[str], None] | None = None) -> Path:
    """Write ``index`` (a :class:`~artdb.indexer.base.VectorIndex`) and its sidecar atomically;
    ``step`` hears the moments between the writes (see the module doc)."""
    import faiss

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    step = step or (lambda _name: None)
    tmp_index = temporary_path(path)
    tmp_side = None
    try:
        index._write(tmp_index)
        _fsync_file(tmp_index)
        info = IndexInfo(
            backend=index.backend,
            dim=index.dim,
            count=index.ntotal,
            factory=index.factory,
            checksum=file_checksum(tmp_index),
            file_bytes=tmp_index.stat().st_size,
            metric=index.metric,
            name=index.name,
            model=index.model,
            params=dict(index.params),
            recall=index.recall,
            catalog_revision=index.catalog_revision,
            created_at=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            faiss_version=faiss.__version__,
        )
        tmp_side = temporary_path(path)
        with open(tmp_side, "w", encoding="utf-8") as f:
            f.write(info.to_json())
            f.flush()
            os.fsync(f.fileno())
        step("before index rename")
        os.replace(tmp_index, path)
        tmp_index = None
        step("between index and sidecar")
        os.replace(tmp_side, sidecar_path(path))
        tmp_side = None
        _fsync_dir(path.parent)
    finally:
        for tmp in (tmp_index, tmp_side):
            if tmp is not None and tmp.exists():
                tmp.unlink()
    return path


def read_sidecar(path: str | os.PathLike) -> IndexInfo:
    """The sidecar of the index at ``path``, without opening the index (cheap)."""
    side = sidecar_path(path)
    try:
        data = json.loads(side.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise IndexCorruptError(f"{path}: sidecar {side.name} is missing") from None
    except (OSError, ValueError) as exc:
        raise IndexCorruptError(f"{side}: unreadable sidecar ({exc})") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        fmt = data.get("format") if isinstance(data, dict) else None
        raise IndexCorruptError(
            f"{side}: not an artdb index sidecar (format {fmt!r}, expected {FORMAT!r})"
        )
    try:
        return IndexInfo.from_dict(data)
    except TypeError as exc:
        raise IndexCorruptError(f"{side}: incomplete sidecar ({exc})") from exc


def read_index_file(
    path: Path,
    *,
    expect_model: str | None = None,
    expect_dim: int | None = None,
    expect_name: str | None = None,
    verify_checksum: bool = True,
) -> tuple[Any, IndexInfo]:
    """The raw FAISS index at ``path`` and its sidecar, verified against each other and the
    expectations; :meth:`artdb.indexer.base.VectorIndex.load` wraps it in a backend."""
    import faiss

    path = Path(path)
    if not path.exists():
        raise IndexCorruptError(f"{path}: index file is missing")
    info = read_sidecar(path)
    # expectations first: a wrong model is the more useful message even if the file is also stale
    for fld, found, expected in (
        ("model", info.model, expect_model),
        ("dimension", info.dim, expect_dim),
        ("name", info.name, expect_name),
    ):
        if expected is not None and found != expected:
            raise IndexMismatchError(path, fld, found, expected)
    size = path.stat().st_size
    if size != info.file_bytes:
        raise IndexCorruptError(
            f"{path}: file has {size} bytes but the sidecar records {info.file_bytes} (truncated or "
            "overwritten; rebuild the index)"
        )
    if verify_checksum:
        actual = file_checksum(path)
        if actual != info.checksum:
            raise IndexCorruptError(
                f"{path}: checksum {actual} does not match the sidecar's {info.checksum} "
                "(corrupt file or interrupted save; rebuild the index)"
            )
    try:
        raw = faiss.read_index(str(path))
    except RuntimeError as exc:
        raise IndexCorruptError(f"{path}: FAISS cannot read it ({str(exc).splitlines()[-1]})") from exc
    if raw.d != info.dim or raw.ntotal != info.count:
        raise IndexCorruptError(
            f"{path}: file holds {raw.ntotal} vectors of dimension {raw.d}, sidecar says "
            f"{info.count} of dimension {info.dim}"
        )
    return raw, info
