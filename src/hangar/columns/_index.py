"""A column's index, loaded one manifest segment at a time.

The key space of a column is cut by its manifest segments: segment ``i`` of a
commit covers the keys from its first key up to (not including) the first key
of segment ``i + 1``; keys before the first segment belong to segment 0 and
keys after the last one to the last. Each such *bucket* is a ``dict`` read
from its segment the first time a key in it is written or its keys are
iterated; a key looked up before that is found through a :class:`SegmentView`
of the segment (its columns, no entry per row), read at the first lookup. So
opening a checkout reads no manifest, a read touches one segment, and a commit
rewrites only the buckets whose keys changed (DESIGN.md, invariant 5).
"""

from __future__ import annotations

import bisect
from collections.abc import Collection, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from hangar._gcpause import gc_paused
from hangar.format.manifest import (
    Entry,
    Key,
    Row,
    SegmentLocations,
    SegmentRef,
    decode_columns,
    decode_locations,
)
from hangar.format.names import manifest_key
from hangar.store import Store

__all__ = ["SegmentIndex", "bucket_from_rows"]

_READERS = 8  # segments read at once by a scan


def bucket_from_rows(rows: Iterable[Row], nested: bool) -> dict[Key, Any]:
    """A bucket (``key -> entry``, or ``key -> {subkey -> entry}``) from manifest rows."""
    bucket: dict[Key, Any] = {}
    if nested:
        for key, subkey, entry in rows:
            bucket.setdefault(key, {})[subkey] = entry
    else:
        bucket.update((key, entry) for key, _, entry in rows)
    return bucket


class SegmentView:
    """Lookups in a flat segment nobody changed: its rows stay columns until one is asked for.

    Reading a few keys of a segment (a cold random read) then costs a fifth of
    decoding every row into an entry; the first change to the segment's keys,
    or an iteration over them, decodes it whole into a bucket (``dict``).
    """

    __slots__ = ("_position", "data", "locations")

    def __init__(self, data: bytes, digest: str) -> None:
        self._set(data, decode_locations(data, digest, entries=True))

    def _set(self, data: bytes, locations: SegmentLocations) -> None:
        self.data = data  # to decode the bucket from, when one is needed
        self.locations = locations
        self._position: dict[Key, int] | None = None

    @property
    def position(self) -> dict[Key, int]:
        """``key -> row``, made at the first lookup (a commit makes many views, reads few)."""
        position = self._position
        if position is None:
            keys = self.locations.keys
            position = self._position = dict(zip(keys, range(len(keys)), strict=True))
        return position

    @classmethod
    def of(cls, data: bytes, locations: SegmentLocations) -> SegmentView:
        """The view of a segment this process just encoded from ``locations`` (with digests)."""
        view = cls.__new__(cls)
        view._set(data, locations)
        return view

    def __getitem__(self, key: Key) -> Entry:
        return self.locations.entry(self.position[key])

    def get(self, key: Key, default: Any = None) -> Any:
        row = self.position.get(key)
        return default if row is None else self.locations.entry(row)

    def __contains__(self, key: object) -> bool:
        return key in self.position


class SegmentIndex:
    """``key -> slot`` (flat) or ``key -> {subkey -> slot}`` (nested) of one column.

    Behaves like the ``dict`` it replaces (get, ``[]``, ``in``, ``del``,
    iteration, ``len``, ``update``, ``setdefault``) but loads segments lazily.
    Keys iterate bucket by bucket: a bucket's stored keys in key order, then
    the keys added to it in the order they were added.
    """

    def __init__(
        self,
        store: Store,
        segments: tuple[SegmentRef, ...],
        nested: bool,
        count: int,
        *,
        loaded: dict[str, dict[Key, Any]] | None = None,
        written: dict[str, list[Row] | SegmentView] | None = None,
    ) -> None:
        """``loaded``: buckets already decoded, by segment digest; ``written``: segments
        this process just wrote, by digest: their rows (turned into buckets when first
        needed) or a view of them (flat segments encoded from arrays)."""
        self._store = store
        self._segments = segments
        self._nested = nested
        self._count = count  # keys in the segments
        self._int_firsts = [s.first for s in segments if type(s.first) is int]
        self._str_firsts = [s.first for s in segments if type(s.first) is str]
        nbuckets = max(1, len(segments))
        self._buckets: list[dict[Key, Any] | None] = [None] * nbuckets
        self._base_len = [0] * nbuckets  # keys a bucket had when it was loaded
        if not segments:
            self._buckets[0] = {}
        for i, seg in enumerate(segments):
            if loaded is not None and seg.digest in loaded:
                self._buckets[i] = loaded[seg.digest]
                self._base_len[i] = len(loaded[seg.digest])
        self._rows: dict[int, list[Row]] = {}
        self._views: dict[int, SegmentView] = {}  # lookups in segments not loaded
        for i, seg in enumerate(segments):
            done = written.get(seg.digest) if written else None
            if done is None or self._buckets[i] is not None:
                continue
            if isinstance(done, SegmentView):
                self._views[i] = done
            else:
                self._rows[i] = done
        #: the only bucket, when there is one: the fast path of small columns
        self.single: dict[Key, Any] | None = self._buckets[0] if nbuckets == 1 else None

    # ------------------------------------------------------------ buckets
    @property
    def segments(self) -> tuple[SegmentRef, ...]:
        return self._segments

    @property
    def nbuckets(self) -> int:
        return len(self._buckets)

    def bucket_of(self, key: Key) -> int:
        """The bucket number of ``key`` (loading nothing)."""
        if len(self._buckets) == 1:
            return 0
        if type(key) is int:
            i = bisect.bisect_right(self._int_firsts, key) - 1
        else:
            i = len(self._int_firsts) + bisect.bisect_right(self._str_firsts, key) - 1
        return max(i, 0)

    def buckets_of(self, keys: Collection[Key]) -> set[int]:
        """The bucket numbers of ``keys`` (loading nothing)."""
        if len(self._buckets) == 1:
            return {0} if keys else set()
        bucket_of = self.bucket_of
        return {bucket_of(key) for key in keys}

    def bucket(self, i: int) -> dict[Key, Any]:
        """Bucket ``i``, read from its segment if it is not loaded yet."""
        bucket = self._buckets[i]
        if bucket is None:
            rows = self._rows.pop(i, None)
            view = self._views.pop(i, None)
            if rows is not None:  # written by this process: no read, no decoding
                with gc_paused():
                    bucket = self._put_bucket(i, bucket_from_rows(rows, self._nested))
            elif view is not None:  # checked against its digest when the view was made
                bucket = self._install(i, view.data, checked=True)
            else:
                bucket = self._install(i, self._store.get(manifest_key(self._segments[i].digest)))
        return bucket

    def _lookup(self, key: Key) -> dict[Key, Any] | SegmentView:
        """Where to look ``key`` up without changing it: its bucket, or a view of its segment."""
        single = self.single
        if single is not None:
            return single
        i = self.bucket_of(key)
        bucket = self._buckets[i]
        if bucket is not None:
            return bucket
        view = self._views.get(i)
        if view is None:
            if self._nested or i in self._rows:
                return self.bucket(i)
            digest = self._segments[i].digest
            view = self._views[i] = SegmentView(self._store.get(manifest_key(digest)), digest)
        return view

    def viewed(self) -> dict[int, SegmentLocations]:
        """The decoded locations of the segments looked up through views (not loaded)."""
        return {i: view.locations for i, view in self._views.items()}

    def _install(self, i: int, data: bytes, checked: bool = False) -> dict[Key, Any]:
        """Decode segment ``i`` from its bytes into its bucket."""
        with gc_paused():
            keys, subkeys, entries = decode_columns(
                data, None if checked else self._segments[i].digest
            )
            if self._nested:
                bucket = bucket_from_rows(zip(keys, subkeys, entries, strict=True), nested=True)
            else:
                bucket = dict(zip(keys, entries, strict=True))
        return self._put_bucket(i, bucket)

    def _put_bucket(self, i: int, bucket: dict[Key, Any]) -> dict[Key, Any]:
        self._buckets[i] = bucket
        self._base_len[i] = len(bucket)
        if len(self._buckets) == 1:
            self.single = bucket
        return bucket

    def load_all(self) -> None:
        """Load every bucket not loaded yet, reading their segments concurrently.

        Scans need them all; on an object store each read is a round trip,
        so they overlap instead of following one another.
        """
        for i in [*self._rows, *self._views]:
            self.bucket(i)
        missing = [i for i, b in enumerate(self._buckets) if b is None]
        if len(missing) < 2:
            return
        store, segments = self._store, self._segments
        with ThreadPoolExecutor(min(_READERS, len(missing))) as pool:
            datas = pool.map(lambda i: store.get(manifest_key(segments[i].digest)), missing)
            for i, data in zip(missing, datas, strict=True):
                self._install(i, data)

    def _of(self, key: Key) -> dict[Key, Any]:
        single = self.single
        if single is not None:
            return single
        return self.bucket(self.bucket_of(key))

    def fast_target(self) -> dict[Key, Any] | SegmentIndex:
        """What bulk writers should set keys in: the only bucket (loaded) if there is one."""
        if len(self._buckets) == 1:
            return self.bucket(0)
        return self

    def loaded(self) -> Iterator[tuple[int, dict[Key, Any]]]:
        """The buckets loaded so far, with their numbers."""
        for i, bucket in enumerate(self._buckets):
            if bucket is not None:
                yield i, bucket

    # ------------------------------------------------------ dict interface
    def __len__(self) -> int:
        n = self._count
        for i, bucket in enumerate(self._buckets):
            if bucket is not None:
                n += len(bucket) - self._base_len[i]
        return n

    def __getitem__(self, key: Key) -> Any:
        return self._lookup(key)[key]

    def get(self, key: Key, default: Any = None) -> Any:
        return self._lookup(key).get(key, default)

    def __contains__(self, key: object) -> bool:
        if type(key) is not int and type(key) is not str:
            return False
        return key in self._lookup(key)

    def __setitem__(self, key: Key, value: Any) -> None:
        self._of(key)[key] = value

    def __delitem__(self, key: Key) -> None:
        del self._of(key)[key]

    def setdefault(self, key: Key, default: Any) -> Any:
        return self._of(key).setdefault(key, default)

    def update(self, pairs: Iterable[tuple[Key, Any]]) -> None:
        single = self.single
        if single is not None:
            single.update(pairs)
            return
        for key, value in pairs:
            self.bucket(self.bucket_of(key))[key] = value

    def __iter__(self) -> Iterator[Key]:
        self.load_all()
        for i in range(len(self._buckets)):
            yield from self.bucket(i)

    def keys(self) -> Iterator[Key]:
        return iter(self)

    def values(self) -> Iterator[Any]:
        self.load_all()
        for i in range(len(self._buckets)):
            yield from self.bucket(i).values()

    def items(self) -> Iterator[tuple[Key, Any]]:
        self.load_all()
        for i in range(len(self._buckets)):
            yield from self.bucket(i).items()
