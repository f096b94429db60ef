"""`write_dataset`: a folder the regressor's training code reads, deterministic, with tokens when asked."""

import json

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from vqhps_ros.body import free_body_h36m_regressor, load_free_body_data
from vqhps_ros.errors import InputError
from vqhps_ros.mesh_vq import MeshVQVAE, build_hierarchy, hierarchy_config
from vqhps_ros.synth import SceneSettings, write_dataset
from vqhps_ros.train.hps_data import HPSDataset, load_hps_annotations

SETTINGS = SceneSettings(image_size=(192, 256), max_people=2)


class _CountingTokenizer:
    """Stands in for a Mesh-VQ-VAE: tokens are the mesh's heights in centimetres (any deterministic function)."""

    num_vertices = 1229

    def __init__(self):
        self.calls = 0

    def encode(self, meshes: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        assert meshes.shape[1:] == (1229, 3)
        return (meshes[:, ::200, 1] * 100).round().long() + 100


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    folder = tmp_path_factory.mktemp("synth")
    tokenizer = _CountingTokenizer()
    info = write_dataset(folder, 5, seed=4, tokenizer=tokenizer, settings=SETTINGS, progress=False)
    return folder, info, tokenizer


def test_the_training_loader_reads_it(dataset):
    folder, info, _ = dataset
    annotations = load_hps_annotations(folder, num_vertices=1229)
    assert len(annotations) == info["num_records"] >= 3
    assert annotations.intrinsics.shape == (len(annotations), 3, 3)
    sample = HPSDataset(annotations)[0]
    assert sample["image"].shape == (3, 224, 224) and sample["canonical_vertices"].shape == (1229, 3)
    assert json.loads((folder / "dataset_info.json").read_text())["num_frames"] == 5


def test_records_hold_the_exact_camera_frame_truth(dataset):
    folder, _, tokenizer = dataset
    with np.load(folder / "annotations.npz") as archive:
        arrays = dict(archive)
    rotations = Rotation.from_rotvec(arrays["global_orient"]).as_matrix()
    camera_vertices = np.einsum("mij,mvj->mvi", rotations, arrays["vertices"]) + arrays["translation"][:, None]
    np.testing.assert_allclose(camera_vertices.mean(axis=1), arrays["translation"], atol=1e-5)
    projected = np.einsum("mij,mvj->mvi", arrays["intrinsics"], camera_vertices)
    pixels = projected[..., :2] / projected[..., 2:]
    height, width = SETTINGS.image_size
    for person_pixels, (x, y, w, h) in zip(pixels, arrays["boxes"], strict=True):  # in-image vertices in the box
        shown = person_pixels[np.all((person_pixels > -0.5) & (person_pixels < [width - 0.5, height - 0.5]), axis=1)]
        assert np.all(shown >= [x - 1e-3, y - 1e-3]) and np.all(shown <= [x + w + 1e-3, y + h + 1e-3])
    np.testing.assert_allclose(free_body_h36m_regressor()(camera_vertices), arrays["joints_h36m_camera"], atol=1e-4)
    assert np.all(arrays["visible_fraction"] >= 0.2) and np.all(arrays["boxes"][:, 3] >= 32)
    expected = _CountingTokenizer().encode(torch.as_tensor(arrays["vertices"])).numpy()
    np.testing.assert_array_equal(arrays["tokens"], expected)
    assert tokenizer.calls >= 1
    assert arrays["image_paths"].dtype.kind == "U" and all((folder / p).is_file() for p in arrays["image_paths"])


def test_same_seed_same_dataset(dataset, tmp_path):
    folder, _, _ = dataset
    write_dataset(tmp_path / "again", 2, seed=4, tokenizer=_CountingTokenizer(), settings=SETTINGS, progress=False)
    with np.load(folder / "annotations.npz") as first, np.load(tmp_path / "again" / "annotations.npz") as second:
        count = len(second["boxes"])
        for name in ("boxes", "vertices", "global_orient", "keypoints_2d", "tokens"):
            np.testing.assert_array_equal(first[name][:count], second[name])


def test_a_mesh_vqvae_of_the_free_body_tokenizes_every_record(tmp_path):
    body = load_free_body_data()
    connections = build_hierarchy(body.v_template, body.faces, (body.num_vertices, 300, 54))
    tokenizer = MeshVQVAE(hierarchy_config(2, base_channels=8, num_embeddings=64), connections).eval()
    write_dataset(tmp_path / "tokens", 2, seed=1, tokenizer=tokenizer, settings=SETTINGS, progress=False)
    with np.load(tmp_path / "tokens" / "annotations.npz") as archive:
        tokens, vertices = archive["tokens"], archive["vertices"]
    assert tokens.shape == (len(vertices), 54) and tokens.min() >= 0 and tokens.max() < 64
    with torch.no_grad():
        np.testing.assert_array_equal(tokenizer.encode(torch.as_tensor(vertices)).numpy(), tokens)


def test_bad_arguments_say_what_is_wrong(dataset, tmp_path):
    folder, _, _ = dataset
    with pytest.raises(InputError, match="already holds a dataset"):
        write_dataset(folder, 1, progress=False)
    with pytest.raises(InputError, match="at least one frame"):
        write_dataset(tmp_path / "empty", 0, progress=False)

    class SmplTokenizer(_CountingTokenizer):
        num_vertices = 6890

    with pytest.raises(InputError, match="1229 vertices"):
        write_dataset(tmp_path / "wrong", 1, tokenizer=SmplTokenizer(), progress=False)
