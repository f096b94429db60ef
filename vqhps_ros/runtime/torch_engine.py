"""The whole VQ-HPS graph in PyTorch eager mode: the reference backend, and the one for machines without ONNX.

It runs `export.VQHPSGraph`, the very module the ONNX graph is traced from, so its outputs are the exported ones.
Reduced precision (bf16 on CPU, fp16 or bf16 on CUDA) applies to the two image backbones only, which hold almost
all of the arithmetic: they run in that dtype (channels-last on the CPU, the layout oneDNN's bf16 kernels want),
while the transformer, the token head and the mesh decoder stay float32, so the argmax and the vertices are not
rounded to 8 mantissa bits. bf16 on the CPU needs bf16 instructions (`cpu_features.native_bf16`): without them
PyTorch emulates it several times slower than fp32, so the engine refuses it unless `allow_emulated_bf16=True`
(for accuracy studies and tests, whose numbers do not depend on the instructions). A keypoint-reading model has
no backbones: it runs float32 whatever the precision asked, and its description says so. On CUDA, `cuda_graphs=True`
captures one CUDA graph per batch size on first use and replays it (at most max_persons graphs).
"""

from __future__ import annotations

import copy
import logging

import numpy as np
import torch
from torch import nn

from ..errors import EngineError, EngineOutOfMemory
from ..hps import VQHPS
from . import cpu_features
from .base import Engine, EngineDescription, check_max_persons, check_precision, describe_details
from .export import DEFAULT_MAX_BATCH, VQHPSGraph, check_exportable, vqhps_graph_signature
from .signatures import GraphSignature

LOG = logging.getLogger(__name__)

DEFAULT_PRECISION = "fp32"
REDUCED_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


class ReducedPrecisionBackbone(nn.Module):
    """A backbone whose weights and activations are in `dtype`; float32 in, float32 out."""

    def __init__(self, backbone: nn.Module, dtype: torch.dtype, channels_last: bool):
        super().__init__()
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.backbone = backbone.to(dtype=dtype, memory_format=memory_format)
        self.dtype = dtype
        self.memory_format = memory_format

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self.backbone(images.to(self.dtype).contiguous(memory_format=self.memory_format))
        return features.float().contiguous()


def reduced_precision_copy(model: VQHPS, precision: str, device: torch.device) -> VQHPS:
    """A copy of `model` on `device` whose backbones run in `precision` (the caller's model is not changed)."""
    model = copy.deepcopy(model).to(device)
    if precision in REDUCED_DTYPES and has_backbones(model):
        regressor = model.regressor
        channels_last = device.type == "cpu"
        dtype = REDUCED_DTYPES[precision]
        regressor.backbone_pose = ReducedPrecisionBackbone(regressor.backbone_pose, dtype, channels_last)
        regressor.backbone_rot = ReducedPrecisionBackbone(regressor.backbone_rot, dtype, channels_last)
    return model.eval()


def has_backbones(model: VQHPS) -> bool:
    """Whether the model reads images through backbones (what reduced precision applies to)."""
    return hasattr(model.regressor, "backbone_pose")


class TorchEngine(Engine):
    """model: a float32 VQHPS (per-crop token head). device: "cpu", "cuda", "cuda:1" (default: CUDA when present).
    precision: "fp32" (default, None), "bf16" (CUDA, or a CPU with bf16 instructions), "fp16" (CUDA). threads:
    torch.set_num_threads on activation (a process-wide setting). cuda_graphs: CUDA only. allow_emulated_bf16: run
    bf16 on a CPU without bf16 instructions anyway (slow; for accuracy studies). The model is copied when it must
    be moved or converted."""

    backend = "pytorch"
    supported_precisions = ("fp32", "fp16", "bf16")

    def __init__(self, model: VQHPS, device: str | torch.device | None = None, precision: str | None = None,
                 threads: int | None = None, max_persons: int | None = None, cuda_graphs: bool = False,
                 allow_emulated_bf16: bool = False):
        super().__init__()
        check_exportable(model)
        self.model = model
        self.device = torch.device(device) if device is not None else default_device()
        self.precision = precision or DEFAULT_PRECISION
        self.precision_reason = "requested" if precision else f"default on {self.device.type.upper()}"
        self.allow_emulated_bf16 = allow_emulated_bf16
        self.threads = threads
        self.requested_max_persons = check_max_persons(max_persons)
        self.cuda_graphs = cuda_graphs
        signature = vqhps_graph_signature(model)
        self._output_names = signature.output_names
        self._input_shape = tuple(signature.inputs[0].shape[1:])
        self._graph: nn.Module | None = None
        self._runner = None

    def _activate(self) -> tuple[GraphSignature, EngineDescription]:
        check_precision(self, self.precision)
        self._check_device_options()
        if self.threads is not None:
            torch.set_num_threads(self.threads)
        max_persons = self.requested_max_persons or DEFAULT_MAX_BATCH
        try:
            self._graph = VQHPSGraph(self._prepared_model()).eval()
            self._runner = (CudaGraphRunner(self._graph, self.device, self._input_shape) if self.cuda_graphs
                            else self._graph)
            if self.device.type == "cuda":  # allocate the largest batch now: out of memory shows at start
                self._run(np.zeros((max_persons, *self._input_shape), dtype=np.float32))
        except torch.cuda.OutOfMemoryError as error:
            self._deactivate()
            raise EngineOutOfMemory(f"PyTorch ran out of CUDA memory for {max_persons} persons: {error}") from error
        description = EngineDescription(self.backend, device_name(self.device), self.precision, max_persons,
                                        self._detail())
        return vqhps_graph_signature(self.model), description

    def _detail(self) -> str:
        """The precision and why, then threads and instruction sets on the CPU, e.g. "bf16: requested; 2 threads;
        Intel(R) Xeon(R) Platinum 8480+ (AVX2, AVX-512, VNNI, BF16, AMX)", or "fp32: default on CUDA; eager"."""
        precision = f"{self.precision}: {self.precision_reason}"
        if self.precision in REDUCED_DTYPES and not has_backbones(self.model):
            precision += ", but runs fp32 (no image backbones to reduce)"
        if self.device.type != "cpu":
            return describe_details(precision, "CUDA graphs" if self.cuda_graphs else "eager")
        if self.precision == "bf16" and not cpu_features.native_bf16():
            precision += ", emulated (allow_emulated_bf16)"
        threads = torch.get_num_threads()
        return describe_details(precision, f"{threads} thread{'' if threads == 1 else 's'}", cpu_features.describe())

    def _check_device_options(self) -> None:
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise EngineError(f"device {self.device} requested, but this PyTorch sees no CUDA device")
        if self.device.type == "cpu" and self.precision == "fp16":
            raise EngineError(f"fp16 is for CUDA devices; on the CPU use {cpu_alternatives()}")
        if self.device.type == "cpu" and self.precision == "bf16":
            self._check_native_bf16()
        if self.cuda_graphs and self.device.type != "cuda":
            raise EngineError("cuda_graphs needs a CUDA device")

    def _check_native_bf16(self) -> None:
        cpu = cpu_features.this_cpu()
        if cpu.native_bf16():
            return
        why = (f"this CPU, {cpu.describe()}, has no bf16 instructions (AVX512_BF16 or AMX-BF16 on x86, BF16 on Arm): "
               "PyTorch emulates bf16 there, about 5x slower than fp32 (the HRNet graph on an AVX2 CPU: 4767 against "
               "828 ms per person)")
        if not self.allow_emulated_bf16:
            raise EngineError(f"bf16 refused: {why}. Use {cpu_alternatives()}; allow_emulated_bf16=True runs it "
                              "anyway (accuracy studies)")
        LOG.warning("running emulated bf16 as allowed: %s", why)

    def _prepared_model(self) -> VQHPS:
        model_device = self.model.pose_init.device
        if self.precision == "fp32" and model_device == self.device and not self.model.training:
            return self.model  # nothing to change: no copy of a few hundred MB
        return reduced_precision_copy(self.model, self.precision, self.device)

    def _deactivate(self) -> None:
        self._graph = self._runner = None
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def _infer_batch(self, inputs: np.ndarray) -> dict[str, np.ndarray]:
        try:
            return self._run(inputs)
        except torch.cuda.OutOfMemoryError as error:
            raise EngineOutOfMemory(f"PyTorch ran out of CUDA memory at batch {len(inputs)}: {error}") from error

    def _run(self, inputs: np.ndarray) -> dict[str, np.ndarray]:
        with torch.inference_mode():
            tensor = torch.from_numpy(inputs).to(self.device, non_blocking=True)
            outputs = self._runner(tensor)
            return {name: output.cpu().numpy() for name, output in zip(self._output_names, outputs, strict=True)}


class CudaGraphRunner:
    """Replays one captured CUDA graph per batch size: static input buffer in, static outputs out (copied)."""

    def __init__(self, module: nn.Module, device: torch.device, input_shape: tuple[int, ...]):
        self.module = module
        self.device = device
        self.input_shape = input_shape  # without the batch axis
        self.graphs: dict[int, tuple[torch.cuda.CUDAGraph, torch.Tensor, tuple[torch.Tensor, ...]]] = {}

    def __call__(self, inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        batch = inputs.shape[0]
        if batch not in self.graphs:
            self.graphs[batch] = self._capture(batch)
        graph, static_input, static_outputs = self.graphs[batch]
        static_input.copy_(inputs)
        graph.replay()
        return tuple(output.clone() for output in static_outputs)

    def _capture(self, batch: int):
        static_input = torch.zeros((batch, *self.input_shape), device=self.device)
        # Warm-up runs on a side stream, as CUDA graph capture requires (lazy initialisations must not be captured).
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            for _ in range(2):
                self.module(static_input)
        torch.cuda.current_stream(self.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_outputs = self.module(static_input)
        return graph, static_input, static_outputs


def cpu_alternatives() -> str:
    """The faster precisions of this CPU, for messages that refuse another one."""
    native = "bf16 (this CPU has bf16 instructions), " if cpu_features.native_bf16() else ""
    return f"{native}fp32, or ONNX Runtime with the int8 graph (vqhps-ros export --precision int8)"


def default_device() -> torch.device:
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def device_name(device: torch.device) -> str:
    if device.type != "cuda":
        return device.type
    index = device.index if device.index is not None else torch.cuda.current_device()
    major, minor = torch.cuda.get_device_capability(index)
    return f"cuda:{index} {torch.cuda.get_device_name(index)} ({major}.{minor})"
