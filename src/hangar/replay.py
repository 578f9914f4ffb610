"""Replaying a staging journal entry into a writer's columns.

A writer that takes a branch adopts the live journal entries of the writers
before it (:mod:`hangar.format.staging`) and replays them, in order, onto the
columns of the commit they were staged on: columns added and dropped,
samples set (inline bytes, or already packed into chunks) and deleted.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from hangar.columns._engine import ColumnEngine, Pending
from hangar.columns._table import batch_from_runs
from hangar.exceptions import HangarError, InvalidKeyError
from hangar.format.chunks import Run, SampleLocation, expand_runs
from hangar.format.manifest import Entry, Key, check_key
from hangar.format.schema import ColumnSchema
from hangar.format.staging import JournalEntry

if TYPE_CHECKING:
    from hangar.packing import PackedRows

__all__ = ["packed_op", "replay_entry"]

NewEngine = Callable[[str, ColumnSchema], ColumnEngine]


def replay_entry(
    entry: JournalEntry, columns: dict[str, ColumnEngine], new_engine: NewEngine, branch: str
) -> bool:
    """Apply ``entry``'s operations to ``columns``; True if it added or dropped a column."""
    blob = memoryview(entry.blob)
    schemas_changed = False
    for op in entry.ops:
        kind = op[0]
        if kind == "add":
            columns[op[1]] = new_engine(op[1], ColumnSchema.from_dict(op[2]))
            schemas_changed = True
        elif kind == "drop":
            dropped = columns.pop(op[1], None)
            if dropped is not None:
                dropped.dropped = True
            schemas_changed = True
        elif kind == "set":
            try:
                _replay_set(columns[op[1]], op, blob)
            except (TypeError, ValueError, IndexError) as exc:
                raise _malformed(branch) from exc
        elif kind == "setruns":
            _, name, keys, subkeys, digests_hex, shapes, runs, *same = op
            locs = _with_repeats(
                expand_runs([Run(*r) for r in runs]), same[0] if same else [], branch
            )
            _replay_packed(columns[name], keys, subkeys, digests_hex, shapes, locs, branch)
        elif kind == "setpacked":
            _replay_rows(columns[op[1]], op, blob, branch)
        elif kind == "setmany":  # written by builds before "setruns" existed
            _, name, keys, subkeys, digests_hex, shapes, cols = op
            locs = [SampleLocation(*loc) for loc in zip(*cols, strict=True)]
            _replay_packed(columns[name], keys, subkeys, digests_hex, shapes, locs, branch)
        elif kind == "del":
            try:
                _checked_keys([op[2]], [op[3]])
            except (TypeError, ValueError) as exc:
                raise _malformed(branch) from exc
            with contextlib.suppress(KeyError):
                columns[op[1]].del_slot(op[2], op[3])
        else:
            raise HangarError(
                f"staging journal of branch {branch!r}: unknown operation {kind!r} "
                "(written by a newer hangar?)"
            )
    return schemas_changed


def _malformed(branch: str) -> HangarError:
    return HangarError(f"staging journal of branch {branch!r}: a malformed entry")


def _with_repeats(
    locs: list[SampleLocation], same: list[list[int]], branch: str
) -> list[SampleLocation]:
    """Locations of every key of a ``setruns`` op whose repeated samples are in ``same``.

    ``locs`` are the packed keys' locations in order; a pair ``[i, j]`` says
    key ``i`` is stored where key ``j`` (an earlier key) is.
    """
    if not same:
        return locs
    try:
        repeated = {int(i): int(j) for i, j in same}
        out: list[SampleLocation] = []
        it = iter(locs)
        for i in range(len(locs) + len(repeated)):
            first = repeated.get(i)
            if first is not None and not 0 <= first < i:
                raise ValueError(first)
            out.append(next(it) if first is None else out[first])
    except (StopIteration, TypeError, ValueError) as exc:
        raise _malformed(branch) from exc
    return out


def _checked_keys(keys: Any, subkeys: Any = None) -> None:
    """Raise InvalidKeyError (a ValueError) unless every key (and subkey) is one a write
    accepts: a journal is read back as written, but a damaged or hand-edited one must not
    carry a key into the index that no write could have put there."""
    if not isinstance(keys, list) or (subkeys is not None and not isinstance(subkeys, list)):
        raise InvalidKeyError("keys of a journal op must be a list")
    for key in keys:
        check_key(key)
    for subkey in subkeys or ():
        if subkey is not None:
            check_key(subkey, "subsample key")


def _replay_set(engine: ColumnEngine, op: list[Any], blob: memoryview) -> None:
    """One sample: already in a chunk (a location), or its bytes inline in the entry."""
    key, subkey = op[2], op[3]  # JSON keeps 1 and "1" apart
    _checked_keys([key], [subkey])
    digest = bytes.fromhex(op[4])
    shape = tuple(op[5]) if op[5] is not None else None
    slot: Entry | Pending
    if op[6] is not None:
        slot = Entry(digest, SampleLocation(*op[6]), shape)
    else:
        off, n = op[7]
        raw = np.frombuffer(blob[off : off + n], dtype=engine.schema.np_dtype).copy()
        slot = Pending(raw, digest, shape)
        engine.unpacked = True
    engine.set_slot(key, subkey, slot)


def _replay_packed(  # noqa: PLR0917
    engine: ColumnEngine,
    keys: list[Key],
    subkeys: list[Key | None] | None,
    digests_hex: str,
    shapes: list[list[int] | None] | None,
    locs: list[SampleLocation],
    branch: str,
) -> None:
    """Index samples a journal entry recorded as packed into chunks."""
    try:
        _checked_keys(keys, subkeys)
        digests = bytes.fromhex(digests_hex)
    except (TypeError, ValueError) as exc:
        raise _malformed(branch) from exc
    if len(locs) != len(keys) or len(digests) != 8 * len(keys):
        raise _malformed(branch)
    new = tuple.__new__
    for i, (key, loc) in enumerate(zip(keys, locs, strict=True)):
        raw_shape = shapes[i] if shapes is not None else None
        shape = tuple(raw_shape) if raw_shape is not None else None
        entry = new(Entry, (digests[8 * i : 8 * i + 8], loc, shape))
        engine.set_slot(key, None if subkeys is None else subkeys[i], entry)


def packed_op(entry: JournalEntry, column: str, packed: PackedRows) -> list[Any]:
    """The ``setpacked`` op of a with-block's packed rows, its arrays inline in ``entry``.

    ``["setpacked", column, keys, digests, runs, same]``: ``keys`` is a list,
    or ``{"int64": [offset, nbytes]}`` when every key is an int, or
    ``{"range": [first, count]}`` when they are ``first, first + 1, ...``
    (a block over ``range(n)``: no key bytes at all); ``digests``
    and ``same`` (pairs ``i, j`` or null) are ``[offset, nbytes]`` of inline
    bytes (8-byte digests; little-endian int64). Several times faster to
    write and replay than the same op in JSON (docs/format.md).
    """
    keys: Any = packed.keys
    if type(keys[0]) is int:
        as_array = packed.int_keys if packed.int_keys is not None else np.array(keys)
        if as_array.dtype.kind == "i":  # every key an int (a str key makes a str array)
            first = int(as_array[0])
            if as_array[-1] - first == len(as_array) - 1 and (np.diff(as_array) == 1).all():
                keys = {"range": [first, len(as_array)]}
            else:
                keys = {"int64": entry.add_inline(as_array.astype("<i8").tobytes())}
    same = None
    if len(packed.same):
        same = entry.add_inline(packed.same.astype("<i8").tobytes())
    digests = entry.add_inline(packed.digests)
    return ["setpacked", column, keys, digests, [list(r) for r in packed.runs], same]


def _inline(blob: memoryview, ref: Any) -> memoryview:
    off, n = (int(x) for x in ref)
    if off < 0 or n < 0 or off + n > len(blob):
        raise ValueError("inline bytes out of the entry")
    return blob[off : off + n]


def _replay_rows(engine: ColumnEngine, op: list[Any], blob: memoryview, branch: str) -> None:
    """A ``setpacked`` op: the rows join the column's staged table, as when packed."""
    try:
        _, _, keys, digests, runs, same = op
        if not engine.takes_rows:
            raise ValueError("packed rows for a column that does not take them")
        if isinstance(keys, dict) and "range" in keys:
            first, count = keys["range"]
            if type(first) is not int or type(count) is not int or first < 0 or count < 1:
                raise ValueError("a range of keys must start at an int >= 0 and hold some")
            keys = list(range(first, first + count))
        elif isinstance(keys, dict):
            keys = np.frombuffer(_inline(blob, keys["int64"]), "<i8").tolist()
            if any(k < 0 for k in keys):
                raise ValueError("a negative key")
        else:
            _checked_keys(keys)
        pairs = None
        if same is not None:
            pairs = np.frombuffer(_inline(blob, same), "<i8").reshape(-1, 2)
        batch = batch_from_runs(keys, bytes(_inline(blob, digests)), [Run(*r) for r in runs], pairs)
    except (TypeError, ValueError, KeyError) as exc:
        raise _malformed(branch) from exc
    engine.index.update(zip(keys, engine.table.add(batch), strict=True))
    engine.changed.update(keys)
