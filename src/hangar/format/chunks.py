"""Packed chunks: many samples per object, one ranged read per sample.

Samples of one column are packed, in the order they are written, into
*blocks* of about ``schema.block_bytes`` raw bytes, each encoded on its own
by the column's codecs (:mod:`hangar.format.codec`); blocks are concatenated
into *chunks* of about ``schema.chunk_bytes`` raw bytes, stored at
``chunks/<digest[:2]>/<digest>`` where the digest is the BLAKE2b-160 of the
chunk's bytes. A sample is found by (chunk, block offset, block size, offset
and size inside the decoded block): one ranged read fetches its block,
without the rest of the chunk (DESIGN.md, invariant 4).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import Executor
from contextlib import suppress
from functools import partial
from typing import Any, NamedTuple, Protocol

import numpy as np

from hangar._helper import SharedWork
from hangar.format.blosc_frames import PartialFrame

__all__ = [
    "BLOCKS_PER_CALL",
    "READ_AHEAD_BYTES",
    "BlockCache",
    "BlocksCodec",
    "CachedBlock",
    "ChunkPacker",
    "Run",
    "SampleLocation",
    "block_check",
    "digest_bytes",
    "expand_runs",
    "pack_uniform",
    "runs_of",
    "start_uniform",
    "uniform_layout",
]


def block_check(data: bytes | memoryview) -> str:
    """BLAKE2b-64 of an encoded block: checked on every read of the block."""
    return hashlib.blake2b(data, digest_size=8).hexdigest()


def digest_bytes(data: bytes | memoryview) -> str:
    """BLAKE2b-160 of ``data`` as 40 hex digits: the name of chunks and manifests."""
    return hashlib.blake2b(data, digest_size=20).hexdigest()


class SampleLocation(NamedTuple):
    """Where one sample's bytes live (a named tuple: cheap to make by the million)."""

    chunk: str
    block_offset: int
    block_size: int
    block_check: str
    item_offset: int
    item_nbytes: int


class Run(NamedTuple):
    """``samples`` samples of ``item_nbytes`` each, one after another in one block.

    The compact form of many :class:`SampleLocation` (a with-block of
    fixed-shape samples is a few runs per chunk): sample ``j`` of the run is at
    ``item_offset + j * item_nbytes`` in the decoded block.
    """

    chunk: str
    block_offset: int
    block_size: int
    block_check: str
    item_offset: int
    samples: int
    item_nbytes: int


def expand_runs(runs: list[Run]) -> list[SampleLocation]:
    """The location of every sample of ``runs``, in order."""
    new = tuple.__new__  # NamedTuple's own __new__ is slow at a million calls
    out: list[SampleLocation] = []
    for chunk, boff, bsize, check, ioff, count, nbytes in runs:
        out.extend(
            new(SampleLocation, (chunk, boff, bsize, check, ioff + j * nbytes, nbytes))
            for j in range(count)
        )
    return out


def runs_of(locs: list[SampleLocation]) -> list[Run]:
    """Group consecutive locations that follow each other in one block into runs."""
    runs: list[list[Any]] = []
    last: list[Any] | None = None
    for chunk, boff, bsize, check, ioff, nbytes in locs:
        if (
            last is not None
            and last[1] == boff
            and last[0] == chunk
            and last[6] == nbytes
            and last[4] + last[5] * nbytes == ioff
        ):
            last[5] += 1
            continue
        last = [chunk, boff, bsize, check, ioff, 1, nbytes]
        runs.append(last)
    return [Run(*r) for r in runs]


class ChunkPacker:
    """Pack the samples of one column into blocks and chunks.

    ``add`` queues a sample (a contiguous array); when the queued raw bytes
    reach ``chunk_bytes`` the chunk is sealed: blocks are encoded, the chunk is
    hashed and handed to ``store_chunk(digest, data)``, and the locations of
    its samples become available from :meth:`take_sealed`.
    """

    def __init__(
        self,
        encode: Callable[[np.ndarray[Any, Any]], bytes],
        block_bytes: int,
        chunk_bytes: int,
        store_chunk: Callable[[str, bytes], None],
    ) -> None:
        self._encode = encode
        self._block_bytes = block_bytes
        self._chunk_bytes = chunk_bytes
        self._store_chunk = store_chunk
        self._pending: list[tuple[Hashable, np.ndarray[Any, Any]]] = []
        self._pending_bytes = 0
        self._sealed: list[tuple[Hashable, SampleLocation]] = []

    def add(self, item: Hashable, array: np.ndarray[Any, Any]) -> None:
        """Queue one sample; ``item`` identifies it in :meth:`take_sealed`."""
        self._pending.append((item, array))
        self._pending_bytes += array.nbytes
        if self._pending_bytes >= self._chunk_bytes:
            self.seal()

    @property
    def pending(self) -> int:
        """Samples queued and not yet in a sealed chunk."""
        return len(self._pending)

    def seal(self) -> None:
        """Write everything queued as one chunk (nothing if nothing is queued)."""
        if not self._pending:
            return
        pending, self._pending, self._pending_bytes = self._pending, [], 0
        parts: list[bytes] = []
        placed: list[tuple[Hashable, int, int, int]] = []  # item, block#, offset, nbytes
        checks: list[str] = []
        offset = 0
        block: list[np.ndarray[Any, Any]] = []
        block_items: list[tuple[Hashable, int, int]] = []
        block_raw = 0
        block_starts: list[int] = []

        def close_block() -> None:
            nonlocal offset, block_raw
            flat = np.concatenate([a.reshape(-1) for a in block])
            encoded = self._encode(flat)
            block_starts.append(offset)
            parts.append(encoded)
            checks.append(block_check(encoded))
            for it, off, nb in block_items:
                placed.append((it, len(parts) - 1, off, nb))
            offset += len(encoded)
            block.clear()
            block_items.clear()
            block_raw = 0

        for item, array in pending:
            nbytes = array.nbytes
            if block and block_raw + nbytes > self._block_bytes:
                close_block()
            block.append(array)
            block_items.append((item, block_raw, nbytes))
            block_raw += nbytes
        if block:
            close_block()
        data = b"".join(parts)
        digest = digest_bytes(data)
        self._store_chunk(digest, data)
        new = tuple.__new__  # NamedTuple's own __new__ is slow at a million calls
        sizes = [len(p) for p in parts]
        self._sealed.extend(
            (item, new(SampleLocation, (digest, block_starts[b], sizes[b], checks[b], off, nb)))
            for item, b, off, nb in placed
        )

    def take_sealed(self) -> list[tuple[Hashable, SampleLocation]]:
        """Return and forget the locations of samples in sealed chunks."""
        out, self._sealed = self._sealed, []
        return out


#: the most of a chunk one read-ahead GET fetches (chunks are about
#: ``schema.chunk_bytes`` raw, 4 MiB by default, before compression)
READ_AHEAD_BYTES = 8 << 20

#: chunks a cache remembers having missed in once (the oldest are forgotten)
_MISSES_KEPT = 1 << 16

#: a block in the cache: decoded, or decoded in parts so far
CachedBlock = np.ndarray[Any, Any] | PartialFrame


class BlockCache:
    """A small LRU of decoded blocks, keyed by (chunk, block offset), and the chunks
    read ahead.

    A block may also be held decoded in parts so far (a
    :class:`~hangar.format.blosc_frames.PartialFrame`); readers finish it.

    Read-ahead (on object stores, where every read is a round trip): the first
    read that misses in a chunk fetches its block alone; the second, which needs
    another block of the same chunk, fetches the start of the chunk, up to
    :data:`READ_AHEAD_BYTES`, in its one GET. Those encoded bytes are kept
    (:meth:`span`), so later misses in that chunk cost no request. Chunks are
    read ahead while the ones kept total less than ``read_ahead`` bytes; past
    that, every miss fetches its block alone. Kept chunks stay until the cache
    goes (with its checkout).
    """

    def __init__(self, capacity: int = 64, read_ahead: int = 0) -> None:
        self._capacity = capacity
        self._items: OrderedDict[tuple[str, int], CachedBlock] = OrderedDict()
        self._spans: dict[str, bytes] = {}
        self._room = read_ahead  # bytes of chunks that may still be read ahead
        self._missed: OrderedDict[str, None] = OrderedDict()  # chunks missed once

    def get(self, key: tuple[str, int]) -> CachedBlock | None:
        block = self._items.get(key)
        if block is not None:
            self._items.move_to_end(key)
        return block

    def put(self, key: tuple[str, int], block: CachedBlock) -> None:
        self._items[key] = block
        if len(self._items) > self._capacity:
            self._items.popitem(last=False)

    def span(self, chunk: str) -> bytes | None:
        """The encoded bytes read ahead from the start of ``chunk`` (all of it, or its
        first :data:`READ_AHEAD_BYTES`), if they were."""
        return self._spans.get(chunk)

    def read_ahead(self, chunk: str) -> bool:
        """Whether a read that misses in ``chunk`` should fetch the chunk's start: it
        missed there before, and the budget is not spent. Notes the miss."""
        if self._room <= 0:
            return False
        if self._missed.pop(chunk, False) is None:  # one call: safe if threads read too
            return True
        self._missed[chunk] = None
        if len(self._missed) > _MISSES_KEPT:
            with suppress(KeyError):  # another thread trimmed it first
                self._missed.popitem(last=False)
        return False

    def keep_span(self, chunk: str, data: bytes) -> None:
        """Keep the bytes read ahead from the start of ``chunk``."""
        if chunk not in self._spans:
            self._spans[chunk] = data
            self._room -= len(data)


def uniform_layout(nbytes: int, block_bytes: int, chunk_bytes: int) -> tuple[int, int]:
    """Samples per block and per chunk when every sample has ``nbytes`` bytes."""
    per_block = max(1, block_bytes // max(nbytes, 1))
    blocks_per_chunk = max(1, chunk_bytes // max(per_block * nbytes, 1))
    return per_block, per_block * blocks_per_chunk


class BlocksCodec(Protocol):
    """What packing needs of a column's codec (:class:`~hangar.format.codec.BlockCodec`)."""

    def blocks_encoder(self, block_nbytes: int) -> Callable[[np.ndarray[Any, Any]], list[bytes]]:
        """A function encoding a 1-D array as blocks of ``block_nbytes`` raw bytes each."""
        ...


#: blocks a helper and its caller take at a time when they share a page: one call each
#: (a few hundred KiB), and enough of them that neither waits long for the other
BLOCKS_PER_CALL = 8


def _encode_rows(
    encode: Callable[[np.ndarray[Any, Any]], list[bytes]], rows: np.ndarray[Any, Any]
) -> list[tuple[bytes, str]]:
    """Consecutive rows, encoded as blocks, each with its check."""
    return [(part, block_check(part)) for part in encode(rows.reshape(-1))]


def _encode_taken(
    encode: Callable[[np.ndarray[Any, Any]], list[bytes]],
    rows: np.ndarray[Any, Any],
    taken: np.ndarray[Any, Any],
) -> list[tuple[bytes, str]]:
    """The rows at row numbers ``taken``, encoded as blocks, each with its check."""
    return _encode_rows(encode, rows.take(taken, axis=0))


class UniformPacking:
    """Samples of one size being encoded into blocks (:func:`start_uniform`); :meth:`finish`
    makes the chunks."""

    __slots__ = ("_blocks_per_chunk", "_chunks", "_nbytes", "_sizes", "_work")

    def __init__(
        self,
        rows: np.ndarray[Any, Any],
        codec: BlocksCodec,
        block_bytes: int,
        chunk_bytes: int,
        *,
        helper: Executor | None,
        take: np.ndarray[Any, Any] | None = None,
        blocks_per_call: int | None = BLOCKS_PER_CALL,
    ) -> None:
        n = len(rows) if take is None else len(take)
        self._nbytes = rows[0].nbytes if len(rows) else 0
        per_block, per_chunk = uniform_layout(self._nbytes, block_bytes, chunk_bytes)
        self._blocks_per_chunk = per_chunk // per_block
        self._sizes = [min(per_block, n - b0) for b0 in range(0, n, per_block)]
        self._chunks: list[tuple[str, bytes, list[Run]]] | None = None  # made by encode()
        encode = codec.blocks_encoder(per_block * self._nbytes)
        step = per_block * (blocks_per_call or max(1, len(self._sizes)))  # rows per call
        if take is None:
            calls = [rows[r0 : r0 + step] for r0 in range(0, n, step)]
            self._work = SharedWork(partial(_encode_rows, encode), calls, helper)
        else:  # each call's rows gathered by whichever thread encodes them
            calls = [take[r0 : r0 + step] for r0 in range(0, n, step)]
            self._work = SharedWork(partial(_encode_taken, encode, rows), calls, helper)

    def encode(self) -> None:
        """Encode every block and make the chunks now, in this thread (what the helper has
        not taken); :meth:`finish` then only stores them."""
        self._chunks = self._make_chunks()

    def finish(self, store_chunk: Callable[[str, bytes], None]) -> list[Run]:
        """Encode what the helper has not, store each chunk; the runs, one per block."""
        chunks = self._chunks if self._chunks is not None else self._make_chunks()
        out: list[Run] = []
        for digest, data, runs in chunks:
            store_chunk(digest, data)
            out.extend(runs)
        return out

    def _make_chunks(self) -> list[tuple[str, bytes, list[Run]]]:
        """Each chunk's digest, bytes, and the runs of its blocks."""
        encoded = [part for call in self._work.result() for part in call]
        blocks_per_chunk = self._blocks_per_chunk
        out = []
        for c0 in range(0, len(self._sizes), blocks_per_chunk):
            parts = encoded[c0 : c0 + blocks_per_chunk]
            data = b"".join(part for part, _ in parts)
            digest = digest_bytes(data)
            offset = 0
            runs = []
            for size, (part, check) in zip(self._sizes[c0 : c0 + blocks_per_chunk], parts,
                                           strict=True):  # fmt: skip
                runs.append(Run(digest, offset, len(part), check, 0, size, self._nbytes))
                offset += len(part)
            out.append((digest, data, runs))
        return out

    def abandon(self) -> None:
        """Stop encoding (an error elsewhere): nothing keeps running behind the caller."""
        self._work.abandon()


def start_uniform(
    rows: np.ndarray[Any, Any],
    codec: BlocksCodec,
    block_bytes: int,
    chunk_bytes: int,
    *,
    helper: Executor | None = None,
    take: np.ndarray[Any, Any] | None = None,
    blocks_per_call: int | None = BLOCKS_PER_CALL,
) -> UniformPacking:
    """Start packing samples that all have the same size; same layout as :class:`ChunkPacker`.

    The fast path of a ``with`` block full of fixed-shape samples: ``rows`` is
    a 2-D array, one sample per row; blocks are sliced from it and each block
    is one run of samples. Blocks are encoded ``blocks_per_call`` at a time
    (None: all in one call), by one call of ``codec``'s
    :meth:`~BlocksCodec.blocks_encoder` each. With a ``helper`` (an executor),
    the calls are made there from now on, and the caller takes the rest when
    it calls :meth:`UniformPacking.finish`: compressing and hashing release the
    GIL, so two cores share the work, and the caller may do other work in
    between. ``take``: pack only these rows (numbers into ``rows``, in this
    order); each call's rows are gathered by the thread that encodes them, not
    copied out up front.
    """
    return UniformPacking(rows, codec, block_bytes, chunk_bytes, helper=helper, take=take,
                          blocks_per_call=blocks_per_call)  # fmt: skip


def pack_uniform(
    rows: np.ndarray[Any, Any],
    codec: BlocksCodec,
    block_bytes: int,
    chunk_bytes: int,
    store_chunk: Callable[[str, bytes], None],
    *,
    helper: Executor | None = None,
) -> list[Run]:
    """:func:`start_uniform`, then finish at once: the runs of the blocks stored."""
    return start_uniform(rows, codec, block_bytes, chunk_bytes, helper=helper).finish(store_chunk)
