"""The on-store format pieces: names, records, schemas, codecs, chunks, manifests, commits."""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np
import pytest

from hangar.exceptions import CorruptionError, InvalidKeyError, ObjectNotFoundError
from hangar.format.chunks import ChunkPacker, SampleLocation, block_check, digest_bytes
from hangar.format.codec import BlockCodec, codecs_from_backend_options
from hangar.format.commits import ColumnRecord, CommitRecord, read_commit, write_commit
from hangar.format.manifest import (
    Entry,
    SegmentRef,
    check_key,
    decode_digests,
    decode_locations,
    decode_segment,
    encode_segment,
    key_order,
    split_rows,
)
from hangar.format.names import branch_ref, chunk_key, commit_key, validate_name
from hangar.format.records import BranchRef, LeaseRecord, RepositoryInfo
from hangar.format.sample_digest import sample_digest_scheme
from hangar.format.schema import ColumnSchema, SampleError
from hangar.format.staging import (
    JournalEntry,
    append_entry,
    entry_epoch,
    entry_seq,
    journal_prefix,
    log_name,
    pinned,
    read_entries,
)
from hangar.store import open_store


@pytest.mark.parametrize("bad", ["", ".hidden", "-x", "a/b", "a b", "é", "x" * 65, "a.json", 3])
def test_names_refuse_unsafe(bad: object) -> None:
    with pytest.raises(InvalidKeyError):
        validate_name(bad)


def test_object_names() -> None:
    assert branch_ref("master") == "refs/heads/master.json"
    assert chunk_key("ab" * 20) == f"chunks/ab/{'ab' * 20}"
    assert commit_key("a=" + "0" * 40) == f"commits/a={'0' * 40}.json"
    with pytest.raises(InvalidKeyError):
        chunk_key("../../etc")


def test_records_round_trip() -> None:
    info = RepositoryInfo("id", "2026-01-01T00:00:00Z", "Ann", "ann@example.com")
    assert RepositoryInfo.from_bytes(info.to_bytes()) == info
    ref = BranchRef("a=" + "1" * 40, 7)
    assert BranchRef.from_bytes(ref.to_bytes()) == ref
    assert BranchRef.from_bytes(BranchRef(None).to_bytes()).commit is None
    lease = LeaseRecord("master", "h", 1, "ann", "host", 1, "t0", "t1", 60.0)
    assert LeaseRecord.from_bytes(lease.to_bytes()) == lease
    with pytest.raises(InvalidKeyError):
        BranchRef.from_bytes(b'{"commit": null, "epoch": 1, "sneaky": 1}')
    with pytest.raises(InvalidKeyError):
        BranchRef("not-a-commit")


def _schema(**kw: object) -> ColumnSchema:
    base: dict[str, object] = {
        "column_type": "ndarray",
        "column_layout": "flat",
        "dtype": "uint8",
        "shape": (4, 4),
        "variable_shape": False,
    }
    base.update(kw)
    return ColumnSchema(**base)  # type: ignore[arg-type]


def test_schema_validates_samples() -> None:
    s = _schema()
    a = np.zeros((4, 4), np.uint8)
    assert s.coerce(a, "col") is a
    with pytest.raises(SampleError, match="expected dtype uint8, got float64"):
        s.coerce(np.zeros((4, 4)), "col 'x' key 1")
    with pytest.raises(SampleError, match=r"expected shape \(4, 4\), got \(4, 5\)"):
        s.coerce(np.zeros((4, 5), np.uint8), "col")
    with pytest.raises(SampleError, match=r"numpy\.ndarray"):
        s.coerce([1, 2], "col")
    v = _schema(variable_shape=True)
    assert v.coerce(np.zeros((2, 3), np.uint8), "c").shape == (2, 3)
    with pytest.raises(SampleError, match="exceeds max shape"):
        v.coerce(np.zeros((5, 1), np.uint8), "c")
    with pytest.raises(SampleError, match="rank"):
        v.coerce(np.zeros(3, np.uint8), "c")
    assert s.coerce(np.zeros((4, 4), np.uint8).T, "c").flags.c_contiguous
    st = ColumnSchema("str", "flat", "str", None, True)
    assert st.coerce("héllo", "c").tobytes() == "héllo".encode()
    with pytest.raises(SampleError):
        st.coerce(b"bytes", "c")
    assert ColumnSchema.from_dict(s.to_dict()) == s
    assert s.schema_type == "fixed_shape"
    assert len(s.digest) == 12


def test_schema_rejects_bad_definitions() -> None:
    with pytest.raises(InvalidKeyError):
        _schema(dtype="object")
    with pytest.raises(InvalidKeyError):
        _schema(shape=(-1,))
    with pytest.raises(InvalidKeyError):
        ColumnSchema("str", "flat", "str", (3,), True)


@pytest.mark.parametrize(
    "options",
    [None, {"id": "zstd", "level": 3}, {"id": "blosc", "cname": "lz4", "clevel": 5, "shuffle": 2},
     {"complib": "blosc:zstd", "complevel": 5, "shuffle": "byte"}, {"complib": "gzip"},
     {"complib": None}, [{"name": "zstd", "configuration": {"level": 1}}]],
)  # fmt: skip
def test_codecs_round_trip(options: object) -> None:
    dt = np.dtype("float32")
    meta = codecs_from_backend_options(options, dt)  # type: ignore[arg-type]
    assert meta[0]["name"] == "bytes"
    codec = BlockCodec.from_metadata(meta, dt)
    block = np.arange(1000, dtype=dt)
    assert np.array_equal(codec.decode(codec.encode(block)), block)


def test_codecs_refuse_unknown() -> None:
    with pytest.raises(InvalidKeyError):
        codecs_from_backend_options({"id": "lzma-custom"}, np.dtype("u1"))
    with pytest.raises(InvalidKeyError):
        codecs_from_backend_options("fast", np.dtype("u1"))  # type: ignore[arg-type]


def test_packer_places_every_sample_for_one_ranged_read() -> None:
    store = open_store("memory://packer-test")
    dt = np.dtype("uint8")
    codec = BlockCodec.from_metadata(codecs_from_backend_options(None, dt), dt)
    chunks: dict[str, bytes] = {}

    def keep(digest: str, data: bytes) -> None:
        chunks[digest] = data
        store.put(chunk_key(digest), data)

    packer = ChunkPacker(codec.encode, block_bytes=1000, chunk_bytes=10_000, store_chunk=keep)
    rng = np.random.default_rng(0)
    samples = {i: rng.integers(0, 255, size=rng.integers(1, 300), dtype=np.uint8)
               for i in range(200)}  # fmt: skip
    for i, a in samples.items():
        packer.add(i, a)
    packer.seal()
    placed = dict(packer.take_sealed())
    assert set(placed) == set(samples)
    assert len(chunks) > 1  # the chunk size bound sealed several chunks
    for digest, data in chunks.items():
        assert digest_bytes(data) == digest
    for i, loc in placed.items():
        assert isinstance(loc, SampleLocation)
        raw = store.get_range(chunk_key(loc.chunk), loc.block_offset,
                              loc.block_offset + loc.block_size)  # fmt: skip
        assert block_check(raw) == loc.block_check
        block = codec.decode(raw)
        got = block[loc.item_offset : loc.item_offset + loc.item_nbytes]
        assert np.array_equal(got, samples[i])


def test_keys_and_order() -> None:
    assert check_key(0) == 0
    assert check_key("a-b_c.1") == "a-b_c.1"
    for bad in (-1, "", "é", "a\n", 1.5, b"x", None, True):
        with pytest.raises(InvalidKeyError):
            check_key(bad)
    keys: list[int | str] = ["b", 10, "a", 2, "10", 1]
    assert sorted(keys, key=key_order) == [1, 2, 10, "10", "a", "b"]


def test_manifest_segments_round_trip() -> None:
    loc = SampleLocation("c" * 40, 0, 10, "f" * 16, 4, 8)
    rows = [(k, sk, Entry(b"d" * 8, loc, (2,) if k == "s" else None))
            for k, sk in [(1, None), (2, None), ("1", None), ("s", "x"), ("s", 3)]]  # fmt: skip
    data = encode_segment(rows)
    assert list(decode_segment(data, digest_bytes(data))) == rows
    with pytest.raises(CorruptionError):
        list(decode_segment(data + b"x", digest_bytes(data)))
    # keys and digests alone, as diffs read them: 1 and "1" stay apart
    assert decode_digests(data, digest_bytes(data)) == [(k, sk, e.digest) for k, sk, e in rows]
    flat = encode_segment(rows[:2])
    assert decode_digests(flat) == [(1, None, b"d" * 8), (2, None, b"d" * 8)]
    with pytest.raises(CorruptionError):
        decode_digests(data + b"x", digest_bytes(data))
    # digests are raw bytes: distinct ones, trailing zero bytes kept
    varied = [(i, None, Entry(bytes([i]) * 7 + b"\0", loc, None)) for i in range(256)]
    assert list(decode_segment(encode_segment(varied))) == varied
    # a flat segment's entries, one at a time from its columns (the lookups of cold reads)
    shaped = [(i, None, Entry(b"e" * 8, loc, (i, 3) if i % 2 else None)) for i in range(5)]
    for flat_rows in (varied, [(k, None, e) for k, _, e in rows[:3]], shaped):
        located = decode_locations(encode_segment(flat_rows), entries=True)
        assert located.keys == [k for k, _, _ in flat_rows]
        assert [located.entry(i) for i in range(len(flat_rows))] == [e for _, _, e in flat_rows]
    with pytest.raises(ValueError, match="without their entries"):
        decode_locations(flat).entry(0)
    segs = list(split_rows(rows, target=3))
    assert [len(s) for s in segs] == [3, 2]
    ref = SegmentRef(digest_bytes(data), 5, 1, "s")
    assert SegmentRef.from_dict(ref.to_dict()) == ref
    assert SegmentRef.from_dict(SegmentRef("d" * 40, 1, "1", 1).to_dict()).first == "1"


def test_journal_logs_frame_entries_and_stop_at_a_torn_end() -> None:
    store = open_store(f"memory://fmt-{uuid.uuid4().hex}")
    name = log_name(3, 7)
    assert (entry_epoch(name), entry_seq(name)) == (3, 7)
    assert entry_seq(pinned(name, 99)) == 7
    for i in range(3):
        entry = JournalEntry([["op", i]])
        entry.add_inline(bytes([i]) * (i + 1))
        append_entry(store, "master", name, entry)
    got, pin = read_entries(store, "master", name)
    assert [(e.ops, bytes(e.blob)) for e in got] == [([["op", i]], bytes([i]) * (i + 1))
                                                      for i in range(3)]  # fmt: skip
    key = f"{journal_prefix('master')}/{name}"
    whole = store.get(key)
    assert pin == pinned(name, len(whole))
    for tail in (whole[:5], whole[:30], bytes(40), b"HJL1" + bytes(12)):  # torn ends
        store.put(key, whole + tail)
        assert read_entries(store, "master", name)[1] == pin
        assert len(read_entries(store, "master", name)[0]) == 3
    flipped = bytearray(whole)
    flipped[-1] ^= 1  # the last frame fails its CRC: a torn end too
    store.put(key, bytes(flipped))
    assert len(read_entries(store, "master", name)[0]) == 2
    with pytest.raises(CorruptionError, match="damaged"):  # but not inside a pinned length
        read_entries(store, "master", pin)
    store.put(key, whole[:-1])
    with pytest.raises(CorruptionError, match="shorter"):
        read_entries(store, "master", pin)
    for bad in ("a/b-1", "nodash", f"{name}@x", "1-2@5"):
        with pytest.raises(InvalidKeyError):
            read_entries(store, "master", bad)


def test_commit_records_are_verified() -> None:
    store = open_store("memory://commit-test")
    column = ColumnRecord(_schema(), (SegmentRef("d" * 40, 1, 0, 0),), 1)
    rec = CommitRecord((), "Ann", "ann@example.com", "2026-01-01T00:00:00Z", "first", {"c": column})
    cid = write_commit(store, rec)
    assert cid.startswith("a=")
    assert len(cid) == 42
    assert read_commit(store, cid) == rec
    assert write_commit(store, rec) == cid  # deterministic
    store.put(commit_key(cid), rec.to_bytes().replace(b"first", b"fIrst"))
    with pytest.raises(CorruptionError):
        read_commit(store, cid)
    with pytest.raises(ObjectNotFoundError):
        read_commit(store, "a=" + "9" * 40)
    with pytest.raises(InvalidKeyError):
        CommitRecord((), "a", "b", "t", "")


def test_sample_digest_schemes_are_the_documented_hashes() -> None:
    import hashlib

    import xxhash

    rows = np.arange(3 * 12, dtype=np.float32).reshape(3, 12)
    xxh3, blake = sample_digest_scheme("xxh3-64"), sample_digest_scheme("blake2b-64")
    assert xxh3.rows(rows) == b"".join(xxhash.xxh3_64_digest(r.tobytes()) for r in rows)
    assert blake.rows(rows) == b"".join(
        hashlib.blake2b(r.tobytes(), digest_size=8).digest() for r in rows
    )
    for scheme in (xxh3, blake):
        assert scheme.of(rows[1], variable=False) == scheme.rows(rows)[8:16]
        # where shapes vary, the shape is part of the digest
        assert scheme.of(rows[1], variable=True) != scheme.of(rows[1].reshape(3, 4), variable=True)
    assert xxh3.rows(np.arange(4, dtype=np.int64)) == b"".join(
        xxhash.xxh3_64_digest(np.int64(i).tobytes()) for i in range(4)
    )
    # rows of 1 to 16 bytes are hashed with numpy: the same digests, every length
    rng = np.random.default_rng(7)
    for width in [*range(1, 18), 24]:
        small = rng.integers(0, 256, (500, width), dtype=np.uint8)
        small[:3] = np.array([[0], [255], [128]])  # the edges of every byte
        want = b"".join(xxhash.xxh3_64_digest(r.tobytes()) for r in small)
        assert xxh3.rows(small) == want, width
        assert xxh3.rows(small.view(f"V{width}").reshape(-1)) == want, width
        assert xxh3.of(small[4], variable=False) == want[32:40]
    assert xxh3.rows(np.zeros((0, 4), np.uint8)) == b""
    with pytest.raises(InvalidKeyError, match="unknown sample digest"):
        sample_digest_scheme("sha1-64")


def test_new_repositories_are_format_2_with_xxh3_digests() -> None:
    import uuid

    import xxhash

    from hangar import Repository

    repo = Repository(f"memory://fmt-{uuid.uuid4().hex}", exists=False)
    repo.init("t", "t@example.com")
    info = RepositoryInfo.from_bytes(repo._store.get("hangar.json"))
    assert (info.format_version, info.sample_digest) == (2, "xxh3-64")
    co = repo.checkout(write=True)
    col = co.add_ndarray_column("x", shape=(5,), dtype=np.int16)
    value = np.arange(5, dtype=np.int16)
    col[0] = value
    with col:
        col[1] = value + 1
    co.commit("c")
    co.close()
    seg = repo.checkout()["x"]._engine.base_segments[0]
    rows = list(decode_segment(repo._store.get(f"manifests/{seg.digest}.parquet")))
    assert [e.digest for _, _, e in rows] == [
        xxhash.xxh3_64_digest(value.tobytes()),
        xxhash.xxh3_64_digest((value + 1).tobytes()),
    ]
    # a format 1 hangar.json names no scheme: BLAKE2b-64
    old = {k: v for k, v in info.to_dict().items() if k != "sample_digest"}
    assert RepositoryInfo.from_dict({**old, "format_version": 1}).sample_digest == "blake2b-64"


@pytest.mark.parametrize(
    "values",
    [
        ["a" * 40, "b" * 40, "0123456789abcdef" * 2 + "01234567"],  # hex digests: one width
        ["ab", "abc", ""],  # widths differ
        ["é" * 4, "abcd"],  # not ASCII
        [],
    ],
)
def test_taken_strings_match_arrow_of_the_same_values(values: list[str]) -> None:
    import pyarrow as pa

    from hangar.format.manifest import _taken_strings

    index = np.array([i % len(values) for i in range(50)] if values else [], np.int64)
    got = _taken_strings(values, index)
    want = pa.array([values[i] for i in index.tolist()], pa.string())
    assert got.equals(want)
    assert got.to_pylist() == want.to_pylist()
    assert got.null_count == 0


def test_segment_column_encodings() -> None:
    """Digests (nearly all distinct) are stored plain; chunk names and checks, which
    repeat, as dictionaries; keys and offsets delta-encoded."""
    import io

    import pyarrow.parquet as pq

    rows = [(i, None, Entry(i.to_bytes(8, "little"),
                            SampleLocation("c" * 40, i // 100 * 900, 900, "f" * 16, i % 100 * 9, 9),
                            None)) for i in range(1000)]  # fmt: skip
    meta = pq.ParquetFile(io.BytesIO(encode_segment(rows))).metadata.row_group(0)
    encodings = {meta.column(i).path_in_schema: meta.column(i).encodings
                 for i in range(meta.num_columns)}  # fmt: skip
    assert not any("DICTIONARY" in e for e in encodings["digest"])
    assert any("DICTIONARY" in e for e in encodings["chunk"])
    assert any("DICTIONARY" in e for e in encodings["block_check"])
    assert "DELTA_BINARY_PACKED" in encodings["key_int"]
    assert "DELTA_BINARY_PACKED" in encodings["item_offset"]


def test_pack_uniform_with_a_helper_thread_packs_the_same_chunks() -> None:
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    from hangar.format.chunks import pack_uniform

    codec = BlockCodec.from_metadata(codecs_from_backend_options(None, np.dtype(np.uint8)),
                                     np.dtype(np.uint8))  # fmt: skip
    rows = np.random.default_rng(1).integers(0, 9, (3000, 100), dtype=np.uint8)
    alone: dict[str, bytes] = {}
    helped: dict[str, bytes] = {}
    with ThreadPoolExecutor(1) as helper:
        runs = pack_uniform(rows, codec, 2_000, 20_000, alone.__setitem__)
        same = pack_uniform(rows, codec, 2_000, 20_000, helped.__setitem__, helper=helper)
        assert same == runs
        assert helped == alone
        assert len(runs) == 150  # 20 samples a block, 10 blocks a chunk
        for r in runs[::7]:  # every block decodes to its samples
            block = codec.decode(alone[r.chunk][r.block_offset : r.block_offset + r.block_size])
            assert block.tobytes() == rows[runs.index(r) * 20 :][: r.samples].tobytes()

        calls: list[str] = []

        class Failing:
            def blocks_encoder(self, nbytes: int) -> Any:
                encode = codec.blocks_encoder(nbytes)

                def failing(flat: np.ndarray) -> list[bytes]:
                    me = threading.current_thread().name
                    calls.append(me)
                    if me.startswith("Thread"):  # the helper's half is slow
                        time.sleep(0.005)
                    elif calls.count(me) == 2:
                        raise MemoryError("injected")
                    return encode(flat)

                return failing

        with pytest.raises(MemoryError, match="injected"):
            pack_uniform(rows, Failing(), 2_000, 20_000, helped.__setitem__, helper=helper)
        done = len(calls)
        time.sleep(0.05)
        assert len(calls) == done  # the helper was stopped and waited for: nothing running
        assert 1 <= sum(c.startswith("Thread") for c in calls) < 150 // 8  # some calls, not all


def test_packing_taken_rows_stores_what_packing_them_copied_out_does() -> None:
    from concurrent.futures import ThreadPoolExecutor

    from hangar.format.chunks import pack_uniform, start_uniform

    codec = BlockCodec.from_metadata(codecs_from_backend_options(None, np.dtype(np.uint8)),
                                     np.dtype(np.uint8))  # fmt: skip
    rows = np.random.default_rng(2).integers(0, 9, (700, 100), dtype=np.uint8)
    take = np.flatnonzero(np.random.default_rng(3).random(700) < 0.6)
    copied: dict[str, bytes] = {}
    taken: dict[str, bytes] = {}
    runs = pack_uniform(rows[take], codec, 2_000, 20_000, copied.__setitem__)
    with ThreadPoolExecutor(1) as helper:
        packing = start_uniform(rows, codec, 2_000, 20_000, helper=helper, take=take)
        assert packing.finish(taken.__setitem__) == runs
    assert taken == copied
    assert sum(r.samples for r in runs) == len(take)
