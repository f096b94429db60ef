"""The estimator's alignment refinement stage on a rendered person and a regressed guess of them: dense and sparse
targets move the guess towards the person, what cannot be refined is kept and counted, textures live per track."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from vqhps_ros.body import free_body_pose_landmarks
from vqhps_ros.errors import InputError
from vqhps_ros.hps.camera import project_points
from vqhps_ros.humans import POSE_KEYPOINT_SET, BodyKeypoints, Frame, FrameResult, Human
from vqhps_ros.models import bundled_displacement_net_path, load_demo_mesh_vqvae, load_image_model
from vqhps_ros.refine import (
    BOTH,
    DENSE,
    SPARSE,
    AlignmentRefinement,
    RefineSettings,
    StageSettings,
    load_displacement_net,
)
from vqhps_ros.refine.optimize import rotation_from_vector
from vqhps_ros.synth import render_meshes
from vqhps_ros.synth.backgrounds import wall_image
from vqhps_ros.train.keypoint_data import KeypointNoise, KeypointSampler, KeypointSampling

K = np.array([[600.0, 0, 319.5], [0, 600.0, 239.5], [0, 0, 1]])
IMAGE_SIZE = (480, 640)
SLOW = RefineSettings(iterations=15, budget_ms=60_000)


@pytest.fixture(scope="module")
def scene():
    """The image of a true person (textured, on a wall) and the Human of a guess: another pose, 6 degrees and 8 cm
    off."""
    torch.manual_seed(0)
    mesh_vqvae = load_demo_mesh_vqvae()
    model = load_image_model()
    sampler = KeypointSampler(KeypointSampling(noise=KeypointNoise.none()))
    samples = sampler.sample(np.random.default_rng(4), 2)
    with torch.no_grad():
        tokens = mesh_vqvae.encode(torch.from_numpy(samples.canonical_vertices).float()).numpy()
        decoded = mesh_vqvae.decode(torch.from_numpy(tokens)).double().numpy()
    rotation = samples.rotation[0]
    truth = decoded[0] @ rotation.T + np.array([0.1, 0.2, 3.5])
    turn = rotation_from_vector(torch.tensor([0.0, np.radians(6.0), 0.0], dtype=torch.float64)).numpy() @ rotation
    guess_translation = np.array([0.18, 0.17, 3.5])
    guess = decoded[1] @ turn.T + guess_translation
    faces = np.asarray(model.faces, dtype=np.int64)
    colours = sampler.generator.random_colors(np.random.default_rng(5)).astype(np.float32)
    background = wall_image(np.random.default_rng(6), IMAGE_SIZE)
    image = render_meshes([(truth, faces)], K, IMAGE_SIZE, colors=[colours], background=background).rgb_uint8()
    landmarks = free_body_pose_landmarks().matrix
    keypoints = BodyKeypoints(POSE_KEYPOINT_SET, project_points((landmarks @ truth)[None], K)[0].astype(np.float32),
                              np.ones(33, np.float32), presence=np.ones(33, np.float32))
    human = human_of(guess, tokens[1], turn, guess_translation, model, keypoints)
    return dict(mesh_vqvae=mesh_vqvae, model=model, faces=faces, truth=truth, human=human, landmarks=landmarks,
                frame=Frame(image, 1_000_000_000, "camera", K))


def human_of(vertices, tokens, rotation, translation, model, keypoints, track_id="1") -> Human:
    pixels = project_points(vertices[None], K)[0]
    low, high = pixels.min(axis=0), pixels.max(axis=0)
    joints = (model.joint_regressor.double().numpy() @ vertices).astype(np.float32)
    return Human(id=track_id, score=0.9, box=np.concatenate([low, high - low]), tokens=tokens,
                 token_confidence=np.ones(len(tokens), np.float32), vertices=vertices.astype(np.float32),
                 joints=joints, joints_2d=project_points(joints[None].astype(np.float64), K)[0].astype(np.float32),
                 vertices_2d=pixels.astype(np.float32), root_position=joints[0].astype(np.float64),
                 root_rotation=rotation, crop_camera=np.array([1.0, 0.0, 0.0]), translation=translation,
                 keypoints=keypoints)


def stage_for(scene, signal, settings=SLOW, **stage_settings):
    net = load_displacement_net(bundled_displacement_net_path()) if signal != SPARSE else None
    return AlignmentRefinement(scene["mesh_vqvae"], scene["faces"], scene["model"].joint_regressor.numpy(),
                               StageSettings(signal=signal, budget_ms=60_000, **stage_settings), settings, net,
                               scene["landmarks"])


def reprojection_px(vertices, truth) -> float:
    return float(np.linalg.norm(project_points(np.asarray(vertices, np.float64)[None], K)[0]
                                - project_points(truth[None], K)[0], axis=1).mean())


def refined_frame(stage, scene, humans, stamp_ns=None):
    frame = scene["frame"] if stamp_ns is None else Frame(scene["frame"].image, stamp_ns, "camera", K)
    return stage.update(frame, FrameResult(frame.stamp_ns, "camera", IMAGE_SIZE, list(humans)))


@pytest.mark.parametrize("signal", [DENSE, SPARSE, BOTH])
def test_the_refined_mesh_lies_closer_to_the_person_in_the_image(scene, signal):
    stage = stage_for(scene, signal)
    before = reprojection_px(scene["human"].vertices, scene["truth"])
    result = refined_frame(stage, scene, [scene["human"]])
    (human,) = result.humans
    after = reprojection_px(human.vertices, scene["truth"])
    assert human.refined and result.skipped == {}
    assert after < 0.7 * before  # about 14 px before; after it, dense about 6, sparse (exact keypoints) about 5
    np.testing.assert_array_equal(human.tokens, scene["human"].tokens)  # the regressor's tokens stay
    joints = scene["model"].joint_regressor.double().numpy() @ human.vertices.astype(np.float64)
    np.testing.assert_allclose(human.joints, joints, atol=1e-5)
    np.testing.assert_allclose(human.root_position, joints[0], atol=1e-5)
    np.testing.assert_allclose(human.vertices_2d, project_points(human.vertices[None].astype(np.float64), K)[0],
                               atol=1e-3)


def test_what_cannot_be_refined_is_kept_and_counted(scene):
    human = scene["human"]
    outside = BodyKeypoints(POSE_KEYPOINT_SET, human.keypoints.points + 2000.0, human.keypoints.visibility,
                            presence=human.keypoints.presence)
    stage = stage_for(scene, SPARSE)
    result = refined_frame(stage, scene, [_with(human, keypoints=outside), _with(human, id="2", keypoints=None)])
    assert result.skipped == {"refine_too_few_targets": 1, "refine_no_keypoints": 1}
    for kept in result.humans:
        assert not kept.refined
        np.testing.assert_array_equal(kept.vertices, human.vertices)
    spent = AlignmentRefinement(scene["mesh_vqvae"], scene["faces"], None, StageSettings(SPARSE, budget_ms=1e-6),
                                SLOW, pose_landmarks=scene["landmarks"])
    result = refined_frame(spent, scene, [human, _with(human, id="2")])
    assert result.skipped == {"refine_over_budget": 2} and not any(h.refined for h in result.humans)


class _Wild(torch.nn.Module):
    """A displacement network gone wild: hundreds of pixels, in every direction, with full confidence."""

    def forward(self, inputs):
        generator = torch.Generator().manual_seed(0)
        flow = 300.0 * torch.randn((len(inputs), 2, 32, 32), generator=generator)
        return flow, torch.full((len(inputs), 1, 32, 32), 10.0)


def test_a_diverging_field_keeps_the_regressed_mesh(scene):
    stage = AlignmentRefinement(scene["mesh_vqvae"], scene["faces"], None, StageSettings(DENSE, budget_ms=60_000),
                                SLOW, net=_Wild())
    result = refined_frame(stage, scene, [scene["human"]])
    assert result.skipped == {"refine_diverged_field": 1} and not result.humans[0].refined
    np.testing.assert_array_equal(result.humans[0].vertices, scene["human"].vertices)


def test_both_signals_count_a_dropped_signal_only_when_the_person_has_neither(scene):
    stage = AlignmentRefinement(scene["mesh_vqvae"], scene["faces"], None, StageSettings(BOTH, budget_ms=60_000),
                                SLOW, net=_Wild(), pose_landmarks=scene["landmarks"])
    result = refined_frame(stage, scene, [scene["human"]])
    assert result.humans[0].refined and result.skipped == {}  # fitted to its keypoints alone
    result = refined_frame(stage, scene, [_with(scene["human"], keypoints=None)])
    assert not result.humans[0].refined
    assert result.skipped == {"refine_diverged_field": 1, "refine_no_keypoints": 1}


class _Unsure(torch.nn.Module):
    """A displacement network that trusts none of its displacements (as it often does on real images)."""

    def forward(self, inputs):
        shape = (len(inputs), 1, 32, 32)
        return torch.zeros((len(inputs), 2, 32, 32)), torch.full(shape, -10.0)


def test_both_signals_refine_with_the_keypoints_alone_where_no_displacement_is_trusted(scene):
    stage = AlignmentRefinement(scene["mesh_vqvae"], scene["faces"], None, StageSettings(BOTH, budget_ms=60_000),
                                SLOW, net=_Unsure(), pose_landmarks=scene["landmarks"])
    result = refined_frame(stage, scene, [scene["human"]])
    (human,) = result.humans
    assert human.refined and result.skipped == {}
    before = reprojection_px(scene["human"].vertices, scene["truth"])
    assert reprojection_px(human.vertices, scene["truth"]) < 0.7 * before
    dense_only = AlignmentRefinement(scene["mesh_vqvae"], scene["faces"], None,
                                     StageSettings(DENSE, budget_ms=60_000), SLOW, net=_Unsure())
    assert refined_frame(dense_only, scene, [scene["human"]]).skipped == {"refine_too_few_targets": 1}


def test_tracks_learn_a_texture_and_forget_it_when_they_end(scene):
    stage = stage_for(scene, DENSE, RefineSettings(iterations=2, budget_ms=60_000))
    refined_frame(stage, scene, [scene["human"]])
    assert set(stage.tracks) == {"1"} and stage.tracks["1"].texture.coverage > 0.2
    assert stage.tracks["1"].last is not None  # the next frame's temporal prior
    refined_frame(stage, scene, [_with(scene["human"], id="7")], stamp_ns=scene["frame"].stamp_ns + 3 * 10**9)
    assert set(stage.tracks) == {"7"}
    net = load_displacement_net(bundled_displacement_net_path())
    untracked = AlignmentRefinement(scene["mesh_vqvae"], scene["faces"], None, StageSettings(DENSE),
                                    RefineSettings(iterations=2), net, tracked=False)
    refined_frame(untracked, scene, [scene["human"]])
    assert untracked.tracks == {}


@pytest.mark.parametrize("warm_start", [False, True])
def test_the_next_frame_starts_from_the_regressed_latent_unless_warm_started(scene, warm_start):
    stage = stage_for(scene, SPARSE, RefineSettings(iterations=3, budget_ms=60_000), warm_start=warm_start)
    refined_frame(stage, scene, [scene["human"]])
    last = stage.tracks["1"].last
    starts, refine = [], stage.refiner.refine
    stage.refiner.refine = lambda state, *args, **kwargs: starts.append((state, kwargs)) or refine(state, *args,
                                                                                                   **kwargs)
    refined_frame(stage, scene, [scene["human"]], stamp_ns=scene["frame"].stamp_ns + 10**8)
    (start, kwargs), = starts
    np.testing.assert_array_equal(kwargs["previous"].latent, last.latent)  # the temporal prior either way
    expected = last.latent if warm_start else kwargs["prior"].latent
    np.testing.assert_array_equal(start.latent, expected)
    assert not np.array_equal(last.latent, kwargs["prior"].latent)


def test_a_signal_without_its_source_is_refused(scene):
    with pytest.raises(InputError, match="dense refinement signal needs the displacement network"):
        AlignmentRefinement(scene["mesh_vqvae"], scene["faces"], None, StageSettings(DENSE))
    with pytest.raises(InputError, match="sparse refinement signal needs the mesh's pose landmarks"):
        AlignmentRefinement(scene["mesh_vqvae"], scene["faces"], None, StageSettings(SPARSE))


def _with(human: Human, **changes) -> Human:
    return replace(human, **changes)


@pytest.mark.gpu
@pytest.mark.parametrize("signal", [DENSE, SPARSE])
def test_the_stage_refines_on_cuda_as_on_the_cpu(scene, signal):
    cuda = AlignmentRefinement(scene["mesh_vqvae"].to("cuda"), scene["faces"], None,
                               StageSettings(signal=signal, budget_ms=60_000), SLOW,
                               load_displacement_net(bundled_displacement_net_path()) if signal == DENSE else None,
                               scene["landmarks"])
    try:
        (human,) = refined_frame(cuda, scene, [scene["human"]]).humans
    finally:
        scene["mesh_vqvae"].to("cpu")
    (expected,) = refined_frame(stage_for(scene, signal), scene, [scene["human"]]).humans
    assert human.refined and expected.refined
    # float32 placement on the GPU against float64 on the CPU, through 15 Adam steps
    assert np.abs(human.vertices - expected.vertices).max() < 0.01  # metres
