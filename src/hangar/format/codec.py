"""Encoding blocks of samples with Zarr v3 codecs (implemented by numcodecs).

A block is the concatenation of some samples of one column, as a 1-D array of
the column's dtype (bytes for str and bytes columns). It is encoded by the
schema's codec chain, which is written as Zarr v3 codec metadata: an
``array -> bytes`` codec (``bytes``, little endian) followed by ``bytes ->
bytes`` codecs (``blosc``, ``zstd``, ``gzip``). Encoded blocks are therefore
valid Zarr v3 chunks of a 1-D array and any Zarr v3 reader can decode them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numcodecs
import numpy as np

from hangar.exceptions import InvalidKeyError
from hangar.format.blosc_frames import FramedBlosc, PartialFrame

__all__ = ["BlockCodec", "codecs_from_backend_options"]

_SHUFFLE = {"noshuffle": 0, "shuffle": 1, "bitshuffle": 2}
_HANGAR_SHUFFLE = {None: "noshuffle", "none": "noshuffle", "byte": "shuffle", "bit": "bitshuffle"}


def _bytes_codec(name: str, conf: dict[str, Any], itemsize: int) -> Any:
    if name == "blosc":
        return numcodecs.Blosc(
            cname=conf.get("cname", "zstd"),
            clevel=int(conf.get("clevel", 5)),
            shuffle=_SHUFFLE[conf.get("shuffle", "shuffle")],
            blocksize=int(conf.get("blocksize", 0)),
        )
    if name == "zstd":
        return numcodecs.Zstd(level=int(conf.get("level", 0)))
    if name == "gzip":
        return numcodecs.GZip(level=int(conf.get("level", 5)))
    raise InvalidKeyError(f"unsupported codec {name!r}: use bytes, blosc, zstd or gzip")


@dataclass(frozen=True)
class BlockCodec:
    """Encode and decode blocks for one dtype with one Zarr v3 codec chain."""

    dtype: np.dtype[Any]
    codecs: tuple[Any, ...]

    @classmethod
    def from_metadata(cls, metadata: Sequence[dict[str, Any]], dtype: np.dtype[Any]) -> BlockCodec:
        """Build the codec chain described by Zarr v3 codec metadata."""
        if not metadata or metadata[0].get("name") != "bytes":
            raise InvalidKeyError("the first codec must be the Zarr v3 'bytes' codec")
        endian = metadata[0].get("configuration", {}).get("endian", "little")
        if endian != "little":
            raise InvalidKeyError("only little-endian 'bytes' codecs are supported")
        chain = []
        for m in metadata[1:]:
            conf = dict(m.get("configuration", {}))
            chain.append(_bytes_codec(m["name"], conf, dtype.itemsize))
        return cls(dtype.newbyteorder("<") if dtype.itemsize > 1 else dtype, tuple(chain))

    def encode(self, block: np.ndarray[Any, Any]) -> bytes:
        """Encode a 1-D block (already of this codec's dtype and little endian)."""
        buf: Any = block
        if not self.codecs:
            return block.tobytes()
        for codec in self.codecs:
            buf = codec.encode(buf)
        return bytes(buf)

    def blocks_encoder(self, block_nbytes: int) -> Callable[[np.ndarray[Any, Any]], list[bytes]]:
        """A function that encodes a 1-D array as consecutive blocks of ``block_nbytes`` raw
        bytes each (the last may be shorter), each decodable by :meth:`decode` alone.

        With Blosc alone (the default chain) that is one Blosc call for all of
        them (:class:`~hangar.format.blosc_frames.FramedBlosc`): one release of
        the GIL, and fewer calls. Otherwise one :meth:`encode` per block.
        """
        if len(self.codecs) == 1:
            framed = FramedBlosc.for_codec(self.codecs[0], block_nbytes, self.dtype)
            if framed is not None:
                return framed.encode
        step = max(1, block_nbytes // self.dtype.itemsize)
        encode = self.encode

        def each(flat: np.ndarray[Any, Any]) -> list[bytes]:
            return [encode(flat[i : i + step]) for i in range(0, len(flat), step)]

        return each

    def partial(self, data: bytes) -> PartialFrame | None:
        """An encoded block to decode in parts, as reads need them (see
        :class:`~hangar.format.blosc_frames.PartialFrame`); None unless the chain is
        Blosc alone and the block has several internal blocks (decode it whole)."""
        if len(self.codecs) != 1 or type(self.codecs[0]) is not numcodecs.Blosc:
            return None
        return PartialFrame.of(data, self.codecs[0], self.dtype)

    def decode(self, data: bytes) -> np.ndarray[Any, Any]:
        """Decode an encoded block back to its 1-D array."""
        buf: Any = data
        for codec in reversed(self.codecs):
            buf = codec.decode(buf)
        return np.frombuffer(buf, dtype=self.dtype)


def _chain_from_options(backend_options: Any) -> list[dict[str, Any]]:
    from hangar.format.schema import DEFAULT_CODECS

    if backend_options is None:
        return [dict(c) for c in DEFAULT_CODECS]
    if isinstance(backend_options, dict) and "codecs" in backend_options:
        return [dict(c) for c in backend_options["codecs"]]
    if isinstance(backend_options, list | tuple):
        return [dict(c) for c in backend_options]
    if isinstance(backend_options, dict) and "id" in backend_options:
        conf = {k: v for k, v in backend_options.items() if k != "id"}
        name = backend_options["id"]
        if name == "blosc" and isinstance(conf.get("shuffle"), int):
            conf["shuffle"] = {0: "noshuffle", 1: "shuffle", 2: "bitshuffle"}[conf["shuffle"]]
        return [{"name": name, "configuration": conf}]
    if isinstance(backend_options, dict) and "complib" in backend_options:
        return _chain_from_hangar(backend_options)
    raise InvalidKeyError(
        f"backend_options {backend_options!r} not understood: pass Zarr v3 codec "
        "metadata, a numcodecs config with 'id', or Hangar's complib/complevel/shuffle"
    )


def _chain_from_hangar(options: dict[str, Any]) -> list[dict[str, Any]]:
    complib = options.get("complib")
    level = int(options.get("complevel", 5))
    shuffle = _HANGAR_SHUFFLE.get(options.get("shuffle", "byte"), "shuffle")
    if complib is None:
        return []
    if str(complib).startswith("blosc:"):
        cname = str(complib).split(":", 1)[1]
        conf = {"cname": cname, "clevel": level, "shuffle": shuffle, "blocksize": 0}
        return [{"name": "blosc", "configuration": conf}]
    if complib == "gzip":
        return [{"name": "gzip", "configuration": {"level": level}}]
    raise InvalidKeyError(f"unsupported complib {complib!r}")


def codecs_from_backend_options(
    backend_options: dict[str, Any] | Sequence[dict[str, Any]] | None, dtype: np.dtype[Any]
) -> tuple[dict[str, Any], ...]:
    """Turn what a user passes as ``backend_options`` into Zarr v3 codec metadata.

    Accepted forms:

    - ``None``: the default (Blosc zstd level 1, byte shuffle);
    - a list of Zarr v3 codec metadata dicts, or ``{"codecs": [...]}``; a
      leading ``bytes`` codec is added when missing;
    - a numcodecs config, e.g. ``{"id": "blosc", "cname": "lz4", "clevel": 5}``
      or ``{"id": "zstd", "level": 3}``;
    - Hangar's HDF5-style options ``{"complib": "blosc:zstd", "complevel": 5,
      "shuffle": "byte"}`` (``complib`` ``"blosc:<cname>"``, ``"gzip"`` or ``None``).

    Raises
    ------
    InvalidKeyError
        (a ``ValueError``) for anything else, naming what was not understood.
    """
    chain = _chain_from_options(backend_options)
    if not chain or chain[0].get("name") != "bytes":
        chain.insert(0, {"name": "bytes", "configuration": {"endian": "little"}})
    for c in chain:
        if not isinstance(c.get("name"), str):
            raise InvalidKeyError(f"codec metadata needs a 'name': {c!r}")
        if c["name"] == "blosc":
            conf = dict(c.get("configuration", {}))
            conf["typesize"] = dtype.itemsize
            conf.setdefault("blocksize", 0)
            c["configuration"] = conf
    # build once to reject unknown codecs and bad settings now, not at first write
    BlockCodec.from_metadata(chain, dtype)
    return tuple(chain)
