"""One-Euro filters on message stamps: for vectors, for a whole body with one shared cutoff, and on SO(3).

The One-Euro filter (Casiez, Roussel, Vogel, "1 Euro Filter: A Simple Speed-based Low-pass Filter for Noisy Input
in Interactive Systems", CHI 2012) is a first-order low-pass filter whose cutoff rises with the signal's speed:

    alpha(dt, fc) = 1 / (1 + tau / dt),  tau = 1 / (2 pi fc)            (the exponential smoothing factor)
    dx   = (x - x_hat_prev) / dt;  dx_hat = alpha(dt, d_cutoff) dx + (1 - alpha) dx_hat_prev
    fc   = min_cutoff + beta |dx_hat|
    x_hat = alpha(dt, fc) x + (1 - alpha(dt, fc)) x_hat_prev

Slow signals get the low `min_cutoff` (jitter removed), fast ones a higher cutoff (little lag). Everything is in
seconds between stamps, not frames, so dropped frames and other rates give the same behaviour. The filter is causal:
each output depends on the current and past inputs only (zero frames of latency).

`order` 2 cascades a second first-order section with the same adaptive factor on the first one's output (the speed
is still measured on the first section, which follows the input closely). The pair rolls off at 40 dB per decade
instead of 20: at the same lag on real motion it leaves less high-frequency jitter, which is what the acceleration
error measures (on the synthetic sequences of `benchmarks/temporal.py`, about a fifth less at equal lag).

Three forms share that recurrence:

* `OneEuroFilter`: any array; each component has its own speed and cutoff (the paper's per-axis filter), or, with
  `shared=True`, one cutoff for the whole array from the mean speed of its points (rows).
* `BodyFilter`: vertices (V, 3) and joints (J, 3) of a body with one cutoff from the mean joint speed. One smoothing
  factor for every point keeps linear relations between them: joints regressed from vertices stay the regression
  of the filtered vertices.
* `RotationOneEuroFilter`: a rotation matrix, filtered on the manifold. The innovation is the rotation vector
  log(R_hat_prev^T R) (body frame), its speed the angular speed in rad/s, and the update moves along the geodesic:
  R_hat = R_hat_prev exp(alpha log(R_hat_prev^T R)), i.e. slerp by alpha. Never per matrix entry, so the output
  is always a rotation. One section.

Units: cutoffs in Hz, `beta` in 1/(unit of the signal), dt in seconds. A dt <= 0 (a repeated stamp: no time has
passed) leaves the state unchanged and returns it.
"""

from __future__ import annotations

import math

import numpy as np


def smoothing_factor(dt_s: float, cutoff_hz) -> np.ndarray | float:
    """Exponential smoothing factor of a first-order low-pass filter with cutoff `cutoff_hz` over `dt_s` seconds."""
    tau = 1.0 / (2.0 * math.pi * np.asarray(cutoff_hz, dtype=np.float64))
    return 1.0 / (1.0 + tau / dt_s)


class AdaptiveCutoff:
    """The One-Euro filter's speed estimate and cutoff: alpha of a step from the previous estimate to a new value.

    shared: one cutoff from the mean over rows of each row's speed (an (N, 3) array is N points); otherwise one
    per component.
    """

    def __init__(self, min_cutoff_hz: float, beta: float, derivative_cutoff_hz: float, shared: bool = False):
        self.min_cutoff_hz = float(min_cutoff_hz)
        self.beta = float(beta)
        self.derivative_cutoff_hz = float(derivative_cutoff_hz)
        self.shared = shared
        self.derivative: np.ndarray | None = None  # units per second, shaped like the signal

    def reset(self, shape=None) -> None:
        self.derivative = None if shape is None else np.zeros(shape)

    def __call__(self, value: np.ndarray, previous: np.ndarray, dt_s: float):
        """Update the speed with `value` arriving `dt_s` > 0 seconds after the estimate `previous`; the smoothing
        factor of this step (a float when shared, else per component)."""
        raw_derivative = (value - previous) / dt_s
        if self.derivative is None or self.derivative.shape != raw_derivative.shape:
            self.derivative = np.zeros(raw_derivative.shape)
        self.derivative = self.derivative + smoothing_factor(dt_s, self.derivative_cutoff_hz) * (
            raw_derivative - self.derivative)
        if self.shared:
            rows = self.derivative.reshape(len(self.derivative), -1) if self.derivative.ndim > 1 else (
                self.derivative.reshape(1, -1))
            return float(smoothing_factor(dt_s, self.min_cutoff_hz + self.beta * np.linalg.norm(rows, axis=1).mean()))
        return smoothing_factor(dt_s, self.min_cutoff_hz + self.beta * np.abs(self.derivative))


class OneEuroFilter:
    """One-Euro filter of an array (see the module docstring).

    min_cutoff_hz > 0, beta >= 0 (1/(unit/s) of the signal), derivative_cutoff_hz > 0, order 1 or 2 sections.
    shared: one cutoff for the whole array (see `AdaptiveCutoff`).
    """

    def __init__(self, min_cutoff_hz: float, beta: float, derivative_cutoff_hz: float, shared: bool = False,
                 order: int = 1):
        self.cutoff = AdaptiveCutoff(min_cutoff_hz, beta, derivative_cutoff_hz, shared)
        self.order = int(order)
        self.sections: list[np.ndarray] = []  # each section's output; the last is the filter's

    @property
    def value(self) -> np.ndarray | None:
        return self.sections[-1] if self.sections else None

    @property
    def derivative(self) -> np.ndarray | None:
        """The speed estimate (units per second), None before the first value."""
        return self.cutoff.derivative if self.sections else None

    def reset(self, value=None) -> None:
        """Forget the past; with `value`, start from it at rest."""
        if value is None:
            self.sections = []
            self.cutoff.reset()
            return
        value = np.array(value, dtype=np.float64)
        self.sections = [value.copy() for _ in range(self.order)]
        self.cutoff.reset(value.shape)

    def __call__(self, value, dt_s: float) -> np.ndarray:
        """Filter `value` arriving `dt_s` seconds after the previous one; the first value passes unchanged."""
        value = np.asarray(value, dtype=np.float64)
        if not self.sections or self.sections[0].shape != value.shape:
            self.reset(value)
        elif dt_s > 0:
            alpha = self.cutoff(value, self.sections[0], dt_s)
            source = value
            for index, section in enumerate(self.sections):
                self.sections[index] = section + alpha * (source - section)
                source = self.sections[index]
        return self.sections[-1].copy()


class RotationOneEuroFilter:
    """One-Euro filter of a rotation matrix on SO(3) (see the module docstring); beta in 1/(rad/s)."""

    def __init__(self, min_cutoff_hz: float, beta: float, derivative_cutoff_hz: float):
        self.min_cutoff_hz = float(min_cutoff_hz)
        self.beta = float(beta)
        self.derivative_cutoff_hz = float(derivative_cutoff_hz)
        self.value: np.ndarray | None = None  # (3, 3)
        self.angular_velocity = np.zeros(3)  # rad/s, body frame

    @property
    def initialised(self) -> bool:
        return self.value is not None

    def reset(self, rotation=None) -> None:
        self.value = None if rotation is None else project_to_rotation(rotation)
        self.angular_velocity = np.zeros(3)

    def __call__(self, rotation, dt_s: float) -> np.ndarray:
        rotation = np.asarray(rotation, dtype=np.float64)
        if self.value is None:
            self.reset(rotation)
            return self.value.copy()
        if dt_s <= 0:
            return self.value.copy()
        innovation = rotation_log(self.value.T @ rotation)  # rotation vector from the estimate to the input
        self.angular_velocity = self.angular_velocity + smoothing_factor(dt_s, self.derivative_cutoff_hz) * (
            innovation / dt_s - self.angular_velocity)
        alpha = smoothing_factor(dt_s, self.min_cutoff_hz + self.beta * float(np.linalg.norm(self.angular_velocity)))
        # a product of exact rotations (the input is projected once, at reset): no drift to remove
        self.value = self.value @ rotation_exp(alpha * innovation)
        return self.value.copy()


class BodyFilter:
    """A body's shape and pose in its own (canonical) frame: vertices (V, 3) and joints (J, 3) with one cutoff.

    The speed that opens the cutoff is the mean joint speed (m/s) when there are joints, else the mean vertex
    speed. Joints and vertices get the same smoothing factor at every step and section, so joints regressed
    linearly from the vertices stay the regression of the filtered vertices. Arrays keep their floating dtype
    (float32 meshes stay float32: half the memory traffic, and far finer than the network's millimetres).
    """

    def __init__(self, min_cutoff_hz: float, beta: float, derivative_cutoff_hz: float, order: int = 1):
        self.cutoff = AdaptiveCutoff(min_cutoff_hz, beta, derivative_cutoff_hz, shared=True)
        self.order = int(order)
        self.vertices: list[np.ndarray] = []  # per section
        self.joints: list[np.ndarray] | None = None

    @property
    def initialised(self) -> bool:
        return bool(self.vertices)

    def reset(self, vertices=None, joints=None) -> None:
        self.cutoff.reset()
        if vertices is None:
            self.vertices, self.joints = [], None
            return
        self.vertices = [_floating(vertices).copy() for _ in range(self.order)]
        self.joints = None if joints is None else [_floating(joints).copy() for _ in range(self.order)]

    def __call__(self, vertices, joints, dt_s: float) -> tuple[np.ndarray, np.ndarray | None]:
        vertices = _floating(vertices)
        joints = None if joints is None else _floating(joints)
        if (not self.vertices or self.vertices[0].shape != vertices.shape or (joints is None) != (self.joints is None)
                or (joints is not None and joints.shape != self.joints[0].shape)):
            self.reset(vertices, joints)
        elif dt_s > 0:
            probe, previous = (joints, self.joints[0]) if joints is not None else (vertices, self.vertices[0])
            alpha = self.cutoff(np.asarray(probe, np.float64), np.asarray(previous, np.float64), dt_s)
            _cascade(self.vertices, vertices, alpha)
            if joints is not None:
                _cascade(self.joints, joints, alpha)
        return self.vertices[-1].copy(), None if self.joints is None else self.joints[-1].copy()


def _cascade(sections: list[np.ndarray], value: np.ndarray, alpha: float) -> None:
    source = value
    for index, section in enumerate(sections):
        sections[index] = section + alpha * (source - section).astype(section.dtype, copy=False)
        source = sections[index]


def _floating(values) -> np.ndarray:
    values = np.asarray(values)
    return values if values.dtype in (np.float32, np.float64) else values.astype(np.float64)


# --- rotations: exp and log maps of SO(3) (Rodrigues), numpy only ---


def rotation_exp(rotation_vector) -> np.ndarray:
    """(3,) axis-angle (radians) -> (3, 3) rotation matrix."""
    vector = np.asarray(rotation_vector, dtype=np.float64)
    angle = float(np.linalg.norm(vector))
    x, y, z = vector
    cross = np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])
    if angle < 1e-8:
        return np.eye(3) + cross
    a = math.sin(angle) / angle
    b = (1.0 - math.cos(angle)) / (angle * angle)
    return np.eye(3) + a * cross + b * (cross @ cross)


def rotation_log(rotation) -> np.ndarray:
    """(3, 3) rotation matrix -> (3,) axis-angle with angle in [0, pi]."""
    m = np.asarray(rotation, dtype=np.float64)
    cos_angle = min(1.0, max(-1.0, (np.trace(m) - 1.0) / 2.0))
    angle = math.acos(cos_angle)
    skew = np.array([m[2, 1] - m[1, 2], m[0, 2] - m[2, 0], m[1, 0] - m[0, 1]])
    if angle < 1e-6:
        return skew / 2.0
    if angle < math.pi - 1e-4:
        return skew * (angle / (2.0 * math.sin(angle)))
    # near pi the skew part vanishes: the axis is the dominant column of (R + I) / 2 = a a^T
    outer = (m + np.eye(3)) / 2.0
    column = int(np.argmax(np.diag(outer)))
    axis = outer[:, column] / math.sqrt(max(outer[column, column], 1e-12))
    if skew @ axis < 0:
        axis = -axis
    return axis * angle


def project_to_rotation(matrix) -> np.ndarray:
    """The rotation nearest to a (3, 3) matrix (SVD), removing the drift of repeated products."""
    u, _, vt = np.linalg.svd(np.asarray(matrix, dtype=np.float64))
    if np.linalg.det(u @ vt) < 0:
        u[:, -1] = -u[:, -1]
    return u @ vt
