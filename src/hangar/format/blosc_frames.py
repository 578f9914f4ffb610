"""Many blocks compressed by one Blosc call, then cut into one Blosc frame per block.

A Blosc (c-blosc 1.x) frame compresses its buffer in *internal blocks* of
``blocksize`` bytes, each on its own, and lists where each one starts. So a
run of our blocks (:mod:`hangar.format.chunks`) compressed as one frame, with
an internal block size that divides the block size, holds every block's
compressed bytes already; :func:`split_frame` cuts them out and gives each its
own header. The result is, byte for byte, what compressing each block alone
with that internal block size gives, so any Blosc decoder reads it and the
same rows encode to the same bytes however many blocks one call took. The one
exception is a block that does not compress at all: alone, c-blosc stores it
raw with a flag, while cut from a frame it keeps its streams stored raw; both
decode the same.

Why: one call per run of blocks releases the GIL once, not once per block, so
a with-block's pages compress on the helper thread while the caller's loop
goes on (:mod:`hangar.packing`), and there are fewer calls to pay for.

Frame layout (c-blosc 1.x, format version 2): a 16-byte header (version,
compressor version, flags, typesize, then ``nbytes``, ``blocksize`` and
``cbytes`` as little-endian int32), then unless the frame is stored raw
(flag 0x02) one int32 start offset per internal block, then the blocks. Each
block is one or more streams (an int32 length and the compressed bytes); a
block that does not fill ``blocksize`` (the last) is never split into
streams, which the dont-split flag (0x10) says for a frame of that block alone.
"""

from __future__ import annotations

import struct
import threading
from typing import Any

import numcodecs
import numpy as np

__all__ = ["FramedBlosc", "split_frame"]

_HEADER = struct.Struct("<BBBBiii")
_MEMCPYED = 0x02
_DONT_SPLIT = 0x10
_FORMAT_VERSION = 2  # c-blosc 1.x frames

#: per codec setting, block size and dtype: the internal block size and how many make a
#: block, or None (the setting is encoded a block per call)
_plans: dict[tuple[Any, ...], tuple[int, int] | None] = {}
_plans_lock = threading.Lock()


def split_frame(frame: bytes, block_nbytes: int, per_block: int) -> list[bytes]:
    """Cut a Blosc frame into one frame per ``block_nbytes`` raw bytes.

    ``frame``'s internal block size times ``per_block`` must be ``block_nbytes``.
    Raises ``ValueError`` for a frame this does not understand.
    """
    version, versionlz, flags, typesize, nbytes, blocksize, cbytes = _HEADER.unpack_from(frame)
    if version != _FORMAT_VERSION or cbytes != len(frame) or blocksize * per_block != block_nbytes:
        raise ValueError("not a c-blosc 1.x frame with the expected block size")
    view = memoryview(frame)
    out: list[bytes] = []
    if flags & _MEMCPYED:  # stored raw: a header, then the bytes
        for off in range(0, nbytes, block_nbytes):
            part = view[16 + off : 16 + min(off + block_nbytes, nbytes)]
            size = len(part)
            head = _HEADER.pack(version, versionlz, flags, typesize, size, min(blocksize, size),
                                16 + size)  # fmt: skip
            out.append(head + part)
        return out
    nblocks = -(-nbytes // blocksize)
    starts = struct.unpack_from(f"<{nblocks}i", frame, 16)
    # with threads, c-blosc stores blocks in the order they finish: a block ends where the
    # next stored one starts
    order = sorted(starts)
    ends = dict(zip(order, [*order[1:], cbytes], strict=True))
    for first in range(0, nblocks, per_block):
        last = min(first + per_block, nblocks)
        size = min(block_nbytes, nbytes - first * blocksize)
        bodies = [view[starts[i] : ends[starts[i]]] for i in range(first, last)]
        offsets = []
        at = 16 + 4 * (last - first)
        for body in bodies:
            offsets.append(at)
            at += len(body)
        f = flags | _DONT_SPLIT if size < blocksize else flags
        head = struct.pack(f"<BBBBiii{last - first}i", version, versionlz, f, typesize, size,
                           min(blocksize, size), at, *offsets)  # fmt: skip
        out.append(b"".join([head, *bodies]))
    return out


class FramedBlosc:
    """Encode runs of blocks with one Blosc call each (see the module's docs).

    Made by :meth:`for_codec`, which says None where this does not apply: a
    codec that is not Blosc, a compressor that splits blocks into streams
    (blosclz, lz4: their frames do not cut cleanly), an internal block size that
    cannot divide the block, or a c-blosc that does not keep to the layout above
    (checked once per setting, by decoding what it made).
    """

    __slots__ = ("_block_nbytes", "_blosc", "_internal", "_per_block")

    def __init__(self, blosc: Any, block_nbytes: int, internal: int, per_block: int) -> None:
        self._blosc = blosc
        self._block_nbytes = block_nbytes
        self._internal = internal
        self._per_block = per_block

    @classmethod
    def for_codec(cls, codec: Any, block_nbytes: int, dtype: np.dtype[Any]) -> FramedBlosc | None:
        """The framed encoder of blocks of ``block_nbytes`` raw bytes of ``dtype`` for the
        numcodecs ``codec``, or None."""
        if type(codec) is not numcodecs.Blosc or block_nbytes <= 0 or dtype.hasobject:
            return None
        key = (codec.cname, codec.clevel, codec.shuffle, codec.blocksize, block_nbytes, dtype.str)
        with _plans_lock:
            if key not in _plans:
                _plans[key] = _plan(codec, block_nbytes, dtype)
            plan = _plans[key]
        if plan is None:
            return None
        internal, per_block = plan
        return cls(_blosc_like(codec, internal), block_nbytes, internal, per_block)

    def encode(self, flat: np.ndarray[Any, Any]) -> list[bytes]:
        """Encode a 1-D contiguous array as blocks of ``block_nbytes`` raw bytes each (the
        last may be shorter), with one Blosc call."""
        frame = bytes(self._blosc.encode(flat))
        if flat.nbytes <= self._internal:
            return [frame]  # one internal block: c-blosc sized it to fit
        return split_frame(frame, self._block_nbytes, self._per_block)


def _blosc_like(codec: Any, internal: int) -> Any:
    return numcodecs.Blosc(cname=codec.cname, clevel=codec.clevel, shuffle=codec.shuffle,
                           blocksize=internal)  # fmt: skip


def _plan(codec: Any, block_nbytes: int, dtype: np.dtype[Any]) -> tuple[int, int] | None:
    """The internal block size for blocks of ``block_nbytes``, and how many make a block.

    Blosc's own choice for one block alone (or the codec's set size), rounded so
    that a whole number of them, each a whole number of items, makes the block;
    then checked: one call over three and a half blocks must cut into frames that
    decode to those blocks, and decode the same as each block encoded alone.
    """
    size = dtype.itemsize
    if size < 1 or block_nbytes % size:
        return None
    alone = bytes(codec.encode(_probe(block_nbytes, dtype)))
    auto = _HEADER.unpack_from(alone)[5]
    if auto <= 0:
        return None
    per_block = max(1, round(block_nbytes / auto))
    while per_block > 1 and block_nbytes % (per_block * size):
        per_block -= 1
    internal = block_nbytes // per_block
    try:
        ok = _cuts_cleanly(codec, _blosc_like(codec, internal), block_nbytes, per_block, dtype)
    except (ValueError, RuntimeError, struct.error):
        ok = False
    return (internal, per_block) if ok else None


def _cuts_cleanly(
    codec: Any, blosc: Any, block_nbytes: int, per_block: int, dtype: np.dtype[Any]
) -> bool:
    """True if one call over three and a half blocks cuts into frames that decode to those
    blocks, each the bytes of that block encoded alone where it compresses."""
    data = _probe(block_nbytes * 3 + block_nbytes // 2, dtype)
    frame = bytes(blosc.encode(data))
    _, _, flags, _, _, blocksize, _ = _HEADER.unpack_from(frame)
    if blocksize * per_block != block_nbytes or not flags & _DONT_SPLIT:
        return False  # another internal block size, or blocks split into streams
    raw = data.view(np.uint8)
    for i, part in enumerate(split_frame(frame, block_nbytes, per_block)):
        want = raw[i * block_nbytes : (i + 1) * block_nbytes]
        if not np.array_equal(np.frombuffer(codec.decode(part), np.uint8), want):
            return False
        alone = bytes(blosc.encode(want.view(dtype)))
        if part != alone and not _HEADER.unpack_from(alone)[2] & _MEMCPYED:
            return False
    return True


def _probe(nbytes: int, dtype: np.dtype[Any]) -> np.ndarray[Any, Any]:
    """About ``nbytes`` of ``dtype`` that compress some: a run, small values, and noise."""
    rng = np.random.default_rng(nbytes)
    data = rng.integers(0, 4, nbytes // dtype.itemsize * dtype.itemsize, dtype=np.uint8)
    data[: len(data) // 3] = 7
    data[-(len(data) // 5) :] = rng.integers(0, 256, len(data) // 5, dtype=np.uint8)
    return data.view(dtype)
