"""Exported graphs and the engines that run them.

Importing this package needs none of `onnx`, `onnxruntime`, `tensorrt` or `pycuda`: they are imported by the
functions that use them.
"""

from .accuracy import PrecisionCost, measure_precision_cost
from .base import PRECISIONS, Engine, EngineDescription, EngineOutput
from .calibration import PersonSamples, load_dataset_samples
from .cpu_features import CpuFeatures, this_cpu
from .engine_cache import CacheEntryError, EngineCache, EngineKey
from .export import (
    DEFAULT_MAX_BATCH,
    DEFAULT_OPSET,
    EXPORT_PRECISIONS,
    TENSORRT_OPS,
    VQHPSGraph,
    check_operators,
    export_displacement_net,
    export_mesh_decoder,
    export_onnx,
    export_vqhps,
    operator_types,
)
from .factory import BACKENDS, FallbackEngine, create_engine
from .onnx_meta import (
    CONTENT_HASH_KEY,
    GRAPH_KEY,
    PACKAGE_VERSION_KEY,
    content_hash,
    read_metadata,
    save_model_atomically,
    stamp_metadata,
    verify_content_hash,
    write_bytes_atomically,
)
from .onnx_runtime import OnnxMeshDecoder, create_session, select_providers
from .onnxruntime_engine import OnnxRuntimeEngine
from .quantize import CropCalibrationReader, quantize_vqhps
from .signatures import BATCH, GraphSignature, TensorSpec, mesh_decoder_signature, vqhps_signature
from .tensorrt_engine import TensorRTEngine, build_engine, default_cache_dir
from .torch_engine import TorchEngine

__all__ = [
    "BACKENDS",
    "BATCH",
    "CONTENT_HASH_KEY",
    "CacheEntryError",
    "CpuFeatures",
    "CropCalibrationReader",
    "DEFAULT_MAX_BATCH",
    "DEFAULT_OPSET",
    "EXPORT_PRECISIONS",
    "Engine",
    "EngineCache",
    "EngineDescription",
    "EngineKey",
    "EngineOutput",
    "FallbackEngine",
    "GRAPH_KEY",
    "GraphSignature",
    "OnnxMeshDecoder",
    "OnnxRuntimeEngine",
    "PACKAGE_VERSION_KEY",
    "PRECISIONS",
    "PersonSamples",
    "PrecisionCost",
    "TENSORRT_OPS",
    "TensorRTEngine",
    "TensorSpec",
    "TorchEngine",
    "VQHPSGraph",
    "build_engine",
    "check_operators",
    "content_hash",
    "create_engine",
    "create_session",
    "default_cache_dir",
    "export_displacement_net",
    "export_mesh_decoder",
    "export_onnx",
    "export_vqhps",
    "load_dataset_samples",
    "measure_precision_cost",
    "mesh_decoder_signature",
    "operator_types",
    "quantize_vqhps",
    "read_metadata",
    "save_model_atomically",
    "select_providers",
    "stamp_metadata",
    "this_cpu",
    "verify_content_hash",
    "vqhps_signature",
    "write_bytes_atomically",
]
