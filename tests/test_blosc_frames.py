"""Blocks compressed many to a Blosc call and cut into one frame each (hangar.format.blosc_frames).

What is cut out must be a Blosc frame any decoder reads, equal to what the block
encoded alone gives, whatever order c-blosc's threads stored the blocks in.
"""

from __future__ import annotations

import threading
from typing import Any

import numcodecs
import numpy as np
import pytest

from hangar.format.blosc_frames import FramedBlosc, split_frame
from hangar.format.codec import BlockCodec, codecs_from_backend_options


def _rows(dtype: str, n: int, width: int, seed: int = 0) -> np.ndarray[Any, Any]:
    """Rows that compress some: small values, a run, and a band of noise."""
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, 4, (n, width)).astype(dtype)
    rows[: n // 4] = 3
    rows[-(n // 6) :] = rng.integers(0, 120, (n // 6, width)).astype(dtype)
    return rows


def _codec(dtype: str, **options: Any) -> BlockCodec:
    meta = codecs_from_backend_options({"id": "blosc", **options} if options else None,
                                       np.dtype(dtype))  # fmt: skip
    return BlockCodec.from_metadata(meta, np.dtype(dtype))


@pytest.mark.parametrize(
    ("dtype", "width", "options"),
    [
        ("uint8", 784, {}),  # the default: zstd level 1, byte shuffle
        ("float32", 100, {}),
        ("int64", 1, {}),
        ("uint16", 333, {"cname": "zstd", "clevel": 5, "shuffle": 2}),
        ("float64", 50, {"cname": "zstd", "clevel": 3, "shuffle": 0}),
    ],
)
@pytest.mark.parametrize("block_bytes", [64 << 10, 256 << 10])
def test_blocks_cut_from_one_call_decode_and_equal_each_block_alone(
    dtype: str, width: int, options: dict[str, Any], block_bytes: int
) -> None:
    codec = _codec(dtype, **options)
    itemsize = np.dtype(dtype).itemsize
    per_block = max(1, block_bytes // (width * itemsize))
    block_nbytes = per_block * width * itemsize
    framed = FramedBlosc.for_codec(codec.codecs[0], block_nbytes, codec.dtype)
    assert framed is not None
    rows = _rows(dtype, per_block * 7 + per_block // 3, width)
    parts = framed.encode(rows.reshape(-1))
    assert len(parts) == 8
    for i, part in enumerate(parts):
        want = rows[i * per_block : (i + 1) * per_block]
        assert np.array_equal(codec.decode(part), want.reshape(-1))
        assert part == framed.encode(want.reshape(-1))[0]  # the same bytes, alone
    # BlockCodec picks the framed encoder for Blosc alone, and it gives the same
    assert codec.blocks_encoder(block_nbytes)(rows.reshape(-1)) == parts


@pytest.mark.parametrize(
    "options",
    [
        {"cname": "lz4", "clevel": 5},  # lz4 and blosclz split blocks into streams
        {"cname": "blosclz", "clevel": 5},
        {"cname": "zlib", "clevel": 3, "shuffle": 0},  # c-blosc picks its own block size
        {"cname": "lz4hc", "clevel": 9},
    ],
)
def test_settings_whose_frames_do_not_cut_are_encoded_a_block_at_a_time(
    options: dict[str, Any],
) -> None:
    codec = _codec("float64", **options)
    assert FramedBlosc.for_codec(codec.codecs[0], 64 << 10, codec.dtype) is None
    rows = _rows("float64", 20_000, 4)
    parts = codec.blocks_encoder(64 << 10)(rows.reshape(-1))
    flat = rows.reshape(-1)
    assert parts == [codec.encode(flat[i : i + 8192]) for i in range(0, 80_000, 8192)]


def test_blocks_stored_out_of_order_by_blosc_threads_are_cut_right() -> None:
    """On the main thread c-blosc compresses with its own threads, which store blocks in
    the order they finish; on another thread it uses one. Both cut the same."""
    codec = _codec("uint8")
    per_block = 83
    framed = FramedBlosc.for_codec(codec.codecs[0], per_block * 784, codec.dtype)
    assert framed is not None
    rows = _rows("uint8", per_block * 40, 784, seed=3)
    numcodecs.blosc.set_nthreads(2)
    on_main = framed.encode(rows.reshape(-1))
    elsewhere: list[list[bytes]] = []
    t = threading.Thread(target=lambda: elsewhere.append(framed.encode(rows.reshape(-1))))
    t.start()
    t.join()
    assert on_main == elsewhere[0]


def test_blocks_that_do_not_compress_still_decode() -> None:
    codec = _codec("uint8")
    framed = FramedBlosc.for_codec(codec.codecs[0], 64 * 1000, codec.dtype)
    assert framed is not None
    rng = np.random.default_rng(5)
    noise = rng.integers(0, 256, 64 * 1000 * 3, dtype=np.uint8)  # the whole frame raw
    mixed = noise.copy()
    mixed[: 64 * 1000] = 0  # one block compresses, the others are stored raw inside
    for data in (noise, mixed):
        parts = framed.encode(data)
        got = np.concatenate([codec.decode(p) for p in parts])
        assert np.array_equal(got, data)


def test_other_codec_chains_are_encoded_a_block_at_a_time() -> None:
    for options in ({"id": "zstd", "level": 3}, {"id": "gzip", "level": 1}, []):
        meta = codecs_from_backend_options(options, np.dtype(np.uint8))
        codec = BlockCodec.from_metadata(meta, np.dtype(np.uint8))
        data = _rows("uint8", 300, 1000).reshape(-1)
        parts = codec.blocks_encoder(64_000)(data)
        assert len(parts) == 5
        assert np.array_equal(np.concatenate([codec.decode(p) for p in parts]), data)


def test_a_frame_it_does_not_understand_is_refused() -> None:
    codec = numcodecs.Blosc(cname="zstd", clevel=1, blocksize=1000)
    frame = bytes(codec.encode(np.zeros(10_000, np.uint8)))
    with pytest.raises(ValueError, match="expected block size"):
        split_frame(frame, 3000, 2)  # its blocks are 1,000 bytes, not 1,500
    with pytest.raises(ValueError, match=r"c-blosc 1\.x"):
        split_frame(b"\x03" + frame[1:], 2000, 2)  # another format version


@pytest.mark.parametrize("dtype", ["uint8", "float32", "int64"])
def test_a_block_decoded_in_parts_reads_every_range_right(dtype: str) -> None:
    from hangar.format.blosc_frames import PartialFrame

    codec = _codec(dtype)
    rows = _rows(dtype, 700, 97, seed=9)  # 256 KiB-ish: several internal blocks
    flat = rows.reshape(-1)
    raw = flat.view(np.uint8)
    data = codec.encode(flat)
    size = np.dtype(dtype).itemsize
    rng = np.random.default_rng(1)
    part = codec.partial(data)
    assert part is not None
    assert not part.complete
    for _ in range(200):  # single items, rows, ranges across internal blocks
        a = int(rng.integers(0, len(flat))) * size
        b = min(len(raw), a + int(rng.choice([size, 97 * size, 40_000 // size * size])))
        np.testing.assert_array_equal(part.read(a, b), flat[a // size : b // size])
    np.testing.assert_array_equal(part.array(), flat)
    assert part.complete
    again = PartialFrame.of(data, codec.codecs[0], codec.dtype)
    assert again is not None
    last = len(raw) - size  # the last item: the shorter last internal block
    np.testing.assert_array_equal(again.read(last, len(raw)), flat[-1:])
    assert not again.complete


def test_blocks_that_cannot_be_read_in_parts_say_so() -> None:
    codec = _codec("uint8")
    assert codec.partial(codec.encode(np.zeros(1000, np.uint8))) is None  # one internal block
    noise = np.random.default_rng(0).integers(0, 256, 200_000, dtype=np.uint8)
    assert codec.partial(codec.encode(noise)) is None  # stored raw
    other = BlockCodec.from_metadata(codecs_from_backend_options({"id": "zstd"}, np.dtype("u1")),
                                     np.dtype("u1"))  # fmt: skip
    assert other.partial(other.encode(np.zeros(200_000, np.uint8))) is None


def test_threads_reading_one_block_in_parts_get_the_right_bytes() -> None:
    """Threads reading one block in parts decode each internal block once (c-blosc uses
    its output as scratch, so a second decoder of a block would show others garbage)."""
    from concurrent.futures import ThreadPoolExecutor

    codec = _codec("uint8")
    rows = _rows("uint8", 330, 784, seed=4)
    flat = rows.reshape(-1)
    for _ in range(100):
        part = codec.partial(codec.encode(flat))
        assert part is not None

        def read(i: int, part: Any = part) -> bool:
            return bool(np.array_equal(part.read(i * 784, (i + 1) * 784), rows[i]))

        with ThreadPoolExecutor(4) as pool:
            assert all(pool.map(read, [int(i) for i in np.random.default_rng(7).permutation(330)]))
        np.testing.assert_array_equal(part.array(), flat)


def test_a_frame_laid_out_otherwise_is_encoded_a_block_at_a_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import hangar.format.blosc_frames as frames

    codec = _codec("uint8")
    framed = FramedBlosc.for_codec(codec.codecs[0], 83 * 784, codec.dtype)
    assert framed is not None
    rows = _rows("uint8", 83 * 5, 784)
    cut = framed.encode(rows.reshape(-1))

    def refuse(*args: Any) -> list[bytes]:
        raise ValueError("not a c-blosc 1.x frame with the expected block size")

    monkeypatch.setattr(frames, "split_frame", refuse)
    assert framed.encode(rows.reshape(-1)) == cut  # the same bytes, a call per block


def test_a_block_size_set_in_the_codec_is_kept_exactly() -> None:
    """backend_options may set Blosc's internal block size: one that divides the block is
    used as it is; one that does not means a call per block, encoded as asked."""
    dividing = _codec("uint8", cname="zstd", clevel=1, blocksize=16_384)
    framed = FramedBlosc.for_codec(dividing.codecs[0], 65_536, dividing.dtype)
    assert framed is not None
    rows = _rows("uint8", 64 * 5, 1024)
    for part in framed.encode(rows.reshape(-1)):
        assert int.from_bytes(part[8:12], "little") == 16_384  # the header's block size
    other = _codec("uint8", cname="zstd", clevel=1, blocksize=10_000)
    assert FramedBlosc.for_codec(other.codecs[0], 65_536, other.dtype) is None
    flat = rows.reshape(-1)
    parts = other.blocks_encoder(65_536)(flat)
    assert parts == [other.encode(flat[i : i + 65_536]) for i in range(0, len(flat), 65_536)]
