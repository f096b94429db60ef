"""Small stand-ins for the `tensorrt` and `pycuda.driver` modules, enough to run the TensorRT engine's logic here.

They follow the official Python APIs the engine uses (TensorRT 8.6: bindings and execute_async_v2; 10.x/11: named
tensors and execute_async_v3; pycuda: contexts, page-locked and device memory, streams) and record what is called.
The fake "engine" computes, per person, values derived from the mean of its crop, so tests can check that every
output row belongs to the right input row.
"""

from __future__ import annotations

import json
import threading
from types import SimpleNamespace

import numpy as np


def person_value(crops: np.ndarray) -> np.ndarray:
    """(n, ...) -> (n,) what the fake network computes per person (or frame)."""
    return crops.reshape(len(crops), -1).mean(axis=1)


def fake_output(value: np.ndarray, dtype: str, static_shape) -> np.ndarray:
    """The fake network's output of one tensor: int32 tensors count up from the person's value, floats repeat it."""
    if dtype == "INT32":
        base = np.round(value * 1000).astype(np.int64)
        return ((base[:, None] + np.arange(static_shape[0])) % 97).astype(np.int32)
    shape = (len(value), *static_shape)
    return np.broadcast_to(value.reshape(-1, *[1] * len(static_shape)), shape).astype(np.float32)


def expected_outputs(crops: np.ndarray, signature) -> dict[str, np.ndarray]:
    """What the fake engine returns for `crops` (also what tests expect)."""
    value = person_value(crops.astype(np.float32))
    return {spec.name: fake_output(value, "INT32" if spec.dtype == "int32" else "FLOAT", spec.shape[1:])
            for spec in signature.outputs}


# ------------------------------------------------------------------------------------------------------ pycuda


class FakeCudaError(Exception):
    pass


class FakeCudaMemoryError(FakeCudaError):
    pass


class FakeAllocation:
    def __init__(self, cuda: FakeCuda, address: int, nbytes: int):
        self.cuda, self.address, self.nbytes = cuda, address, nbytes

    def __int__(self) -> int:
        return self.address

    def free(self) -> None:
        self.cuda.memory.pop(self.address, None)


class FakeContext:
    def __init__(self, cuda: FakeCuda):
        self.cuda = cuda
        self.detached = False

    def push(self) -> None:
        self.cuda.stack().append(self)
        self.cuda.pushes += 1

    @staticmethod
    def pop() -> None:  # bound per FakeCuda instance below (pycuda's Context.pop is static)
        raise NotImplementedError

    def detach(self) -> None:
        self.detached = True


class FakeStream:
    handle = 0xBEEF

    def synchronize(self) -> None:
        pass


class FakeCuda:
    """pycuda.driver: one device, memory as numpy byte arrays keyed by address, a context stack per thread."""

    Error = FakeCudaError
    MemoryError = FakeCudaMemoryError
    Stream = FakeStream

    def __init__(self, gpu_name: str = "Fake Orin", capability: tuple[int, int] = (8, 7), devices: int = 1):
        self.gpu_name, self.capability, self.devices = gpu_name, capability, devices
        self.memory: dict[int, np.ndarray] = {}
        self._next_address = 0x1000
        self._local = threading.local()
        self.pushes = 0
        self.pops = 0
        self.fail_allocations_above: int | None = None
        self.contexts: list[FakeContext] = []
        cuda = self

        class Context(FakeContext):
            @staticmethod
            def pop() -> None:
                cuda.stack().pop()
                cuda.pops += 1

        class Device:
            def __init__(self, index: int):
                self.index = index

            @staticmethod
            def count() -> int:
                return cuda.devices

            def name(self) -> str:
                return cuda.gpu_name

            def compute_capability(self) -> tuple[int, int]:
                return cuda.capability

            def retain_primary_context(self):
                context = Context(cuda)
                cuda.contexts.append(context)
                return context

        self.Context, self.Device = Context, Device

    def stack(self) -> list:
        if not hasattr(self._local, "stack"):
            self._local.stack = []
        return self._local.stack

    def current_context(self):
        stack = self.stack()
        return stack[-1] if stack else None

    def init(self) -> None:
        pass

    def pagelocked_empty(self, shape, dtype) -> np.ndarray:
        return np.empty(shape, dtype=dtype)

    def mem_alloc(self, nbytes: int) -> FakeAllocation:
        self._require_context()
        if self.fail_allocations_above is not None and nbytes > self.fail_allocations_above:
            raise FakeCudaMemoryError("cuMemAlloc failed: out of memory")
        address = self._next_address
        self._next_address += nbytes + 256
        self.memory[address] = np.zeros(nbytes, dtype=np.uint8)
        return FakeAllocation(self, address, nbytes)

    def memcpy_htod_async(self, destination, source: np.ndarray, stream) -> None:
        self._require_context()
        data = np.ascontiguousarray(source).view(np.uint8).ravel()
        self.memory[int(destination)][:data.size] = data

    def memcpy_dtoh_async(self, destination: np.ndarray, source, stream) -> None:
        self._require_context()
        view = destination.view(np.uint8).reshape(-1)
        view[:] = self.memory[int(source)][:view.size]

    def _require_context(self) -> None:
        if self.current_context() is None:
            raise FakeCudaError("no CUDA context is current on this thread")

    def read(self, address: int, shape, dtype) -> np.ndarray:
        count = int(np.prod(shape)) * np.dtype(dtype).itemsize
        return self.memory[address][:count].view(dtype).reshape(shape)

    def write(self, address: int, array: np.ndarray) -> None:
        data = np.ascontiguousarray(array).view(np.uint8).ravel()
        self.memory[address][:data.size] = data


# ---------------------------------------------------------------------------------------------------- tensorrt


_NP_TYPES = {"FLOAT": np.float32, "HALF": np.float16, "INT32": np.int32, "INT8": np.int8, "BOOL": np.bool_}


def make_tensorrt(cuda: FakeCuda, version: str = "8.6.1.6", fp16_flag: bool = True, strongly_typed: bool = False,
                  explicit_batch: bool = True, bindings_api: bool = True, tensors_api: bool = False,
                  parse_errors: tuple[str, ...] = (), build_fails: bool = False):
    """A fake `tensorrt` module of the given version and feature set; `module.calls` records the build."""
    calls: dict = {"builds": 0, "deserialized": 0}
    data_type = SimpleNamespace(**{name: name for name in _NP_TYPES})
    creation = SimpleNamespace(**({"EXPLICIT_BATCH": 0} if explicit_batch else {}),
                               **({"STRONGLY_TYPED": 1} if strongly_typed else {}))
    builder_flag = SimpleNamespace(**({"FP16": 0} if fp16_flag else {}), TF32=7)
    io_mode = SimpleNamespace(INPUT="INPUT", OUTPUT="OUTPUT")

    class Logger:
        WARNING = 2

        def __init__(self, level):
            self.level = level

    class Network:
        def __init__(self, flags: int):
            self.flags = flags
            self.onnx = b""

    class Parser:
        def __init__(self, network, logger):
            self.network = network
            self.num_errors = 0

        def parse(self, data: bytes) -> bool:
            self.network.onnx = data
            self.num_errors = len(parse_errors)
            return not parse_errors

        def get_error(self, index: int) -> str:
            return parse_errors[index]

    class TimingCache:
        def __init__(self, data: bytes):
            if data and not data.startswith(b"timing"):
                raise RuntimeError("bad timing cache")
            self.data = data

        def serialize(self) -> bytes:
            return self.data or b"timing:v1"

    class Config:
        def __init__(self):
            self.flags: set = set()
            self.pool_limits: dict = {}
            self.profiles: list = []
            self.timing_cache = None
            self.ignore_mismatch = None

        def set_memory_pool_limit(self, pool, size: int) -> None:
            self.pool_limits[pool] = size

        def set_flag(self, flag) -> None:
            self.flags.add(flag)

        def add_optimization_profile(self, profile) -> int:
            self.profiles.append(profile)
            return len(self.profiles) - 1

        def create_timing_cache(self, data: bytes):
            return TimingCache(data)

        def set_timing_cache(self, cache, ignore_mismatch: bool) -> bool:
            self.timing_cache, self.ignore_mismatch = cache, ignore_mismatch
            return True

        def get_timing_cache(self):
            return self.timing_cache

    class Profile:
        def __init__(self):
            self.shapes: dict = {}

        def set_shape(self, name, low, opt, high) -> None:
            self.shapes[name] = (tuple(low), tuple(opt), tuple(high))

    class Builder:
        def __init__(self, logger):
            self.logger = logger

        def create_network(self, flags: int = 0):
            return Network(flags)

        def create_builder_config(self):
            return Config()

        def create_optimization_profile(self):
            return Profile()

        def build_serialized_network(self, network, config):
            calls["builds"] += 1
            calls["last_build"] = {"flags": network.flags, "builder_flags": sorted(config.flags),
                                   "pool_limits": dict(config.pool_limits),
                                   "profiles": [profile.shapes for profile in config.profiles],
                                   "timing_cache": config.timing_cache.data, "ignore_mismatch": config.ignore_mismatch,
                                   "onnx_bytes": len(network.onnx)}
            if build_fails:
                return None
            return json.dumps({"fake_engine": version, "io": calls["engine_io"]}).encode()

    class Runtime:
        def __init__(self, logger):
            self.logger = logger

        def deserialize_cuda_engine(self, payload: bytes):
            calls["deserialized"] += 1
            try:
                description = json.loads(payload)
            except ValueError:
                return None
            if description.get("fake_engine") != version:
                return None  # built by another TensorRT
            return FakeEngine(description["io"])

    class FakeEngine:
        def __init__(self, io: list):
            self.io = io  # [name, is_input, dtype name, static shape]

        # 8.x bindings API
        @property
        def num_bindings(self) -> int:
            return len(self.io)

        def get_binding_name(self, index: int) -> str:
            return self.io[index][0]

        def binding_is_input(self, index: int) -> bool:
            return self.io[index][1]

        def get_binding_dtype(self, index: int):
            return self.io[index][2]

        # 10.x tensor API
        @property
        def num_io_tensors(self) -> int:
            return len(self.io)

        def get_tensor_name(self, index: int) -> str:
            return self.io[index][0]

        def _entry(self, name: str):
            return next(entry for entry in self.io if entry[0] == name)

        def get_tensor_mode(self, name: str):
            return io_mode.INPUT if self._entry(name)[1] else io_mode.OUTPUT

        def get_tensor_dtype(self, name: str):
            return self._entry(name)[2]

        def create_execution_context(self):
            return make_context(self)

    def make_context(engine):
        methods = {}
        if bindings_api:
            methods.update(set_binding_shape=_set_binding_shape, execute_async_v2=_execute_v2)
        if tensors_api:
            methods.update(set_input_shape=_set_input_shape, set_tensor_address=_set_tensor_address,
                           execute_async_v3=_execute_v3)
        context_type = type("FakeExecutionContext", (), methods)
        context = context_type()
        context.engine, context.shapes, context.addresses, context.threads = engine, {}, {}, []
        return context

    def _set_binding_shape(self, index: int, shape) -> bool:
        self.shapes[self.engine.io[index][0]] = tuple(shape)
        return True

    def _execute_v2(self, bindings, stream_handle) -> bool:
        addresses = {entry[0]: address for entry, address in zip(self.engine.io, bindings, strict=True)}
        return _run(self, addresses, stream_handle)

    def _set_input_shape(self, name: str, shape) -> bool:
        self.shapes[name] = tuple(shape)
        return True

    def _set_tensor_address(self, name: str, address: int) -> bool:
        self.addresses[name] = address
        return True

    def _execute_v3(self, stream_handle) -> bool:
        return _run(self, self.addresses, stream_handle)

    def _run(context, addresses: dict, stream_handle) -> bool:
        if cuda.current_context() is None:
            raise FakeCudaError("TensorRT ran without a current CUDA context")
        calls.setdefault("executions", []).append(threading.get_ident())
        (source, _, _, item_shape), = [entry for entry in context.engine.io if entry[1]]
        batch = context.shapes[source][0]
        inputs = cuda.read(addresses[source], (batch, *item_shape), np.float32)
        for name, is_input, dtype, shape in context.engine.io:
            if not is_input:
                cuda.write(addresses[name], fake_output(person_value(inputs), dtype, shape))
        return True

    module = SimpleNamespace(
        __version__=version, Logger=Logger, Builder=Builder, OnnxParser=Parser, Runtime=Runtime,
        NetworkDefinitionCreationFlag=creation, BuilderFlag=builder_flag, MemoryPoolType=SimpleNamespace(WORKSPACE=0),
        TensorIOMode=io_mode, DataType=data_type, nptype=lambda dtype: _NP_TYPES[dtype], calls=calls,
    )  # fmt: skip
    return module


def engine_io_for(signature) -> list:
    """The fake engine's tensor list for a graph signature: [name, is_input, dtype, static shape]."""
    names = {"float32": "FLOAT", "int32": "INT32", "float16": "HALF"}
    return ([[spec.name, True, names[spec.dtype], list(spec.shape[1:])] for spec in signature.inputs]
            + [[spec.name, False, names[spec.dtype], list(spec.shape[1:])] for spec in signature.outputs])
