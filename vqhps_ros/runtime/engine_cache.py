"""On-disk cache of TensorRT engines and timing caches: keyed, validated, safe against concurrent builders.

A serialized TensorRT engine only runs with the TensorRT version and the GPU it was built for, so an entry is keyed
by everything that decides its contents (`EngineKey`): the ONNX graph's content hash, the TensorRT version, the GPU
name and compute capability, the precision and the batch profile. The key's digest is part of the file name, and
the key itself is stored in the file's header, next to the payload's sha256 and size:

    MAGIC (8 bytes) | header length (uint32, little endian) | header (UTF-8 JSON) | payload (serialized engine)

`load_or_build` returns a usable engine whatever is on disk: a missing entry is built; a truncated or otherwise
corrupt one, one whose header key differs (copied from another machine, renamed), or one the runtime refuses to
deserialize is rebuilt with a warning. Entries are written to a temporary file and renamed (`atomic_files`), so a
crash or a full disk never leaves a half-written engine under the final name, and builders of the same key are
serialised by an advisory file lock (fcntl, where the platform has it): the second one waits, then finds the first
one's engine instead of building again. Without the lock (or across machines sharing a folder without lock support)
two builders both build and the last rename wins; either way the file is one complete engine.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import struct
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TypeVar

from ..atomic_files import write_bytes_atomically
from ..errors import EngineError, EngineOutOfMemory

try:
    import fcntl
except ImportError:  # not POSIX: builders are not serialised, atomic renames still keep every file whole
    fcntl = None

LOG = logging.getLogger(__name__)

MAGIC = b"VQHPSTRT"
FORMAT_VERSION = 1
_HEADER_LENGTH = struct.Struct("<I")
_MAX_HEADER_BYTES = 1 << 20

T = TypeVar("T")


@dataclass(frozen=True)
class EngineKey:
    """Everything a TensorRT engine depends on. Batch profile: (min, opt, max) persons per call."""

    onnx_sha256: str
    tensorrt_version: str
    gpu_name: str
    compute_capability: tuple[int, int]
    precision: str
    batch_profile: tuple[int, int, int]

    def to_dict(self) -> dict:
        data = asdict(self)
        data["compute_capability"] = list(self.compute_capability)
        data["batch_profile"] = list(self.batch_profile)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> EngineKey:
        return cls(
            onnx_sha256=str(data["onnx_sha256"]),
            tensorrt_version=str(data["tensorrt_version"]),
            gpu_name=str(data["gpu_name"]),
            compute_capability=tuple(int(value) for value in data["compute_capability"]),
            precision=str(data["precision"]),
            batch_profile=tuple(int(value) for value in data["batch_profile"]),
        )

    @property
    def digest(self) -> str:
        """sha256 (hex) of the key's canonical JSON."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()

    @property
    def file_name(self) -> str:
        low, _, high = self.batch_profile
        return f"vqhps-{self.precision}-b{low}-{high}-{self.digest[:20]}.engine"

    @property
    def timing_cache_name(self) -> str:
        """Timing caches depend on TensorRT and the GPU only: every graph built on this machine shares one."""
        device = json.dumps([self.tensorrt_version, self.gpu_name, list(self.compute_capability)])
        return f"timing-{hashlib.sha256(device.encode()).hexdigest()[:20]}.cache"

    def describe(self) -> str:
        major, minor = self.compute_capability
        low, opt, high = self.batch_profile
        return (f"{self.precision} engine of graph {self.onnx_sha256[:12]} for {self.gpu_name} ({major}.{minor}), "
                f"TensorRT {self.tensorrt_version}, batch {low}..{high} (optimised for {opt})")


class CacheEntryError(EngineError):
    """An engine file that cannot be used: corrupt (truncated, bad header, hash mismatch) or stale (other key)."""


def pack_entry(key: EngineKey, payload: bytes) -> bytes:
    header = json.dumps({
        "format": FORMAT_VERSION,
        "key": key.to_dict(),
        "payload_sha256": hashlib.sha256(payload).hexdigest(),
        "payload_bytes": len(payload),
    }, sort_keys=True).encode()  # fmt: skip
    return MAGIC + _HEADER_LENGTH.pack(len(header)) + header + payload


def unpack_entry(data: bytes, key: EngineKey, source: str) -> bytes:
    """The payload of an entry written by `pack_entry` for `key`; CacheEntryError saying what is wrong otherwise."""
    if not data.startswith(MAGIC):
        raise CacheEntryError(f"{source} is corrupt: it does not start with the vqhps_ros engine marker")
    offset = len(MAGIC) + _HEADER_LENGTH.size
    if len(data) < offset:
        raise CacheEntryError(f"{source} is corrupt: truncated header")
    (header_bytes,) = _HEADER_LENGTH.unpack_from(data, len(MAGIC))
    if header_bytes > _MAX_HEADER_BYTES or len(data) < offset + header_bytes:
        raise CacheEntryError(f"{source} is corrupt: truncated header")
    try:
        header = json.loads(data[offset:offset + header_bytes])
        stored_key = EngineKey.from_dict(header["key"])
        expected_sha, expected_size = str(header["payload_sha256"]), int(header["payload_bytes"])
    except (ValueError, KeyError, TypeError) as error:
        raise CacheEntryError(f"{source} is corrupt: unreadable header ({error!r})") from error
    if stored_key != key:
        raise CacheEntryError(f"{source} is stale: it holds the {stored_key.describe()}, not the {key.describe()}")
    payload = data[offset + header_bytes:]
    if len(payload) != expected_size or hashlib.sha256(payload).hexdigest() != expected_sha:
        raise CacheEntryError(f"{source} is corrupt: {len(payload)} payload bytes do not match the header "
                              f"({expected_size} bytes and their sha256)")
    return payload


@dataclass(frozen=True)
class CacheResult:
    """What `load_or_build` returns: the loaded engine object, its file, and whether it was built just now."""

    engine: object
    path: Path
    built: bool


class EngineCache:
    """A folder of engines (created when the first one is written)."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory).expanduser()

    def path_for(self, key: EngineKey) -> Path:
        return self.directory / key.file_name

    # --------------------------------------------------------------------------------------------- engines

    def read(self, key: EngineKey) -> bytes | None:
        """The payload stored for `key`, None when there is none; CacheEntryError when the file is unusable."""
        path = self.path_for(key)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        return unpack_entry(data, key, str(path))

    def write(self, key: EngineKey, payload: bytes) -> Path:
        if not payload:
            raise EngineError("refusing to cache an empty engine")
        return write_bytes_atomically(pack_entry(key, payload), self.path_for(key))

    def load_or_build(self, key: EngineKey, build: Callable[[], bytes], load: Callable[[bytes], T]) -> CacheResult:
        """`load(payload)` of the cached engine for `key`, building and caching it first when needed.

        build() -> serialized engine bytes (minutes on a Jetson). load(payload) -> the runtime's engine object; it
        raises (any exception) or returns None when the runtime refuses the bytes, which counts as stale. A freshly
        built engine that does not load raises EngineError.
        """
        path = self.path_for(key)
        engine = self._load_cached(key, load)
        if engine is not None:
            return CacheResult(engine, path, built=False)
        with self._builder_lock(path):
            engine = self._load_cached(key, load)  # another builder may have finished while this one waited
            if engine is not None:
                return CacheResult(engine, path, built=False)
            LOG.warning("building the TensorRT %s into %s; this takes minutes on a Jetson "
                        "(`vqhps-ros build-engine` builds it ahead of time)", key.describe(), path)
            payload = build()
            self.write(key, payload)
        engine = _loaded_or_none(load, payload)
        if engine is None:
            raise EngineError(f"TensorRT cannot load the engine it has just built ({path})")
        return CacheResult(engine, path, built=True)

    def _load_cached(self, key: EngineKey, load: Callable[[bytes], T]) -> T | None:
        try:
            payload = self.read(key)
        except CacheEntryError as error:
            LOG.warning("engine cache: %s; rebuilding it", error)
            return None
        except OSError as error:
            LOG.warning("engine cache: cannot read %s (%s); rebuilding it", self.path_for(key), error)
            return None
        if payload is None:
            return None
        engine = _loaded_or_none(load, payload)
        if engine is None:
            LOG.warning("engine cache: TensorRT refuses %s (built by another TensorRT or for another GPU?); "
                        "rebuilding it", self.path_for(key))
        return engine

    @contextmanager
    def _builder_lock(self, path: Path) -> Iterator[None]:
        """Exclusive, blocking, per-entry advisory lock (threads and processes alike: one open file each)."""
        if fcntl is None:
            yield
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        handle = os.open(path.parent / f".{path.name}.lock", os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
            os.close(handle)

    # ---------------------------------------------------------------------------------------- timing caches

    def read_timing_cache(self, key: EngineKey) -> bytes | None:
        try:
            return (self.directory / key.timing_cache_name).read_bytes()
        except OSError:
            return None

    def write_timing_cache(self, key: EngineKey, data: bytes) -> None:
        if data:
            write_bytes_atomically(data, self.directory / key.timing_cache_name)


def _loaded_or_none(load: Callable[[bytes], T], payload: bytes) -> T | None:
    try:
        return load(payload)
    except EngineOutOfMemory:
        raise  # not the entry's fault: rebuilding would not help
    except Exception as error:  # the runtime's own error types (tensorrt raises RuntimeError or returns None)
        LOG.debug("engine load failed: %r", error)
        return None
