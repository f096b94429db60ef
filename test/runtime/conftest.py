"""Fixtures of the runtime tests: a small VQ-HPS model on a 162-vertex template and its exported graph."""

import numpy as np
import pytest
import torch
from fake_tensorrt import FakeCuda, engine_io_for, make_tensorrt
from small_model import build_small_model

from vqhps_ros.hps import VQHPS


@pytest.fixture(scope="session")
def small_model() -> VQHPS:
    return build_small_model()


@pytest.fixture(scope="session")
def small_graph(small_model, tmp_path_factory):
    """The small model's fp32 graph (max_persons 4)."""
    pytest.importorskip("onnx")
    from vqhps_ros.runtime import export_vqhps

    return export_vqhps(small_model, tmp_path_factory.mktemp("graphs") / "small.onnx", max_persons=4,
                        source={"name": "small test model"})


@pytest.fixture(scope="session")
def crops() -> np.ndarray:
    """(7, 3, 224, 224) float32 normalised-looking crops: smooth colour fields plus noise, a different one each."""
    rng = np.random.default_rng(0)
    rows = np.linspace(-1.0, 1.0, 224, dtype=np.float32)
    field = rows[None, :, None] * rows[None, None, :]
    images = [rng.normal(0.0, 1.0, (3, 1, 1)) * field + 0.3 * rng.standard_normal((3, 224, 224)) for _ in range(7)]
    return np.stack(images).astype(np.float32)


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """Tiny batches gain nothing from two threads, and on a busy 2-core machine they wait on each other (tracing
    HRNet-W48 for export took 33 s with two threads next to other work, a few seconds with one). Session-wide, so
    that it also holds while session and module fixtures export graphs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def fake_backend(monkeypatch):
    """Installs a fake TensorRT (8.6, bindings API, by default) and pycuda for the small graph's signature;
    returns `install(version=..., cuda=..., **features)` to install another one, which returns (trt, cuda)."""
    from vqhps_ros.runtime import tensorrt_engine
    from vqhps_ros.runtime.signatures import vqhps_signature

    def install(version="8.6.1.6", cuda=None, **kwargs):
        cuda = cuda or FakeCuda()
        trt = make_tensorrt(cuda, version=version, **kwargs)
        trt.calls["engine_io"] = engine_io_for(vqhps_signature(6, 162, 4))
        monkeypatch.setattr(tensorrt_engine, "import_tensorrt", lambda: trt)
        monkeypatch.setattr(tensorrt_engine, "import_pycuda", lambda: cuda)
        return trt, cuda

    install()
    return install
