"""A graph on TensorRT (the whole VQ-HPS graph, or a detection graph): an engine built from the ONNX file, cached on
disk, run with pycuda.

Build (`plan_build`, `build_serialized_engine`): one optimisation profile for batch 1..max_persons, a workspace
limit, a timing cache kept in the engine cache folder (later builds on the same GPU and TensorRT reuse the tactic
timings), and reduced precision where the installed TensorRT offers it:

* TensorRT 8.x .. 10.11: a weakly typed network with `BuilderFlag.FP16`, built from the fp32 graph (TensorRT keeps
  float32 where fp16 kernels are slower or unavailable);
* TensorRT 10.12+ deprecates that flag and weak typing in favour of strongly typed networks, and TensorRT 11
  removes them: there the fp16 engine is a strongly typed network built from the fp16 graph (`export_vqhps(...,
  precision="fp16")`, float16 weights and activations between float32 input and outputs). A 10.12+ TensorRT given
  the fp32 graph still uses the deprecated flag (with a warning); TensorRT 11 given it refuses with a message that
  says which graph to export. `preferred_graph_precision` tells the exporter which graph a TensorRT wants.

Run (`TensorRTEngine`): page-locked host buffers and device buffers sized for max_persons, one CUDA stream, and
the device's primary CUDA context pushed before and popped after every call, so that any thread (a ROS executor's,
a benchmark's) may call `infer`. Two execution APIs: TensorRT 8.x bindings (`set_binding_shape`,
`execute_async_v2` with a pointer list) and the 10.x/11 named tensors (`set_input_shape`, `set_tensor_address`,
`execute_async_v3`); `select_io_api` picks by version and what the context offers.

`tensorrt` and `pycuda` are imported on activation; TensorRT on a Jetson comes with JetPack, not pip.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import CheckpointError, EngineError, EngineOutOfMemory
from .base import Engine, EngineDescription, check_max_persons, check_precision, describe_details
from .engine_cache import EngineCache, EngineKey
from .onnx_meta import import_onnx, read_metadata, verify_content_hash
from .signatures import CROP_SIZE, CROPS, MAX_BATCH_KEY, PRECISION_KEY, GraphSignature, vqhps_signature_from_metadata

LOG = logging.getLogger(__name__)

DEFAULT_PRECISION = "fp16"
DEFAULT_WORKSPACE_BYTES = 1 << 30  # 1 GiB of builder scratch memory: enough for HRNet-W48 tactics, fits an Orin
STRONG_TYPING_VERSION = (10, 12)  # weak typing (the FP16 builder flag) is deprecated from here on
TENSOR_API_VERSION = (10, 0)  # the bindings API is gone from here on
CROP_SHAPE = (3, CROP_SIZE, CROP_SIZE)
SignatureReader = Callable[[dict[str, str], str], GraphSignature]


def default_cache_dir() -> Path:
    """$XDG_CACHE_HOME/vqhps_ros/engines, or ~/.cache/vqhps_ros/engines."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "vqhps_ros" / "engines"


def parse_version(text: str) -> tuple[int, ...]:
    """'8.6.1.6' -> (8, 6, 1, 6); trailing non-numeric parts ('10.0.0b6') are ignored from the first letter."""
    numbers = []
    for part in str(text).split("."):
        digits = ""
        for character in part:
            if not character.isdigit():
                break
            digits += character
        if not digits:
            break
        numbers.append(int(digits))
        if len(digits) != len(part):
            break
    if not numbers:
        raise EngineError(f"cannot read the TensorRT version {text!r}")
    return tuple(numbers)


# -------------------------------------------------------------------------------------------------- planning


@dataclass(frozen=True)
class BuildPlan:
    """How to build: the network's typing ("weak"/"strong"), its creation flags, builder flags, profile."""

    precision: str
    strongly_typed: bool
    fp16_flag: bool
    explicit_batch_flag: bool
    batch_profile: tuple[int, int, int]
    workspace_bytes: int = DEFAULT_WORKSPACE_BYTES
    notes: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class TensorRTFeatures:
    """What the installed TensorRT offers, read once from the module (fakes in tests)."""

    version: tuple[int, ...]
    has_fp16_flag: bool
    has_strongly_typed: bool
    has_explicit_batch: bool

    @classmethod
    def of(cls, trt) -> TensorRTFeatures:
        creation = trt.NetworkDefinitionCreationFlag
        return cls(parse_version(trt.__version__), hasattr(trt.BuilderFlag, "FP16"),
                   hasattr(creation, "STRONGLY_TYPED"), hasattr(creation, "EXPLICIT_BATCH"))


def preferred_graph_precision(features: TensorRTFeatures, precision: str) -> str:
    """The ONNX graph precision an engine of `precision` should be built from with this TensorRT."""
    if precision == "fp16" and (features.version >= STRONG_TYPING_VERSION or not features.has_fp16_flag):
        return "fp16"
    return "fp32"


def plan_build(features: TensorRTFeatures, graph_precision: str, precision: str, max_batch: int, opt_batch: int,
               workspace_bytes: int = DEFAULT_WORKSPACE_BYTES) -> BuildPlan:
    """Decide typing and flags for an engine of `precision` from a graph of `graph_precision` (see module doc)."""
    if precision not in ("fp32", "fp16"):
        raise EngineError(f"TensorRT engines here are fp32 or fp16, not {precision!r}")
    if graph_precision not in ("fp32", "fp16"):
        raise EngineError(f"TensorRT builds from the fp32 or fp16 graph, this one is {graph_precision} (INT8 graphs "
                          "are quantised for ONNX Runtime's CPU kernels: asymmetric uint8 activations)")
    if not 1 <= opt_batch <= max_batch:
        raise EngineError(f"the optimisation batch must be in 1..{max_batch}, got {opt_batch}")
    deprecated_weak = features.version >= STRONG_TYPING_VERSION
    notes: list[str] = []
    if precision == "fp32" and graph_precision == "fp16":
        raise EngineError("an fp32 engine needs the fp32 graph; this one holds float16 weights")
    if graph_precision == "fp16" or precision == "fp32":
        strongly_typed = features.has_strongly_typed and (deprecated_weak or graph_precision == "fp16")
        fp16_flag = graph_precision == "fp16" and not strongly_typed
        if fp16_flag and not features.has_fp16_flag:
            raise EngineError("this TensorRT has neither strongly typed networks nor the FP16 builder flag")
    else:  # an fp16 engine from the fp32 graph: only weak typing can lower the precision
        if not features.has_fp16_flag:
            raise EngineError("this TensorRT (11 or later) has no FP16 builder flag and builds what the graph says: "
                              "build the fp16 engine from the fp16 graph (vqhps-ros export --precision fp16)")
        strongly_typed, fp16_flag = False, True
        if deprecated_weak:
            notes.append("TensorRT 10.12+ deprecates the FP16 builder flag; export the fp16 graph "
                         "(--precision fp16) to build a strongly typed engine instead")
    return BuildPlan(precision, strongly_typed, fp16_flag,
                     explicit_batch_flag=features.version < TENSOR_API_VERSION and features.has_explicit_batch,
                     batch_profile=(1, opt_batch, max_batch), workspace_bytes=workspace_bytes, notes=tuple(notes))


def network_flags(trt, plan: BuildPlan) -> int:
    flags = 0
    creation = trt.NetworkDefinitionCreationFlag
    if plan.explicit_batch_flag:
        flags |= 1 << int(creation.EXPLICIT_BATCH)
    if plan.strongly_typed:
        flags |= 1 << int(creation.STRONGLY_TYPED)
    return flags


def select_io_api(version: tuple[int, ...], context) -> str:
    """"bindings" (TensorRT 8.x, execute_async_v2) or "tensors" (10.x/11, execute_async_v3)."""
    preferred = "tensors" if version >= TENSOR_API_VERSION else "bindings"
    methods = {"bindings": "execute_async_v2", "tensors": "execute_async_v3"}
    for api in (preferred, *(other for other in methods if other != preferred)):
        if hasattr(context, methods[api]):
            return api
    raise EngineError(f"this TensorRT execution context has neither {' nor '.join(methods.values())}")


# ----------------------------------------------------------------------------------------------------- build


def build_serialized_engine(trt, logger, onnx_bytes: bytes, plan: BuildPlan, timing_cache: bytes | None,
                            input_name: str = CROPS, input_shape: tuple[int, ...] = CROP_SHAPE) -> tuple[bytes, bytes]:
    """Parse the graph, build the engine of `plan`; returns (serialized engine, serialized timing cache).
    input_name, input_shape: the graph's input and its shape without the batch axis."""
    builder = trt.Builder(logger)
    network = builder.create_network(network_flags(trt, plan))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_bytes):
        errors = [str(parser.get_error(index)) for index in range(parser.num_errors)]
        raise EngineError("TensorRT cannot parse the ONNX graph: " + "; ".join(errors))
    config = builder.create_builder_config()
    if hasattr(config, "set_memory_pool_limit"):
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, plan.workspace_bytes)
    else:  # TensorRT < 8.4
        config.max_workspace_size = plan.workspace_bytes
    if plan.fp16_flag:
        config.set_flag(trt.BuilderFlag.FP16)
    low, opt, high = plan.batch_profile
    profile = builder.create_optimization_profile()
    profile.set_shape(input_name, (low, *input_shape), (opt, *input_shape), (high, *input_shape))
    config.add_optimization_profile(profile)
    _use_timing_cache(config, timing_cache)
    for note in plan.notes:
        LOG.warning("%s", note)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineError("TensorRT could not build the engine (see its log above); if it ran out of memory, lower "
                          "max_persons or the workspace")
    return bytes(serialized), bytes(config.get_timing_cache().serialize())


def _use_timing_cache(config, serialized: bytes | None) -> None:
    try:
        cache = config.create_timing_cache(serialized or b"")
    except Exception as error:  # a corrupt cache file: start from an empty one
        LOG.warning("ignoring an unreadable TensorRT timing cache (%s)", error)
        cache = config.create_timing_cache(b"")
    config.set_timing_cache(cache, ignore_mismatch=False)


# ------------------------------------------------------------------------------------------------ the graph


@dataclass
class GraphFile:
    """An exported graph read for TensorRT: its bytes, content hash, metadata and signature."""

    path: Path
    data: bytes
    content_sha256: str
    metadata: dict[str, str]
    signature: GraphSignature

    @property
    def precision(self) -> str:
        return self.metadata.get(PRECISION_KEY, "fp32")


def read_graph(path: str | Path, signature_of: SignatureReader = vqhps_signature_from_metadata) -> GraphFile:
    """Read and check an exported graph (CheckpointError when missing, unreadable or foreign). signature_of:
    (metadata, source) -> the graph's signature, CheckpointError for another kind of graph (default: VQ-HPS)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"ONNX file {path} does not exist")
    data = path.read_bytes()
    onnx = import_onnx()
    try:
        model = onnx.load_from_string(data)
    except Exception as error:  # protobuf's DecodeError and friends
        raise CheckpointError(f"cannot load ONNX graph {path} (truncated or not an ONNX file?): {error}") from error
    content = verify_content_hash(model, str(path))
    metadata = read_metadata(model)
    return GraphFile(path, data, content, metadata, signature_of(metadata, str(path)))


# --------------------------------------------------------------------------------------------------- run


@dataclass(frozen=True)
class IOTensor:
    name: str
    is_input: bool
    dtype: np.dtype
    index: int


def engine_io(trt, engine, api: str) -> list[IOTensor]:
    """The engine's inputs and outputs through the API in use."""
    if api == "bindings":
        return [IOTensor(engine.get_binding_name(index), bool(engine.binding_is_input(index)),
                         np.dtype(trt.nptype(engine.get_binding_dtype(index))), index)
                for index in range(engine.num_bindings)]
    tensors = []
    for index in range(engine.num_io_tensors):
        name = engine.get_tensor_name(index)
        tensors.append(IOTensor(name, engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT,
                                np.dtype(trt.nptype(engine.get_tensor_dtype(name))), index))
    return tensors


def check_engine_io(tensors: Sequence[IOTensor], signature: GraphSignature) -> None:
    found = sorted((tensor.name, tensor.is_input, str(tensor.dtype)) for tensor in tensors)
    expected = sorted([(spec.name, True, spec.dtype) for spec in signature.inputs]
                      + [(spec.name, False, spec.dtype) for spec in signature.outputs])
    if found != expected:
        raise EngineError(f"the TensorRT engine's tensors (name, is input, dtype) are {found}, expected {expected}")


class BindingsExecution:
    """TensorRT 8.x: shapes by binding index, one pointer list for execute_async_v2."""

    def __init__(self, context, tensors: Sequence[IOTensor], addresses: dict[str, int]):
        self.context = context
        self.indices = {tensor.name: tensor.index for tensor in tensors}
        self.pointers = [addresses[tensor.name] for tensor in sorted(tensors, key=lambda tensor: tensor.index)]

    def set_input_shape(self, name: str, shape: tuple[int, ...]) -> None:
        if not self.context.set_binding_shape(self.indices[name], shape):
            raise EngineError(f"TensorRT refuses the input shape {shape} for {name}")

    def execute(self, stream_handle: int) -> bool:
        return bool(self.context.execute_async_v2(bindings=self.pointers, stream_handle=stream_handle))


class TensorsExecution:
    """TensorRT 10.x/11: addresses set once by name, shapes by name, execute_async_v3."""

    def __init__(self, context, tensors: Sequence[IOTensor], addresses: dict[str, int]):
        self.context = context
        for tensor in tensors:
            if not context.set_tensor_address(tensor.name, addresses[tensor.name]):
                raise EngineError(f"TensorRT refuses the device address of {tensor.name}")

    def set_input_shape(self, name: str, shape: tuple[int, ...]) -> None:
        if not self.context.set_input_shape(name, shape):
            raise EngineError(f"TensorRT refuses the input shape {shape} for {name}")

    def execute(self, stream_handle: int) -> bool:
        return bool(self.context.execute_async_v3(stream_handle))


EXECUTIONS = {"bindings": BindingsExecution, "tensors": TensorsExecution}


@dataclass
class Buffer:
    """A page-locked host array (max_persons, ...) and its device twin."""

    host: np.ndarray
    device: object  # pycuda DeviceAllocation; int(device) is the address


@dataclass
class _Running:
    """Everything an active engine holds; freed together with the CUDA context current."""

    cuda: object
    cuda_context: object
    engine: object
    execution_context: object
    execution: BindingsExecution | TensorsExecution
    buffers: dict[str, Buffer]
    stream: object
    api: str
    engine_path: Path
    built: bool


class TensorRTEngine(Engine):
    """onnx_path: the fp32 or fp16 graph written by `export_vqhps`. cache_dir: engine cache folder (default
    `default_cache_dir()`). precision: "fp16" (default, None) or "fp32". max_persons: top of the batch profile (default:
    the graph's metadata); opt_persons: the batch TensorRT tunes for (default min(2, max_persons)). device_index:
    the CUDA device. signature_of: reads another graph's signature from its metadata (the detection graphs; default
    VQ-HPS's); such a graph runs through `infer_arrays`. After activation, `engine_path` and `built` say which cache
    file runs and whether it was built just now."""

    backend = "tensorrt"
    supported_precisions = ("fp32", "fp16")

    def __init__(self, onnx_path: str | Path, cache_dir: str | Path | None = None, precision: str | None = None,
                 max_persons: int | None = None, opt_persons: int | None = None, device_index: int = 0,
                 workspace_bytes: int = DEFAULT_WORKSPACE_BYTES,
                 signature_of: SignatureReader = vqhps_signature_from_metadata):
        super().__init__()
        self.onnx_path = Path(onnx_path)
        self.signature_of = signature_of
        self.cache = EngineCache(cache_dir if cache_dir is not None else default_cache_dir())
        self.precision = precision or DEFAULT_PRECISION
        self.precision_reason = "requested" if precision else "TensorRT default"
        self.requested_max_persons = check_max_persons(max_persons)
        self.opt_persons = check_max_persons(opt_persons)
        self.device_index = device_index
        self.workspace_bytes = workspace_bytes
        self._running: _Running | None = None

    @property
    def engine_path(self) -> Path | None:
        return None if self._running is None else self._running.engine_path

    @property
    def built(self) -> bool:
        return self._running is not None and self._running.built

    # ------------------------------------------------------------------------------------------- activation

    def _activate(self) -> tuple[GraphSignature, EngineDescription]:
        check_precision(self, self.precision)
        trt, cuda = import_tensorrt(), import_pycuda()
        features = TensorRTFeatures.of(trt)
        graph = read_graph(self.onnx_path, self.signature_of)
        max_persons = self.requested_max_persons or int(graph.metadata.get(MAX_BATCH_KEY, 1))
        opt_persons = self.opt_persons or min(2, max_persons)
        plan = plan_build(features, graph.precision, self.precision, max_persons, opt_persons, self.workspace_bytes)
        device, cuda_context = open_device(cuda, self.device_index)
        try:
            key = EngineKey(graph.content_sha256, trt.__version__, device.name(), tuple(device.compute_capability()),
                            self.precision, plan.batch_profile)
            self._running = self._start(trt, cuda, cuda_context, features, graph, plan, key)
        except BaseException:
            close_device(cuda, cuda_context, pushed=True)
            raise
        cuda.Context.pop()
        running = self._running
        major, minor = device.compute_capability()
        detail = describe_details(
            f"{self.precision}: {self.precision_reason}",
            f"TensorRT {trt.__version__}, {running.api} API, {'strongly' if plan.strongly_typed else 'weakly'} typed, "
            f"engine {running.engine_path.name}{' (built now)' if running.built else ''}")
        description = EngineDescription(
            self.backend, f"cuda:{self.device_index} {device.name()} ({major}.{minor})", self.precision, max_persons,
            detail)
        return graph.signature, description

    def _start(self, trt, cuda, cuda_context, features: TensorRTFeatures, graph: GraphFile, plan: BuildPlan,
               key: EngineKey) -> _Running:
        logger = trt.Logger(trt.Logger.WARNING)
        runtime = trt.Runtime(logger)

        (source,) = graph.signature.inputs

        def build() -> bytes:
            payload, timing = build_serialized_engine(trt, logger, graph.data, plan, self.cache.read_timing_cache(key),
                                                      source.name, tuple(source.shape[1:]))
            self.cache.write_timing_cache(key, timing)
            return payload

        result = self.cache.load_or_build(key, build, runtime.deserialize_cuda_engine)
        graph.data = b""  # the graph's bytes are only needed to build
        engine = result.engine
        execution_context = engine.create_execution_context()
        if execution_context is None:
            raise EngineOutOfMemory("TensorRT could not create an execution context (out of device memory?)")
        api = select_io_api(features.version, execution_context)
        tensors = engine_io(trt, engine, api)
        check_engine_io(tensors, graph.signature)
        buffers = allocate_buffers(cuda, graph.signature, plan.batch_profile[2])
        try:
            addresses = {name: int(buffer.device) for name, buffer in buffers.items()}
            execution = EXECUTIONS[api](execution_context, tensors, addresses)
            stream = cuda.Stream()
        except BaseException:
            free_buffers(buffers)
            raise
        return _Running(cuda, cuda_context, engine, execution_context, execution, buffers, stream, api, result.path,
                        result.built)

    def _deactivate(self) -> None:
        running, self._running = self._running, None
        if running is None:
            return
        running.cuda_context.push()
        try:
            free_buffers(running.buffers)
            # TensorRT frees its device memory when these are collected: drop them while the context is current.
            running.execution = running.execution_context = running.engine = running.stream = None
        finally:
            close_device(running.cuda, running.cuda_context, pushed=True)

    # -------------------------------------------------------------------------------------------- inference

    def _infer_batch(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        running = self._running
        cuda, count = running.cuda, len(batch)
        (spec,) = self.signature.inputs
        running.cuda_context.push()
        try:
            source = running.buffers[spec.name]
            source.host[:count] = batch
            running.execution.set_input_shape(spec.name, (count, *spec.shape[1:]))
            cuda.memcpy_htod_async(source.device, source.host[:count], running.stream)
            if not running.execution.execute(running.stream.handle):
                raise EngineError(f"TensorRT execution failed at batch {count} (see the TensorRT log)")
            outputs = {name: buffer for name, buffer in running.buffers.items() if name != spec.name}
            for buffer in outputs.values():
                cuda.memcpy_dtoh_async(buffer.host[:count], buffer.device, running.stream)
            running.stream.synchronize()
            # Copies: the page-locked buffers are overwritten by the next call.
            return {name: buffer.host[:count].copy() for name, buffer in outputs.items()}
        except cuda.MemoryError as error:
            raise EngineOutOfMemory(f"CUDA ran out of memory at batch {count}: {error}") from error
        except cuda.Error as error:
            raise EngineError(f"CUDA failed at batch {count}: {error}") from error
        finally:
            cuda.Context.pop()


def allocate_buffers(cuda, signature: GraphSignature, max_batch: int) -> dict[str, Buffer]:
    """Page-locked host and device buffers for every graph tensor at the largest batch."""
    buffers: dict[str, Buffer] = {}
    try:
        for spec in (*signature.inputs, *signature.outputs):
            shape = tuple(max_batch if isinstance(size, str) else size for size in spec.shape)
            host = cuda.pagelocked_empty(shape, np.dtype(spec.dtype))
            buffers[spec.name] = Buffer(host, cuda.mem_alloc(host.nbytes))
    except cuda.MemoryError as error:
        free_buffers(buffers)
        raise EngineOutOfMemory(f"cannot allocate the TensorRT buffers for {max_batch} persons: {error}") from error
    return buffers


def free_buffers(buffers: dict[str, Buffer]) -> None:
    for buffer in buffers.values():
        buffer.device.free()
    buffers.clear()


def open_device(cuda, index: int):
    """(device, its primary context), the context pushed (current on this thread)."""
    cuda.init()
    count = cuda.Device.count()
    if not 0 <= index < count:
        raise EngineError(f"CUDA device {index} requested, {count} present")
    device = cuda.Device(index)
    context = device.retain_primary_context()
    context.push()
    return device, context


def close_device(cuda, context, pushed: bool) -> None:
    if pushed:
        cuda.Context.pop()
    context.detach()


def import_tensorrt():
    try:
        import tensorrt
    except ImportError as error:
        raise EngineError("the TensorRT backend needs the `tensorrt` Python package (on a Jetson it comes with "
                          "JetPack: python3-libnvinfer; elsewhere: pip install tensorrt)") from error
    return tensorrt


def import_pycuda():
    try:
        import pycuda.driver as cuda
    except ImportError as error:
        raise EngineError("the TensorRT backend needs pycuda: pip install pycuda (it compiles against the CUDA "
                          "toolkit on the machine)") from error
    return cuda


@dataclass(frozen=True)
class BuildReport:
    engine_path: Path
    built: bool
    description: str


def build_engine(onnx_path: str | Path, cache_dir: str | Path | None = None, precision: str | None = None,
                 max_persons: int | None = None, opt_persons: int | None = None, device_index: int = 0,
                 workspace_bytes: int = DEFAULT_WORKSPACE_BYTES) -> BuildReport:
    """Build (or find) the cached engine of a graph ahead of time, as `vqhps-ros build-engine` does."""
    engine = TensorRTEngine(onnx_path, cache_dir, precision, max_persons, opt_persons, device_index, workspace_bytes)
    with engine:
        return BuildReport(engine.engine_path, engine.built, str(engine.description))
