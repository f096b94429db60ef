"""Exported graphs and the engines that run them.

Importing this package needs neither `onnx` nor `onnxruntime`: they are imported by the functions that use them.
"""

from .export import (
    DEFAULT_MAX_BATCH,
    DEFAULT_OPSET,
    TENSORRT_OPS,
    check_operators,
    export_mesh_decoder,
    export_onnx,
    operator_types,
)
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
from .signatures import BATCH, GraphSignature, TensorSpec, mesh_decoder_signature

__all__ = [
    "BATCH",
    "CONTENT_HASH_KEY",
    "DEFAULT_MAX_BATCH",
    "DEFAULT_OPSET",
    "GRAPH_KEY",
    "GraphSignature",
    "OnnxMeshDecoder",
    "PACKAGE_VERSION_KEY",
    "TENSORRT_OPS",
    "TensorSpec",
    "check_operators",
    "content_hash",
    "create_session",
    "export_mesh_decoder",
    "export_onnx",
    "mesh_decoder_signature",
    "operator_types",
    "read_metadata",
    "save_model_atomically",
    "select_providers",
    "stamp_metadata",
    "verify_content_hash",
    "write_bytes_atomically",
]
