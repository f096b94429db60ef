"""The TensorRT engine cache: keys, the file format, stale and corrupt entries, concurrent builders."""

import logging
import multiprocessing
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from vqhps_ros import atomic_files
from vqhps_ros.errors import EngineError, EngineOutOfMemory
from vqhps_ros.runtime import CacheEntryError, EngineCache, EngineKey
from vqhps_ros.runtime.engine_cache import pack_entry, unpack_entry

KEY = EngineKey(onnx_sha256="ab" * 32, tensorrt_version="8.6.1.6", gpu_name="Orin", compute_capability=(8, 7),
                precision="fp16", batch_profile=(1, 2, 8))
PAYLOAD = b"serialized engine " * 100


def load_ok(payload: bytes) -> bytes:
    """A runtime that accepts any engine it is given (returns the 'engine object')."""
    return payload


def test_every_field_changes_the_key_and_the_file_name():
    variants = [replace(KEY, onnx_sha256="cd" * 32), replace(KEY, tensorrt_version="10.3.0"),
                replace(KEY, gpu_name="NVIDIA H200"), replace(KEY, compute_capability=(9, 0)),
                replace(KEY, precision="fp32"), replace(KEY, batch_profile=(1, 4, 8))]
    names = {KEY.file_name} | {variant.file_name for variant in variants}
    assert len(names) == 7
    assert KEY.file_name.startswith("vqhps-fp16-b1-8-") and KEY.file_name.endswith(".engine")
    assert EngineKey.from_dict(KEY.to_dict()) == KEY
    assert KEY.digest == replace(KEY).digest  # deterministic


def test_timing_caches_are_shared_by_graphs_but_not_by_gpus_or_versions():
    assert replace(KEY, onnx_sha256="cd" * 32, precision="fp32").timing_cache_name == KEY.timing_cache_name
    assert replace(KEY, gpu_name="Xavier").timing_cache_name != KEY.timing_cache_name
    assert replace(KEY, tensorrt_version="10.3").timing_cache_name != KEY.timing_cache_name


def test_entry_round_trip():
    assert unpack_entry(pack_entry(KEY, PAYLOAD), KEY, "entry") == PAYLOAD


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda data: data[: len(data) // 2], "payload bytes do not match"),
        (lambda data: data[:10], "truncated header"),
        (lambda data: b"PLANFILE" + data[8:], "does not start with the vqhps_ros engine marker"),
        (lambda data: data[:-1] + bytes([data[-1] ^ 1]), "do not match the header"),
        (lambda data: data[:12] + b"x" + data[13:], "unreadable header"),
        (lambda data: b"", "does not start with"),
    ],
)
def test_corrupt_entries_are_recognised(damage, message):
    with pytest.raises(CacheEntryError, match=message):
        unpack_entry(damage(pack_entry(KEY, PAYLOAD)), KEY, "entry")


def test_an_entry_of_another_key_is_stale():
    other = replace(KEY, gpu_name="Xavier", tensorrt_version="8.5.2")
    with pytest.raises(CacheEntryError, match=r"is stale: it holds the fp16 engine .* Xavier .* TensorRT 8\.5\.2"):
        unpack_entry(pack_entry(other, PAYLOAD), KEY, "entry")


class CountingBuilder:
    def __init__(self, payload: bytes = PAYLOAD, delay: float = 0.0):
        self.payload, self.delay, self.calls = payload, delay, 0
        self.lock = threading.Lock()

    def __call__(self) -> bytes:
        with self.lock:
            self.calls += 1
        time.sleep(self.delay)
        return self.payload


def test_missing_entry_is_built_then_found(tmp_path):
    cache = EngineCache(tmp_path / "engines")
    build = CountingBuilder()
    first = cache.load_or_build(KEY, build, load_ok)
    assert (first.engine, first.built, first.path) == (PAYLOAD, True, tmp_path / "engines" / KEY.file_name)
    second = cache.load_or_build(KEY, build, load_ok)
    assert (second.engine, second.built, build.calls) == (PAYLOAD, False, 1)


def test_another_gpu_or_tensorrt_gets_its_own_engine(tmp_path):
    cache = EngineCache(tmp_path)
    build = CountingBuilder()
    cache.load_or_build(KEY, build, load_ok)
    cache.load_or_build(replace(KEY, gpu_name="Xavier"), build, load_ok)
    cache.load_or_build(replace(KEY, tensorrt_version="10.3.0"), build, load_ok)
    assert build.calls == 3 and len(list(tmp_path.glob("*.engine"))) == 3


def test_corrupt_entry_is_rebuilt_with_a_warning(tmp_path, caplog):
    cache = EngineCache(tmp_path)
    path = cache.write(KEY, b"old engine")
    path.write_bytes(path.read_bytes()[:-3])  # a copy cut short
    with caplog.at_level(logging.WARNING, logger="vqhps_ros.runtime.engine_cache"):
        result = cache.load_or_build(KEY, CountingBuilder(), load_ok)
    assert result.built and result.engine == PAYLOAD
    assert "is corrupt" in caplog.text and "rebuilding it" in caplog.text
    assert cache.read(KEY) == PAYLOAD


def test_renamed_entry_of_another_key_is_rebuilt(tmp_path, caplog):
    cache = EngineCache(tmp_path)
    other = replace(KEY, gpu_name="Xavier")
    cache.path_for(KEY).parent.mkdir(parents=True, exist_ok=True)
    cache.path_for(KEY).write_bytes(pack_entry(other, b"xavier engine"))
    with caplog.at_level(logging.WARNING, logger="vqhps_ros.runtime.engine_cache"):
        result = cache.load_or_build(KEY, CountingBuilder(), load_ok)
    assert result.built and "is stale" in caplog.text


def test_engine_the_runtime_refuses_is_rebuilt(tmp_path, caplog):
    cache = EngineCache(tmp_path)
    cache.write(KEY, b"engine of an older TensorRT")

    def load(payload: bytes):
        return None if payload.startswith(b"engine of an older") else payload  # what deserialize_cuda_engine does

    with caplog.at_level(logging.WARNING, logger="vqhps_ros.runtime.engine_cache"):
        result = cache.load_or_build(KEY, CountingBuilder(), load)
    assert result.built and result.engine == PAYLOAD and "TensorRT refuses" in caplog.text


def test_a_fresh_engine_that_does_not_load_is_an_error(tmp_path):
    with pytest.raises(EngineError, match="cannot load the engine it has just built"):
        EngineCache(tmp_path).load_or_build(KEY, CountingBuilder(), lambda payload: None)


def test_out_of_memory_while_loading_is_not_mistaken_for_a_stale_engine(tmp_path):
    cache = EngineCache(tmp_path)
    cache.write(KEY, PAYLOAD)

    def load(payload):
        raise EngineOutOfMemory("no device memory")

    build = CountingBuilder()
    with pytest.raises(EngineOutOfMemory):
        cache.load_or_build(KEY, build, load)
    assert build.calls == 0


def test_failed_build_leaves_no_entry_and_keeps_the_old_file(tmp_path):
    cache = EngineCache(tmp_path)
    path = cache.path_for(KEY)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"garbage")

    def broken_build():
        raise EngineError("TensorRT could not build the engine")

    with pytest.raises(EngineError, match="could not build"):
        cache.load_or_build(KEY, broken_build, load_ok)
    assert path.read_bytes() == b"garbage"
    assert sorted(entry.name for entry in tmp_path.iterdir() if not entry.name.endswith(".lock")) == [path.name]


def test_disk_full_while_writing_leaves_no_half_engine(tmp_path, monkeypatch):
    cache = EngineCache(tmp_path)

    def disk_full(descriptor):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic_files.os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space left"):
        cache.load_or_build(KEY, CountingBuilder(), load_ok)
    assert not cache.path_for(KEY).exists()
    assert not [entry for entry in tmp_path.iterdir() if entry.name.endswith(".tmp")]


def test_racing_threads_build_once_and_leave_one_valid_engine(tmp_path):
    cache = EngineCache(tmp_path)
    build = CountingBuilder(delay=0.2)
    results = []
    threads = [threading.Thread(target=lambda: results.append(cache.load_or_build(KEY, build, load_ok)))
               for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert build.calls == 1
    assert sorted(result.built for result in results) == [False, False, False, True]
    assert all(result.engine == PAYLOAD for result in results)
    assert cache.read(KEY) == PAYLOAD
    assert [entry.name for entry in tmp_path.iterdir() if entry.suffix == ".engine"] == [KEY.file_name]


def _build_in_process(directory: str, log: str, payload: bytes) -> None:
    def build():
        with open(log, "a") as stream:
            stream.write("built\n")
        time.sleep(0.3)
        return payload

    EngineCache(directory).load_or_build(KEY, build, load_ok)


def test_racing_processes_build_once_and_leave_one_valid_engine(tmp_path):
    log = tmp_path / "builds.log"
    context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
    processes = [context.Process(target=_build_in_process, args=(str(tmp_path / "engines"), str(log), PAYLOAD))
                 for _ in range(2)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=60)
    assert [process.exitcode for process in processes] == [0, 0]
    assert log.read_text() == "built\n"
    assert EngineCache(tmp_path / "engines").read(KEY) == PAYLOAD


def test_builders_without_a_lock_still_leave_one_whole_engine(tmp_path, monkeypatch):
    """Where fcntl is missing both builders build; the renames are atomic, so the file is one complete engine."""
    monkeypatch.setattr("vqhps_ros.runtime.engine_cache.fcntl", None)
    cache = EngineCache(tmp_path)
    payloads = [b"engine A " * 5000, b"engine B " * 5000]
    threads = [threading.Thread(target=cache.load_or_build, args=(KEY, CountingBuilder(payload, 0.1), load_ok))
               for payload in payloads]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert cache.read(KEY) in payloads
    assert not [entry for entry in tmp_path.iterdir() if entry.name.endswith(".tmp")]


def test_timing_cache_round_trip(tmp_path):
    cache = EngineCache(tmp_path / "new")
    assert cache.read_timing_cache(KEY) is None
    cache.write_timing_cache(KEY, b"timings")
    assert cache.read_timing_cache(replace(KEY, precision="fp32")) == b"timings"
    cache.write_timing_cache(KEY, b"")  # nothing to keep: the file stays
    assert Path(tmp_path / "new" / KEY.timing_cache_name).read_bytes() == b"timings"
