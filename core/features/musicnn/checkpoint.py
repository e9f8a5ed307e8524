"""Read TensorFlow v2 checkpoint bundles with numpy only (no TensorFlow, no protobuf).

A bundle ``PREFIX`` is two files: ``PREFIX.index``, a LevelDB-format sorted table (SSTable) whose
keys are variable names and whose values are serialized ``BundleEntryProto`` messages, and
``PREFIX.data-00000-of-0000N``, the raw little-endian tensor bytes that those entries point into.
The empty key holds a ``BundleHeaderProto`` (number of shards, endianness) and is skipped here.

Formats implemented by hand (the few parts a checkpoint uses):

* SSTable: 48-byte footer (metaindex and index block handles, magic ``0xdb4775248b80fb57``),
  blocks of prefix-compressed entries with a restart array, a 5-byte trailer per block
  (compression type, masked CRC-32C). Blocks may be raw or snappy-compressed.
* protobuf wire format: varints, fixed32/64 and length-delimited fields.

    tensors = read_checkpoint("…/musicnn/MSD_musicnn/")      # {name: np.ndarray}
    list_tensors("…/musicnn/MSD_musicnn/")                    # {name: (np.dtype, shape)}
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from artdb.core.errors import ArtdbError

__all__ = ["CheckpointError", "TensorEntry", "read_checkpoint", "list_tensors", "read_index", "crc32c"]

_MAGIC = 0xDB4775248B80FB57
_FOOTER_LEN = 48
_BLOCK_TRAILER_LEN = 5
_NO_COMPRESSION, _SNAPPY = 0, 1

# tensorflow/core/framework/types.proto: DataType -> numpy dtype (little-endian).
_DTYPES = {
    1: np.dtype("<f4"), 2: np.dtype("<f8"), 3: np.dtype("<i4"), 4: np.dtype("u1"), 5: np.dtype("<i2"),
    6: np.dtype("i1"), 9: np.dtype("<i8"), 10: np.dtype("?"), 17: np.dtype("<u2"), 19: np.dtype("<f2"),
    22: np.dtype("<u4"), 23: np.dtype("<u8"),
}
_DTYPE_NAMES = {7: "string", 14: "bfloat16", 8: "complex64", 18: "complex128"}


class CheckpointError(ArtdbError):
    """A checkpoint bundle is missing, corrupt or uses a feature this reader does not support."""


@dataclass(frozen=True)
class TensorEntry:
    """One ``BundleEntryProto``: where a tensor lives in the data shard(s)."""

    name: str
    dtype: int  # TensorFlow DataType enum value
    shape: tuple[int, ...]
    shard_id: int
    offset: int
    size: int
    crc32c: int | None  # masked CRC-32C of the tensor bytes, as stored
    sliced: bool  # partitioned variable (slices in other entries): not supported

    @property
    def np_dtype(self) -> np.dtype:
        try:
            return _DTYPES[self.dtype]
        except KeyError:
            what = _DTYPE_NAMES.get(self.dtype, f"DataType {self.dtype}")
            raise CheckpointError(f"tensor {self.name!r}: dtype {what} is not supported") from None


# --------------------------------------------------------------------------- CRC-32C (Castagnoli)

def _crc32c_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC_TABLE = _crc32c_table()


def crc32c(data: bytes, crc: int = 0) -> int:
    """Plain (unmasked) CRC-32C. Pure python: fine for index blocks, slow (~1 s/MB) for big tensors."""
    crc ^= 0xFFFFFFFF
    table = _CRC_TABLE
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _unmask(masked: int) -> int:
    rot = (masked - 0xA282EAD8) & 0xFFFFFFFF
    return ((rot >> 17) | (rot << 15)) & 0xFFFFFFFF


# --------------------------------------------------------------------------- varints and protobuf

def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise CheckpointError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise CheckpointError("varint too long")


def _fields(buf: bytes):
    """Yield (field_number, wire_type, value) of a protobuf message; value is int or bytes."""
    pos = 0
    while pos < len(buf):
        tag, pos = _varint(buf, pos)
        field, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value = struct.unpack_from("<Q", buf, pos)[0]
            pos += 8
        elif wire == 2:
            n, pos = _varint(buf, pos)
            value = bytes(buf[pos:pos + n])
            pos += n
        elif wire == 5:
            value = struct.unpack_from("<I", buf, pos)[0]
            pos += 4
        else:
            raise CheckpointError(f"unsupported protobuf wire type {wire}")
        if pos > len(buf):
            raise CheckpointError("truncated protobuf message")
        yield field, wire, value


def _signed64(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def _parse_shape(buf: bytes) -> tuple[int, ...]:
    """TensorShapeProto: 2 = repeated Dim {1: size int64, 2: name}, 3 = unknown_rank."""
    dims = []
    for field, _, value in _fields(buf):
        if field == 2:
            size = 0
            for f, _, v in _fields(value):
                if f == 1:
                    size = _signed64(v)
            dims.append(size)
        elif field == 3 and value:
            raise CheckpointError("tensor of unknown rank")
    return tuple(dims)


def _parse_entry(name: str, buf: bytes) -> TensorEntry:
    """BundleEntryProto: 1 dtype, 2 shape, 3 shard_id, 4 offset, 5 size, 6 crc32c (fixed32), 7 slices."""
    dtype, shape, shard, offset, size, crc, sliced = 0, (), 0, 0, 0, None, False
    for field, _, value in _fields(buf):
        if field == 1:
            dtype = value
        elif field == 2:
            shape = _parse_shape(value)
        elif field == 3:
            shard = value
        elif field == 4:
            offset = value
        elif field == 5:
            size = value
        elif field == 6:
            crc = value
        elif field == 7:
            sliced = True
    return TensorEntry(name, dtype, shape, shard, offset, size, crc, sliced)


# --------------------------------------------------------------------------- snappy

def snappy_decompress(buf: bytes) -> bytes:
    """Decompress a raw snappy block (no framing): literals and back-references."""
    length, pos = _varint(buf, 0)
    out = bytearray()
    while pos < len(buf):
        tag = buf[pos]
        pos += 1
        kind = tag & 3
        if kind == 0:  # literal
            n = tag >> 2
            if n >= 60:
                extra = n - 59
                n = int.from_bytes(buf[pos:pos + extra], "little")
                pos += extra
            n += 1
            out += buf[pos:pos + n]
            pos += n
            continue
        if kind == 1:
            n = ((tag >> 2) & 7) + 4
            offset = ((tag >> 5) << 8) | buf[pos]
            pos += 1
        elif kind == 2:
            n = (tag >> 2) + 1
            offset = int.from_bytes(buf[pos:pos + 2], "little")
            pos += 2
        else:
            n = (tag >> 2) + 1
            offset = int.from_bytes(buf[pos:pos + 4], "little")
            pos += 4
        if offset == 0 or offset > len(out):
            raise CheckpointError("corrupt snappy block (bad back-reference)")
        start = len(out) - offset
        for i in range(n):  # byte by byte: the source may overlap what is being written
            out.append(out[start + i])
    if len(out) != length:
        raise CheckpointError(f"corrupt snappy block ({len(out)} bytes, header says {length})")
    return bytes(out)


# --------------------------------------------------------------------------- SSTable

def _read_block(data: bytes, offset: int, size: int, where: str) -> bytes:
    end = offset + size + _BLOCK_TRAILER_LEN
    if end > len(data):
        raise CheckpointError(f"{where}: block at {offset} runs past the end of the file")
    block = data[offset:offset + size]
    ctype = data[offset + size]
    stored = struct.unpack_from("<I", data, offset + size + 1)[0]
    if _unmask(stored) != crc32c(data[offset:offset + size + 1]):
        raise CheckpointError(f"{where}: block at {offset}: CRC-32C mismatch (corrupt file)")
    if ctype == _NO_COMPRESSION:
        return block
    if ctype == _SNAPPY:
        return snappy_decompress(block)
    raise CheckpointError(f"{where}: block at {offset}: unknown compression type {ctype}")


def _block_entries(block: bytes, where: str):
    """Yield (key, value) of one block: prefix-compressed keys, restart array at the end."""
    if len(block) < 4:
        raise CheckpointError(f"{where}: block too short")
    n_restarts = struct.unpack_from("<I", block, len(block) - 4)[0]
    limit = len(block) - 4 - 4 * n_restarts
    if limit < 0:
        raise CheckpointError(f"{where}: bad restart array")
    pos, key = 0, b""
    while pos < limit:
        shared, pos = _varint(block, pos)
        non_shared, pos = _varint(block, pos)
        vlen, pos = _varint(block, pos)
        if shared > len(key) or pos + non_shared + vlen > limit:
            raise CheckpointError(f"{where}: corrupt block entry")
        key = key[:shared] + block[pos:pos + non_shared]
        pos += non_shared
        yield key, block[pos:pos + vlen]
        pos += vlen


def _table_items(path: Path):
    data = path.read_bytes()
    if len(data) < _FOOTER_LEN:
        raise CheckpointError(f"{path}: too short to be a checkpoint index")
    footer = data[-_FOOTER_LEN:]
    if struct.unpack_from("<Q", footer, 40)[0] != _MAGIC:
        raise CheckpointError(f"{path}: not a TensorFlow checkpoint index (bad table magic)")
    _meta_off, pos = _varint(footer, 0)
    _meta_size, pos = _varint(footer, pos)
    index_off, pos = _varint(footer, pos)
    index_size, pos = _varint(footer, pos)
    index = _read_block(data, index_off, index_size, str(path))
    for _, handle in _block_entries(index, str(path)):
        off, p = _varint(handle, 0)
        size, _ = _varint(handle, p)
        yield from _block_entries(_read_block(data, off, size, str(path)), str(path))


def _index_path(prefix: str | os.PathLike) -> Path:
    prefix = os.fspath(prefix)
    path = Path(prefix + ".index")
    if not path.is_file():
        raise CheckpointError(f"no checkpoint index at {path}")
    return path


def read_index(prefix: str | os.PathLike) -> dict[str, TensorEntry]:
    """Every tensor entry of the bundle at ``prefix`` (``prefix + '.index'``), header key skipped."""
    path = _index_path(prefix)
    entries = {}
    for key, value in _table_items(path):
        if key == b"":  # BundleHeaderProto: 1 num_shards, 2 endianness (0 little), 3 version
            for field, _, v in _fields(value):
                if field == 2 and v != 0:
                    raise CheckpointError(f"{path}: big-endian checkpoints are not supported")
            continue
        name = key.decode("utf-8")
        entries[name] = _parse_entry(name, value)
    return entries


def list_tensors(prefix: str | os.PathLike) -> dict[str, tuple[np.dtype | str, tuple[int, ...]]]:
    """``{name: (dtype, shape)}``; dtype is a numpy dtype, or TensorFlow's name where numpy has none."""
    out = {}
    for name, e in read_index(prefix).items():
        dt = _DTYPES[e.dtype] if e.dtype in _DTYPES else _DTYPE_NAMES.get(e.dtype, f"DataType {e.dtype}")
        out[name] = (dt, e.shape)
    return out


def read_checkpoint(prefix: str | os.PathLike, names=None, *, verify: bool = False) -> dict[str, np.ndarray]:
    """Load tensors of the bundle at ``prefix`` as numpy arrays (all of them, or those in ``names``).

    ``verify=True`` also checks each tensor's CRC-32C (pure python, about a second per MB). The
    index blocks' checksums are always checked.
    """
    entries = read_index(prefix)
    if names is not None:
        missing = [n for n in names if n not in entries]
        if missing:
            raise CheckpointError(f"{os.fspath(prefix)}: no tensor named {', '.join(map(repr, missing))}")
        entries = {n: entries[n] for n in names}
    n_shards = 1
    for key, value in _table_items(_index_path(prefix)):
        if key == b"":
            for field, _, v in _fields(value):
                if field == 1:
                    n_shards = v
        break
    shards: dict[int, bytes] = {}
    out = {}
    for name, e in entries.items():
        if e.sliced:
            raise CheckpointError(f"tensor {name!r} is partitioned (slices); not supported")
        dtype = e.np_dtype
        if e.shard_id not in shards:
            shard = Path(f"{os.fspath(prefix)}.data-{e.shard_id:05d}-of-{n_shards:05d}")
            if not shard.is_file():
                raise CheckpointError(f"missing checkpoint data file {shard}")
            shards[e.shard_id] = shard.read_bytes()
        raw = shards[e.shard_id][e.offset:e.offset + e.size]
        count = int(np.prod(e.shape, dtype=np.int64)) if e.shape else 1
        if len(raw) != e.size or e.size != count * dtype.itemsize:
            raise CheckpointError(
                f"tensor {name!r}: {e.size} bytes at offset {e.offset} do not hold {e.shape} of {dtype}")
        if verify and e.crc32c is not None and _unmask(e.crc32c) != crc32c(raw):
            raise CheckpointError(f"tensor {name!r}: CRC-32C mismatch (corrupt data file)")
        out[name] = np.frombuffer(raw, dtype=dtype).reshape(e.shape).copy()
    return out
