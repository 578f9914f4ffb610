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

__all__ = ["FramedBlosc", "PartialFrame", "split_frame"]

_HEADER = struct.Struct("<BBBBiii")
_MEMCPYED = 0x02
_DONT_SPLIT = 0x10
_FORMAT_VERSION = 2  # c-blosc 1.x frames

#: per codec setting, block size and dtype: its framed encoder (stateless, shared), or None
#: (the setting is encoded a block per call)
_encoders: dict[tuple[Any, ...], FramedBlosc | None] = {}
_encoders_lock = threading.Lock()


class _Frame:
    """A c-blosc 1.x frame, parsed: its header, and where each internal block's bytes are."""

    __slots__ = ("blocksize", "cbytes", "flags", "nblocks", "nbytes", "spans", "typesize",
                 "version", "versionlz", "view")  # fmt: skip

    def __init__(self, frame: bytes) -> None:
        """Raises ``ValueError`` for a frame this does not understand."""
        if len(frame) < 16:
            raise ValueError("not a c-blosc 1.x frame: too short")
        head = _HEADER.unpack_from(frame)
        self.version, self.versionlz, self.flags, self.typesize = head[:4]
        self.nbytes, self.blocksize, self.cbytes = head[4:]
        if self.version != _FORMAT_VERSION or self.cbytes != len(frame) or self.blocksize <= 0:
            raise ValueError("not a c-blosc 1.x frame")
        self.view = memoryview(frame)
        self.nblocks = -(-self.nbytes // self.blocksize)
        self.spans: list[tuple[int, int]] = []
        if not self.flags & _MEMCPYED:
            starts = struct.unpack_from(f"<{self.nblocks}i", frame, 16)
            # with threads, c-blosc stores blocks in the order they finish: a block ends
            # where the next stored one starts
            order = sorted(starts)
            ends = dict(zip(order, [*order[1:], self.cbytes], strict=True))
            self.spans = [(start, ends[start]) for start in starts]

    def cut(self, first: int, last: int) -> bytes:
        """A frame of internal blocks ``first`` to ``last - 1`` alone (decodes to their
        bytes)."""
        blocksize = self.blocksize
        size = min((last - first) * blocksize, self.nbytes - first * blocksize)
        if self.flags & _MEMCPYED:  # stored raw: a header, then the bytes
            part = self.view[16 + first * blocksize : 16 + first * blocksize + size]
            head = _HEADER.pack(self.version, self.versionlz, self.flags, self.typesize, size,
                                min(blocksize, size), 16 + size)  # fmt: skip
            return head + part
        bodies = [self.view[a:b] for a, b in self.spans[first:last]]
        offsets = []
        at = 16 + 4 * (last - first)
        for body in bodies:
            offsets.append(at)
            at += len(body)
        # a block shorter than the block size is never split into streams
        flags = self.flags | _DONT_SPLIT if size < blocksize else self.flags
        head = struct.pack(f"<BBBBiii{last - first}i", self.version, self.versionlz, flags,
                           self.typesize, size, min(blocksize, size), at, *offsets)  # fmt: skip
        return b"".join([head, *bodies])


def split_frame(frame: bytes, block_nbytes: int, per_block: int) -> list[bytes]:
    """Cut a Blosc frame into one frame per ``block_nbytes`` raw bytes.

    ``frame``'s internal block size times ``per_block`` must be ``block_nbytes``.
    Raises ``ValueError`` for a frame this does not understand.
    """
    parsed = _Frame(frame)
    if parsed.blocksize * per_block != block_nbytes:
        raise ValueError("not a c-blosc 1.x frame with the expected block size")
    return [
        parsed.cut(first, min(first + per_block, parsed.nblocks))
        for first in range(0, parsed.nblocks, per_block)
    ]


class PartialFrame:
    """An encoded block decoded one internal block at a time, as reads need them.

    A single-sample read of a 256 KiB block needs one or two of its eight
    32 KiB internal blocks: decoding only those is an eighth of the work. The
    decoded bytes go into one buffer, so reads of the same block later find
    them there; :meth:`array` decodes the rest (a scan wants all of it).
    """

    __slots__ = ("_codec", "_done", "_dtype", "_frame", "_lock", "_out")

    def __init__(self, frame: _Frame, codec: Any, dtype: np.dtype[Any]) -> None:
        self._frame = frame
        self._codec = codec
        self._dtype = dtype
        self._out = np.empty(frame.nbytes, np.uint8)
        # set once a block's bytes are in the buffer, which is then never written again
        # (c-blosc uses its output as scratch while it decodes): one decoder at a time
        self._done = [False] * frame.nblocks
        self._lock = threading.Lock()

    @classmethod
    def of(cls, data: bytes, codec: Any, dtype: np.dtype[Any]) -> PartialFrame | None:
        """``data`` (a block encoded by the numcodecs Blosc ``codec``) to decode in parts;
        None if it has one internal block, is stored raw, or is not a frame this reads."""
        try:
            frame = _Frame(data)
        except ValueError:
            return None
        if frame.nblocks < 2 or frame.flags & _MEMCPYED or frame.nbytes % dtype.itemsize:
            return None
        return cls(frame, codec, dtype)

    @property
    def complete(self) -> bool:
        """True once every internal block is decoded."""
        return all(self._done)

    def read(self, start: int, stop: int) -> np.ndarray[Any, Any]:
        """Bytes ``start:stop`` of the decoded block, as ``dtype`` (a view: copy to keep)."""
        size = self._frame.blocksize
        first, last = start // size, max(start, stop - 1) // size + 1
        if not all(self._done[first:last]):
            self._decode(first, last)
        return self._out[start:stop].view(self._dtype)

    def array(self) -> np.ndarray[Any, Any]:
        """The whole decoded block, as ``dtype``."""
        if not all(self._done):
            self._decode(0, self._frame.nblocks)
        return self._out.view(self._dtype)

    def _decode(self, first: int, last: int) -> None:
        with self._lock:
            self._decode_locked(first, last)

    def _decode_locked(self, first: int, last: int) -> None:
        frame, size, done = self._frame, self._frame.blocksize, self._done
        i = first
        while i < last:  # runs of internal blocks not decoded yet, one call each
            if done[i]:
                i += 1
                continue
            j = i
            while j < last and not done[j]:
                j += 1
            end = min(j * size, frame.nbytes)
            self._codec.decode(frame.cut(i, j), out=self._out[i * size : end])
            for k in range(i, j):
                done[k] = True
            i = j


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
        with _encoders_lock:
            if key not in _encoders:
                plan = _plan(codec, block_nbytes, dtype)
                _encoders[key] = (
                    None if plan is None else cls(_blosc_like(codec, plan[0]), block_nbytes, *plan)
                )
            return _encoders[key]

    def encode(self, flat: np.ndarray[Any, Any]) -> list[bytes]:
        """Encode a 1-D contiguous array as blocks of ``block_nbytes`` raw bytes each (the
        last may be shorter), with one Blosc call."""
        frame = bytes(self._blosc.encode(flat))
        if flat.nbytes <= self._internal:
            return [frame]  # one internal block: c-blosc sized it to fit
        try:
            return split_frame(frame, self._block_nbytes, self._per_block)
        except ValueError:  # c-blosc laid this one out otherwise: a call per block then
            step = self._block_nbytes // flat.itemsize
            return [
                bytes(self._blosc.encode(flat[i : i + step])) for i in range(0, len(flat), step)
            ]


def _blosc_like(codec: Any, internal: int) -> Any:
    return numcodecs.Blosc(cname=codec.cname, clevel=codec.clevel, shuffle=codec.shuffle,
                           blocksize=internal)  # fmt: skip


def _plan(codec: Any, block_nbytes: int, dtype: np.dtype[Any]) -> tuple[int, int] | None:
    """The internal block size for blocks of ``block_nbytes``, and how many make a block.

    Blosc's own choice for one block alone, rounded so that a whole number of
    them, each a whole number of items, makes the block. A codec with its own
    block size set keeps it exactly, so it must divide the block (else None: a
    call per block). Then checked: one call over three and a half blocks must cut
    into frames that decode to those blocks, and decode the same as each block
    encoded alone.
    """
    size = dtype.itemsize
    if size < 1 or block_nbytes % size:
        return None
    if codec.blocksize:  # the user's own internal block size: exactly that, or none
        internal = codec.blocksize
        if internal % size or block_nbytes % internal:
            return None
        per_block = block_nbytes // internal
    else:
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
