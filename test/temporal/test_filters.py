"""One-Euro filters on stamps: constant signals pass, noise shrinks by the expected factor, steps are followed, and
irregular stamps, repeated stamps and rotations near 180 degrees are handled."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from vqhps_ros.temporal import (
    BodyFilter,
    OneEuroFilter,
    RotationOneEuroFilter,
    project_to_rotation,
    rotation_exp,
    rotation_log,
    smoothing_factor,
)

FPS = 30.0
DT = 1.0 / FPS


def run(filter_, values, dts):
    return np.array([filter_(value, dt) for value, dt in zip(values, dts, strict=True)])


def test_a_constant_signal_passes_unchanged():
    value = np.array([0.3, -1.2, 4.0])
    outputs = run(OneEuroFilter(1.0, 0.5, 1.0), [value] * 50, [DT] * 50)
    np.testing.assert_array_equal(outputs, np.tile(value, (50, 1)))
    rotation = Rotation.from_rotvec([0.4, -2.0, 0.7]).as_matrix()
    rotations = run(RotationOneEuroFilter(1.0, 0.5, 1.0), [rotation] * 50, [DT] * 50)
    np.testing.assert_allclose(rotations, np.tile(rotation, (50, 1, 1)), atol=1e-12)
    vertices, joints = np.random.default_rng(0).normal(size=(30, 3)), np.ones((17, 3))
    body = BodyFilter(1.0, 0.5, 1.0)
    for _ in range(20):
        filtered_vertices, filtered_joints = body(vertices, joints, DT)
    np.testing.assert_allclose(filtered_vertices, vertices, atol=1e-12)
    np.testing.assert_allclose(filtered_joints, joints, atol=1e-12)


def test_white_noise_shrinks_by_the_low_pass_factor():
    # beta = 0: an exponential average with alpha = 1 / (1 + tau / dt); its output variance is alpha / (2 - alpha)
    # of the input's (white noise).
    rng = np.random.default_rng(1)
    noise = rng.normal(0.0, 0.05, size=(6000, 3))
    outputs = run(OneEuroFilter(1.0, 0.0, 1.0), noise, [DT] * len(noise))
    alpha = smoothing_factor(DT, 1.0)
    expected = np.sqrt(alpha / (2 - alpha))
    measured = outputs[100:].std() / noise[100:].std()
    assert measured == pytest.approx(expected, rel=0.08)
    assert measured < 0.35  # 1 Hz at 30 Hz: noise down about three times


def test_noise_at_rest_shrinks_even_with_speed_adaptation():
    rng = np.random.default_rng(2)
    noise = rng.normal(0.0, 0.02, size=(3000, 3))
    outputs = run(OneEuroFilter(1.0, 1.0, 1.0), noise, [DT] * len(noise))
    assert outputs[100:].std() / noise[100:].std() < 0.4


def test_a_step_is_followed_within_a_few_frames():
    step = np.concatenate([np.zeros((30, 1)), np.ones((60, 1))])
    slow = run(OneEuroFilter(1.0, 0.0, 1.0), step, [DT] * len(step))[:, 0]
    fast = run(OneEuroFilter(1.0, 5.0, 1.0), step, [DT] * len(step))[:, 0]
    frames_to_90 = lambda outputs: int(np.argmax(outputs[30:] >= 0.9))  # noqa: E731
    # beta = 0: a plain low pass, tau = 1 / (2 pi) s: 90 % after about ln(10) tau = 0.37 s = 11 frames
    assert 10 <= frames_to_90(slow) <= 13
    assert frames_to_90(fast) <= 3  # speed opens the cutoff
    assert np.all(np.diff(fast) >= 0) and fast[-1] == pytest.approx(1.0, abs=1e-3)  # no overshoot


def test_irregular_stamps_give_the_response_of_regular_ones():
    # A plain low pass over 1 s of a step: the response depends on the time elapsed, not on how many frames came.
    rng = np.random.default_rng(3)
    regular = [DT] * 30
    irregular = list(rng.uniform(0.005, 0.03, size=200))
    irregular = irregular[: int(np.searchsorted(np.cumsum(irregular), 1.0))]
    irregular.append(1.0 - sum(irregular))
    results = []
    for dts in (regular, irregular):
        filter_ = OneEuroFilter(0.5, 0.0, 1.0)
        filter_(np.zeros(1), DT)
        results.append(run(filter_, [np.ones(1)] * len(dts), dts)[-1, 0])
    continuous = 1 - np.exp(-1.0 * 2 * np.pi * 0.5)  # 1 - exp(-t / tau)
    assert len(irregular) > 45  # about 57 frames
    assert results[0] == pytest.approx(continuous, abs=0.03)
    assert results[1] == pytest.approx(continuous, abs=0.03)


def test_a_repeated_stamp_barely_moves_the_state():
    filter_ = OneEuroFilter(1.0, 1.0, 1.0)
    filter_(np.zeros(3), DT)
    assert np.array_equal(filter_(np.ones(3), 0.0), np.zeros(3))
    assert np.array_equal(filter_(np.ones(3), -0.5), np.zeros(3))


def test_rotation_noise_shrinks_on_so3_and_outputs_stay_rotations():
    rng = np.random.default_rng(4)
    base = Rotation.from_rotvec([0.0, 2.5, 0.0])
    noisy = [(base * Rotation.from_rotvec(rng.normal(0, 0.08, 3))).as_matrix() for _ in range(1500)]
    outputs = run(RotationOneEuroFilter(1.0, 0.0, 1.0), noisy, [DT] * len(noisy))
    error_in = [np.linalg.norm(rotation_log(base.as_matrix().T @ m)) for m in noisy[100:]]
    error_out = [np.linalg.norm(rotation_log(base.as_matrix().T @ m)) for m in outputs[100:]]
    assert np.mean(error_out) < 0.4 * np.mean(error_in)
    for matrix in outputs[::50]:
        np.testing.assert_allclose(matrix @ matrix.T, np.eye(3), atol=1e-9)
        assert np.linalg.det(matrix) == pytest.approx(1.0)


def test_rotation_filter_follows_a_turn_through_180_degrees_along_the_geodesic():
    # a body turning at 1 rad/s about the vertical for 4 s: from 0 through pi to 4 rad
    angles = np.arange(120) * DT
    inputs = [Rotation.from_rotvec([0.0, angle, 0.0]).as_matrix() for angle in angles]
    outputs = run(RotationOneEuroFilter(1.0, 2.0, 1.0), inputs, [DT] * len(inputs))
    yaw = np.unwrap([Rotation.from_matrix(m).as_euler("YXZ")[0] for m in outputs])
    assert np.all(np.diff(yaw) > 0)  # always turning the same way, never the long way round
    assert np.max(np.abs(yaw[30:] - angles[30:])) < 0.25  # lag under a quarter radian
    tilt = [np.linalg.norm(Rotation.from_matrix(m).as_rotvec() * [1, 0, 1]) for m in outputs]
    assert max(tilt) < 1e-6  # stays about the vertical: a geodesic, not a per-entry average


def test_exp_and_log_are_inverse_including_near_pi():
    rng = np.random.default_rng(5)
    for angle in (0.0, 1e-9, 0.3, 2.0, np.pi - 1e-6, np.pi):
        axis = rng.normal(size=3)
        vector = axis / np.linalg.norm(axis) * angle
        matrix = rotation_exp(vector)
        np.testing.assert_allclose(matrix, Rotation.from_rotvec(vector).as_matrix(), atol=1e-9)
        np.testing.assert_allclose(rotation_exp(rotation_log(matrix)), matrix, atol=1e-6)
    skewed = rotation_exp([0.2, 0.1, 0.0]) + 1e-3
    fixed = project_to_rotation(skewed)
    np.testing.assert_allclose(fixed @ fixed.T, np.eye(3), atol=1e-12)


def test_body_filter_keeps_joints_the_regression_of_the_vertices():
    # joints = W @ vertices (a linear regressor) holds after filtering: one smoothing factor for both
    rng = np.random.default_rng(6)
    weights = rng.dirichlet(np.ones(40), size=17)
    body = BodyFilter(1.0, 1.0, 1.0)
    for _ in range(60):
        vertices = rng.normal(0, 0.05, size=(40, 3)) + np.linspace(0, 1, 40)[:, None]
        filtered_vertices, filtered_joints = body(vertices, weights @ vertices, DT)
    np.testing.assert_allclose(filtered_joints, weights @ filtered_vertices, atol=1e-12)


def test_a_second_section_leaves_less_jitter_at_the_same_lag():
    # a 0.9 Hz movement (a walking limb) plus white noise, at 15 Hz: first order at 2 Hz and second order at 4 Hz
    # lag about as much behind the movement, and the second leaves less frame-to-frame acceleration of the noise
    dt = 1 / 15
    times = np.arange(3000) * dt
    movement = 0.1 * np.sin(2 * np.pi * 0.9 * times)[:, None]
    noise = np.random.default_rng(7).normal(0, 0.03, size=movement.shape)

    def filtered(order, cutoff, signal):
        return run(OneEuroFilter(cutoff, 0.0, 1.0, order=order), signal, [dt] * len(signal))[100:, 0]

    def lag(order, cutoff):
        return np.sqrt(np.mean((filtered(order, cutoff, movement) - movement[100:, 0]) ** 2))

    def jitter(order, cutoff):
        return np.abs(np.diff(filtered(order, cutoff, noise), 2)).mean() / np.abs(np.diff(noise[100:, 0], 2)).mean()

    assert lag(2, 4.0) == pytest.approx(lag(1, 2.0), rel=0.1)
    assert jitter(2, 4.0) < 0.85 * jitter(1, 2.0)
    step = np.concatenate([np.zeros((10, 1)), np.ones((60, 1))])
    outputs = run(OneEuroFilter(1.0, 0.0, 1.0, order=2), step, [dt] * len(step))[:, 0]
    assert np.all(np.diff(outputs) >= 0) and outputs[-1] == pytest.approx(1.0, abs=1e-3)  # no overshoot
    np.testing.assert_array_equal(run(OneEuroFilter(1.0, 1.0, 1.0, order=2), [np.ones(2)] * 5, [dt] * 5),
                                  np.ones((5, 2)))
