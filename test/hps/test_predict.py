"""The one-call API: image + boxes + K -> meshes and joints in the camera frame."""

import numpy as np
import pytest
import torch
from meshes import icosphere

from vqhps_ros.errors import InputError
from vqhps_ros.hps import VQHPS, MeshRegressor, RegressorConfig, TransformerDims, load_model, save_model
from vqhps_ros.hps.crops import apply_affines, crop_geometry_from_boxes, normalized_to_crop
from vqhps_ros.hps.predict import predict_people
from vqhps_ros.mesh_vq import MeshVQVAE, build_hierarchy, hierarchy_config

K = np.array([[500.0, 0, 320], [0, 520.0, 240], [0, 0, 1]])
BOXES = np.array([[100, 60, 120, 300], [380, 120, 90, 200]], dtype=np.float64)


@pytest.fixture(scope="module")
def small_model():
    """A light, randomly initialised VQ-HPS on a 162-vertex template, with a 4-joint regressor."""
    torch.manual_seed(0)
    vertices, faces = icosphere(2)
    mesh_vqvae = MeshVQVAE(hierarchy_config(3, num_embeddings=32), build_hierarchy(vertices, faces, (162, 60, 20, 6)))
    dims = TransformerDims(model_dim=64, nhead=4, feedforward_dim=128, dict_size=32, block_size=6)
    regressor = MeshRegressor(RegressorConfig(backbone="resnet18_quarter", transformer=dims))
    joint_regressor = np.zeros((4, 162), dtype=np.float32)
    for joint in range(4):
        joint_regressor[joint, joint * 10:(joint + 1) * 10] = 0.1  # rows sum to one, as real regressors do
    model = VQHPS(regressor, mesh_vqvae, np.linspace(-0.5, 0.5, 51), joint_regressor, ("a", "b", "c", "d"),
                  faces=faces)
    return model.eval()


@pytest.fixture(scope="module")
def image():
    return np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)


def test_one_person_mesh_per_box_in_the_camera_frame(small_model, image):
    people = predict_people(small_model, image, BOXES, K)
    assert len(people) == 2
    for person, box in zip(people, BOXES, strict=True):
        assert person.vertices.shape == (162, 3) and person.joints.shape == (4, 3)
        assert person.tokens.shape == (6,) and person.tokens.dtype == np.int64
        assert np.all((person.token_confidence > 0) & (person.token_confidence <= 1))
        pixels = person.vertices @ K.T
        np.testing.assert_allclose(person.vertices_2d, pixels[:, :2] / pixels[:, 2:], rtol=1e-5)
        np.testing.assert_allclose(person.rotation @ person.rotation.T, np.eye(3), atol=1e-5)
        np.testing.assert_array_equal(person.box, box)
        # Joints are the regressor applied to the placed mesh.
        np.testing.assert_allclose(person.joints[0], person.vertices[:10].mean(axis=0), atol=1e-5)


def test_mesh_centroid_projects_where_the_crop_camera_puts_it(small_model, image):
    """The metric placement agrees with the crop's weak-perspective camera at the mesh origin."""
    people = predict_people(small_model, image, BOXES, K)
    geometry = crop_geometry_from_boxes(BOXES)
    for index, person in enumerate(people):
        scale, tx, ty = person.crop_camera
        if scale <= 0:
            assert np.all(np.isnan(person.translation))
            continue
        crop_pixel = normalized_to_crop(np.array([[scale * tx, scale * ty]]))
        expected = apply_affines(geometry.image_from_crop[index:index + 1], crop_pixel[None])[0, 0]
        centroid = person.translation
        projected = K[:2, :2] @ (centroid[:2] / centroid[2]) + K[:2, 2]
        np.testing.assert_allclose(projected, expected, atol=1e-6)


def test_each_person_is_estimated_independently_of_the_others(small_model, image):
    together = predict_people(small_model, image, BOXES, K)
    alone = predict_people(small_model, image, BOXES[1:], K)
    np.testing.assert_allclose(together[1].vertices, alone[0].vertices, atol=1e-5)
    np.testing.assert_array_equal(together[1].tokens, alone[0].tokens)


def test_saved_model_reloads_and_predicts_identically(small_model, image, tmp_path):
    save_model(small_model, tmp_path / "model.pt", loss=1.0)
    reloaded = load_model(tmp_path / "model.pt")
    assert reloaded.joint_names == ("a", "b", "c", "d")
    np.testing.assert_array_equal(reloaded.faces, small_model.faces)
    first, second = predict_people(small_model, image, BOXES, K), predict_people(reloaded, image, BOXES, K)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a.vertices, b.vertices)


def test_a_regressor_for_another_codebook_is_rejected(small_model):
    with pytest.raises(InputError, match="6 tokens over 32 codes.*54 tokens of a 512-code"):
        VQHPS(small_model.regressor, _official_size_vqvae_stub(), np.zeros(51))


def _official_size_vqvae_stub():
    class Sized:
        num_tokens, num_embeddings = 54, 512
    return Sized()


def test_bad_boxes_and_empty_input(small_model, image):
    assert predict_people(small_model, image, np.zeros((0, 4)), K) == []
    with pytest.raises(InputError, match="box 1"):
        predict_people(small_model, image, np.array([[10, 10, 50, 80], [10, 10, 0, 80]]), K)
    with pytest.raises(InputError):
        predict_people(small_model, image[..., :2], BOXES, K)
