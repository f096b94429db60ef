"""The displacement network's input, field sampling and file, its training pairs, perturbed and from scenes (the
exact displacement they state is right), and the shipped network on pairs of a seed it never saw."""

import cv2
import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from vqhps_ros.errors import CheckpointError, InputError
from vqhps_ros.models import bundled_displacement_net_path
from vqhps_ros.refine import (
    CROP_SIZE,
    DisplacementNet,
    image_crop,
    load_displacement_net,
    network_input,
    render_in_crop,
    sample_field,
    save_displacement_net,
)
from vqhps_ros.refine.displacement import field_centres
from vqhps_ros.train.displacement import _mirrored, displacement_pairs, evaluate_displacement
from vqhps_ros.train.displacement_data import DisplacementPairs, DisplacementSampler, DisplacementSampling


@pytest.fixture(scope="module")
def true_texture_pairs():
    torch.set_num_threads(1)
    sampler = DisplacementSampler(DisplacementSampling(texture_shares=(1.0, 0.0, 0.0)))
    return sampler.sample(np.random.default_rng(11), 12)


@pytest.fixture(scope="module")
def scene_pairs():
    """Scene pairs with true textures: each "regressed" mesh is its person's true mesh 6 cm to the side and 3 cm up,
    turned by 0.1 rad about the vertical, the box the true one; with the scenes and the offsets."""
    torch.set_num_threads(1)
    sampler = DisplacementSampler(DisplacementSampling(texture_shares=(1.0, 0.0, 0.0)))
    rng = np.random.default_rng(5)
    pairs, scenes = [], []
    turn = Rotation.from_rotvec([0.0, 0.1, 0.0]).as_matrix()
    while len(pairs) < 6:
        frame = sampler.generator.random_frame(rng)
        person = int(np.argmax([p.visible_fraction for p in frame.people]))
        truth = frame.people[person].vertices_camera.astype(np.float64)
        centre = truth.mean(axis=0)
        regressed = (truth - centre) @ turn.T + centre + [0.06, -0.03, 0.0]
        pairs.append(sampler.scene_pair(rng, frame, person, regressed, frame.people[person].box))
        scenes.append((frame, person, truth))
    return DisplacementPairs(*(np.stack([pair[k] for pair in pairs]) for k in range(5))), scenes, sampler


def test_the_stated_displacement_carries_each_rendered_pixel_onto_the_same_colour_in_the_image(true_texture_pairs):
    assert_displacements_match_colours(true_texture_pairs)


def test_scene_pairs_state_true_displacements_from_the_regressed_mesh_in_the_whole_frame(scene_pairs):
    pairs, _, _ = scene_pairs
    assert_displacements_match_colours(pairs)
    assert not np.any(pairs.valid & ~pairs.covered)
    assert np.all(pairs.valid.reshape(len(pairs), -1).sum(axis=1) > 10)


def test_a_scene_pair_of_the_true_mesh_states_no_displacement(scene_pairs):
    _, scenes, sampler = scene_pairs
    frame, person, truth = scenes[0]
    _, flow, valid, _, _ = sampler.scene_pair(np.random.default_rng(0), frame, person, truth, frame.people[person].box)
    assert valid.sum() > 10
    assert np.abs(flow[:, valid]).max() < 0.05  # crop pixels: the point a cell shows projects back to its centre


def test_a_scene_pair_refuses_a_mesh_of_another_topology(scene_pairs):
    _, scenes, sampler = scene_pairs
    frame, person, truth = scenes[0]
    with pytest.raises(InputError, match="expected a regressed mesh of shape"):
        sampler.scene_pair(np.random.default_rng(0), frame, person, truth[:100], frame.people[person].box)


def assert_displacements_match_colours(pairs):
    centres = field_centres()
    moved, still = [], []
    for inputs, flow, valid in zip(pairs.inputs, pairs.flow, pairs.valid, strict=True):
        inputs = inputs.astype(np.float32)
        image = np.ascontiguousarray(inputs[:3].transpose(1, 2, 0) + 0.5)
        colour = cv2.resize(np.ascontiguousarray((inputs[3:6] + 0.5 * inputs[6:7]).transpose(1, 2, 0)),
                            (CROP_SIZE // 2, CROP_SIZE // 2), interpolation=cv2.INTER_AREA)
        rows, columns = np.nonzero(valid)
        x, y = centres[columns], centres[rows]
        shifted = image_at(image, x + flow[0, rows, columns], y + flow[1, rows, columns])
        moved.append(np.abs(shifted - colour[rows, columns]))
        still.append(np.abs(image_at(image, x, y) - colour[rows, columns]))
    moved_error, still_error = np.concatenate(moved).mean(), np.concatenate(still).mean()
    assert moved_error < 0.5 * still_error  # about 0.05 against 0.15 (RGB in [0, 1])


def image_at(image, x, y):
    return cv2.remap(image, x.astype(np.float32)[:, None], y.astype(np.float32)[:, None], cv2.INTER_LINEAR)[:, 0]


def test_pairs_cover_the_person_and_mark_hidden_points(true_texture_pairs):
    covered, valid = true_texture_pairs.covered, true_texture_pairs.valid
    assert np.all(covered.reshape(len(covered), -1).sum(axis=1) > 20)
    assert not np.any(valid & ~covered)
    assert 0.6 < valid.sum() / covered.sum() < 0.99  # self-occlusion leaves some rendered points hidden in the image


def test_mirroring_a_pair_keeps_its_displacements_true(true_texture_pairs):
    data = [torch.from_numpy(getattr(true_texture_pairs, name)) for name in ("inputs", "flow", "valid", "covered")]
    generator = torch.Generator().manual_seed(0)
    inputs, flow, valid, covered = _mirrored(*data, generator)
    flipped = ~torch.isclose(inputs[:, 0], data[0][:, 0]).all(dim=(1, 2))
    assert flipped.any() and (~flipped).any()
    index = int(torch.nonzero(flipped)[0])
    width = CROP_SIZE // 2
    rows, columns = np.nonzero(data[2][index].numpy())
    np.testing.assert_allclose(flow[index, 0, rows, width - 1 - columns].numpy(), -data[1][index, 0, rows, columns])
    np.testing.assert_allclose(flow[index, 1, rows, width - 1 - columns].numpy(), data[1][index, 1, rows, columns])
    normal_x = inputs[index, 7].float().numpy()
    np.testing.assert_allclose(normal_x[:, ::-1], -data[0][index, 7].float().numpy())


def test_pairs_drawn_in_chunks_are_the_same_whatever_the_workers():
    settings = DisplacementSampling(texture_shares=(1.0, 0.0, 0.0))
    alone = displacement_pairs(3, seed=4, settings=settings, workers=1, chunk=2)
    pooled = displacement_pairs(3, seed=4, settings=settings, workers=2, chunk=2)
    assert alone.inputs.shape[0] == 3
    for name in ("inputs", "flow", "valid", "covered"):
        np.testing.assert_array_equal(getattr(alone, name), getattr(pooled, name))
    second_chunk = DisplacementSampler(settings).sample(np.random.default_rng([4, 1]), 1)
    np.testing.assert_array_equal(alone.flow[2:], second_chunk.flow)


def test_sample_field_is_bilinear_between_cell_centres():
    cells = CROP_SIZE // 2
    x, y = np.meshgrid(field_centres(), field_centres())
    field = np.stack([3 * x + 1, -2 * y, x * 0 + 7]).astype(np.float32)  # linear in crop coordinates
    points = np.array([[10.3, 20.7], [0.5, 0.5], [40.0, 33.25]])
    expected = np.stack([3 * points[:, 0] + 1, -2 * points[:, 1], np.full(3, 7.0)], axis=1)
    np.testing.assert_allclose(sample_field(field, points), expected, atol=1e-4)
    assert field.shape == (3, cells, cells)


def test_image_crop_averages_a_large_square_instead_of_skipping_pixels():
    stripes = np.zeros((480, 640, 3), np.uint8)
    stripes[:, ::2] = 255  # one-pixel stripes: a skipping warp sees all black or all white
    zoom = CROP_SIZE / 400.0
    affine = np.array([[zoom, 0.0, -100 * zoom], [0.0, zoom, -40 * zoom]])
    crop = image_crop(stripes, affine)
    assert crop.shape == (CROP_SIZE, CROP_SIZE, 3)
    np.testing.assert_allclose(crop[8:-8, 8:-8].mean(), 0.5, atol=0.02)
    assert crop[8:-8, 8:-8].std() < 0.05
    with pytest.raises(InputError, match="positive scale"):
        image_crop(stripes, np.zeros((2, 3)))


def test_network_input_channels():
    vertices = np.array([[0.0, 0.0, 2.0], [0.2, 0.0, 2.0], [0.0, 0.3, 2.1]])
    faces = np.array([[0, 2, 1]])
    K = np.array([[300.0, 0, 31.5], [0, 300.0, 31.5], [0, 0, 1]])
    rendering = render_in_crop(vertices, faces, K, np.array([[1.0, 0, 0], [0, 1.0, 0]]), CROP_SIZE)
    inputs = network_input(np.full((CROP_SIZE, CROP_SIZE, 3), 0.5, np.float32), rendering)
    assert inputs.shape == (11, CROP_SIZE, CROP_SIZE) and rendering.mask.sum() > 50
    np.testing.assert_array_equal(inputs[6] > 0, rendering.mask)
    assert np.abs(inputs[3:6]).max() < 1e-6  # no texture: the rendering's colour channels are zeros
    assert np.all(inputs[:3] == 0.0) and np.abs(inputs[10]).max() <= 1.0
    with pytest.raises(InputError, match=r"image crop of \(64, 64, 3\)"):
        network_input(np.zeros((32, 32, 3), np.float32), rendering)


def test_network_file_round_trip_and_refusal(tmp_path):
    net = DisplacementNet(16)
    save_displacement_net(net, tmp_path / "net.pt", note="test")
    loaded = load_displacement_net(tmp_path / "net.pt")
    inputs = torch.randn(2, 11, CROP_SIZE, CROP_SIZE)
    net.eval()
    for first, second in zip(net(inputs), loaded(inputs), strict=True):
        torch.testing.assert_close(first, second)
    torch.save({"format": "something else"}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="expected a displacement network file"):
        load_displacement_net(tmp_path / "other.pt")


def test_shipped_network_finds_the_displacements_of_pairs_it_never_saw():
    torch.set_num_threads(1)
    pairs = DisplacementSampler().sample(np.random.default_rng(4242), 60)
    report = evaluate_displacement(load_displacement_net(bundled_displacement_net_path()), pairs)
    assert report["endpoint_px"] < 0.6 * report["no_displacement_px"]
    assert report["confidence_valid"] > report["confidence_hidden"]


def test_shipped_network_finds_the_displacements_of_a_mesh_off_in_a_scene(scene_pairs):
    pairs, _, _ = scene_pairs
    report = evaluate_displacement(load_displacement_net(bundled_displacement_net_path()), pairs)
    assert report["endpoint_px"] < 0.5 * report["no_displacement_px"]  # about 0.5 against 2.1 crop pixels
    assert report["confidence_valid"] > report["confidence_hidden"]


def test_the_network_exports_within_tensorrt_operators_and_runs_the_same_on_onnx_runtime(tmp_path):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from vqhps_ros.runtime import TENSORRT_OPS, create_session, export_displacement_net, operator_types

    net = load_displacement_net(bundled_displacement_net_path())
    path = export_displacement_net(net, tmp_path / "displacement.onnx")
    assert operator_types(onnx.load(path)) <= TENSORRT_OPS
    inputs = torch.randn(3, 11, CROP_SIZE, CROP_SIZE, generator=torch.Generator().manual_seed(2))
    flow, logits = create_session(path, threads=1).run(None, {"rendering_and_image": inputs.numpy()})
    with torch.no_grad():
        expected_flow, expected_logits = net(inputs)
    np.testing.assert_allclose(flow, expected_flow.numpy(), atol=1e-4)
    np.testing.assert_allclose(logits, expected_logits.numpy(), atol=1e-4)
