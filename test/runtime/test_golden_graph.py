"""The official HRNet-W48 graph with the reference weights: ONNX Runtime against PyTorch and the official outputs.

Filling and exporting HRNet-W48 (two backbones, 574 MB of weights) takes about 20 s: the graph is exported once.
"""

import numpy as np
import pytest
import torch

from vqhps_ros.hps import VQHPS, MeshRegressor, RegressorConfig
from vqhps_ros.hps.checkpoint import load_regressor_state
from vqhps_ros.runtime import TENSORRT_OPS, OnnxRuntimeEngine, export_vqhps, operator_types

pytestmark = [pytest.mark.golden, pytest.mark.slow]

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

VERTEX_TOLERANCE = 1e-3  # metres (the meshes of these weights span about 8 m)


@pytest.fixture(scope="module")
def golden_model(reference, golden_mesh_vqvae):
    regressor = MeshRegressor(RegressorConfig(backbone="hrnet_w48"))
    load_regressor_state(regressor, reference.state_dict("mesh_regressor_hrnet"), "mesh_regressor_hrnet")
    return VQHPS(regressor, golden_mesh_vqvae, pose_init=np.zeros(51)).eval()


@pytest.fixture(scope="module")
def golden_graph(golden_model, tmp_path_factory):
    return export_vqhps(golden_model, tmp_path_factory.mktemp("golden") / "hrnet_w48.onnx", max_persons=2)


@pytest.fixture(scope="module")
def case(reference):
    return reference.case("mesh_regressor_hrnet")


def test_onnx_runtime_matches_pytorch_and_the_official_outputs(golden_graph, golden_model, case):
    images = case["images"]  # (2, 3, 224, 224)
    with OnnxRuntimeEngine(golden_graph, threads=1) as engine:
        output = engine.infer(images)
    with torch.no_grad():
        expected = golden_model(torch.from_numpy(images))
    np.testing.assert_array_equal(output.indices, expected.indices.numpy())
    np.testing.assert_allclose(output.verts, expected.verts.numpy(), atol=VERTEX_TOLERANCE, rtol=0)
    np.testing.assert_allclose(output.verts_canonical, expected.verts_canonical.numpy(), atol=VERTEX_TOLERANCE, rtol=0)
    np.testing.assert_allclose(output.token_confidence, expected.token_confidence.numpy(), atol=1e-5, rtol=0)
    np.testing.assert_allclose(output.rotmat, expected.rotmat.numpy(), atol=1e-4, rtol=0)
    np.testing.assert_allclose(output.cam, expected.cam.numpy(), atol=1e-4, rtol=0)
    # Each crop alone, as the official code computes a batch of one; its first crop also in its batched run.
    np.testing.assert_array_equal(output.indices, case["logits_single"].argmax(-1))
    np.testing.assert_array_equal(output.indices[0], case["indices"][0])
    np.testing.assert_allclose(output.verts_canonical[0], case["mesh_canonical"][0], atol=VERTEX_TOLERANCE, rtol=0)


def test_the_official_graph_is_tensorrt_friendly(golden_graph):
    model = onnx.load(str(golden_graph), load_external_data=False)
    assert operator_types(model) <= TENSORRT_OPS
    onnx.checker.check_model(str(golden_graph))
