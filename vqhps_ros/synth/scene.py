"""Synthetic frames: free-body people placed on the floor of a procedural room, rendered, with exact ground truth.

A person is given by shape (betas), body pose (23 axis-angle joints), a world rotation and a floor position: the
posed body (zero global orientation) is rotated, then moved so that its lowest vertex touches the floor (y = 0) and
its horizontal vertex centroid sits on the floor position. Ground truth per person, camera frame (OpenCV, metres):

* `canonical_vertices`: the posed body without global orientation and translation, minus its vertex centroid;
  `vertices_camera = R @ canonical_vertices + translation`, R the axis-angle `global_orient`, `translation` the
  vertex centroid in the camera frame (the training format of `vqhps_ros.train.hps_data`);
* `joints_camera` (24 SMPL joints) and `h36m_camera` (17 H36M joints, free body regressor);
* `keypoints_2d` (17, 3): pixel x, y of the H36M joints in `H36M_TO_J17` order, confidence 1 inside the image
  (occluded or not: synthetic ground truth is exact), else 0; `keypoints_visible` (17,): inside the image and
  not hidden by another person (the pixel shows this person);
* `box` (x, y, w, h): the projected mesh's extent clipped to the image; `visible_fraction`: the share of the
  camera-facing vertices that the depth map shows (other people and the image border hide the rest).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from ..body.free_body import FreeBodyData, load_free_body, load_free_body_data
from ..body.joints import H36M_TO_J17, JointRegressor
from ..errors import InputError
from .appearance import sample_betas, sample_outfit, vertex_colors
from .backgrounds import Lighting, finish_frame, room_background, sample_lighting
from .cameras import Camera, CameraRanges, horizontal_half_fov, sample_camera
from .poses import sample_poses
from .render import Rendering, render_meshes

VISIBILITY_DEPTH_TOLERANCE_M = 0.02


@dataclass(frozen=True)
class PersonPlacement:
    """One person to render: betas (B,), body_pose (69,) axis-angle, yaw about the world up axis (radians),
    lean (3,) small extra axis-angle tilt, floor_position (2,) world x, z metres, colors (V, 3) RGB in [0, 1]."""

    betas: np.ndarray
    body_pose: np.ndarray
    yaw: float
    floor_position: np.ndarray
    colors: np.ndarray
    lean: np.ndarray = field(default_factory=lambda: np.zeros(3))

    def world_rotation(self) -> np.ndarray:
        return Rotation.from_rotvec(self.lean).as_matrix() @ Rotation.from_rotvec([0.0, self.yaw, 0.0]).as_matrix()


@dataclass(frozen=True)
class PersonTruth:
    """Exact ground truth of one rendered person (see the module docstring). Arrays float64 unless noted."""

    betas: np.ndarray
    body_pose: np.ndarray
    global_orient: np.ndarray
    translation: np.ndarray
    canonical_vertices: np.ndarray  # (V, 3) float32
    vertices_camera: np.ndarray  # (V, 3) float32
    joints_camera: np.ndarray  # (24, 3)
    h36m_camera: np.ndarray  # (17, 3)
    keypoints_2d: np.ndarray  # (17, 3)
    keypoints_visible: np.ndarray  # (17,) bool
    box: np.ndarray  # (4,)
    visible_fraction: float


@dataclass(frozen=True)
class SyntheticFrame:
    """image (H, W, 3) uint8 RGB; the camera; one `PersonTruth` per placed person (rendering order); rendering."""

    image: np.ndarray
    camera: Camera
    people: list[PersonTruth]
    rendering: Rendering


@dataclass(frozen=True)
class SceneSettings:
    """Random scenes: image size (H, W), people per frame, their floor distance from the camera (m), the chance
    that a person is put in the line of sight of another (occlusions), the smallest gap between people (m)."""

    image_size: tuple[int, int] = (480, 640)
    min_people: int = 1
    max_people: int = 3
    distance_m: tuple[float, float] = (1.6, 9.0)
    occlusion_probability: float = 0.5
    min_separation_m: float = 0.7
    camera: CameraRanges = CameraRanges()

    def __post_init__(self):
        if not 1 <= self.min_people <= self.max_people:
            raise InputError(f"expected 1 <= min_people <= max_people, found {self.min_people}, {self.max_people}")
        if not 0.0 < self.distance_m[0] < self.distance_m[1]:
            raise InputError(f"expected a distance range 0 < near < far, found {self.distance_m}")


class SceneGenerator:
    """Renders free-body people into synthetic frames. One instance holds the body model (CPU or a torch device)."""

    def __init__(self, body: FreeBodyData | None = None, device: str | torch.device = "cpu"):
        self.body = body or load_free_body_data()
        self.device = torch.device(device)
        self.model = load_free_body(num_betas=self.body.num_betas, create_transl=False, dtype=torch.float64)
        self.model = self.model.to(self.device)
        self.h36m = JointRegressor(self.body.J_regressor_h36m)
        self.faces = torch.as_tensor(self.body.faces, device=self.device)

    # ------------------------------------------------------------------------------------------- bodies

    def pose_bodies(self, betas: np.ndarray, body_pose: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posed bodies without global orientation or translation: vertices (P, V, 3) and SMPL joints (P, 24, 3)."""
        betas = torch.as_tensor(np.asarray(betas, dtype=np.float64), device=self.device)
        body_pose = torch.as_tensor(np.asarray(body_pose, dtype=np.float64).reshape(len(betas), -1),
                                    device=self.device)
        with torch.no_grad():
            output = self.model(betas=betas, body_pose=body_pose,
                                global_orient=torch.zeros(len(betas), 3, dtype=torch.float64, device=self.device))
        return output.vertices.cpu().numpy(), output.joints[:, :24].cpu().numpy()

    def camera_vertices(self, betas: np.ndarray, body_pose: np.ndarray, global_orient: np.ndarray,
                        translation: np.ndarray) -> np.ndarray:
        """(P, V, 3) camera-frame meshes from ground-truth parameters (P, B), (P, 69), (P, 3), (P, 3):
        R(global_orient) @ (posed body - its vertex centroid) + translation, as `PersonTruth` defines them."""
        vertices, _ = self.pose_bodies(betas, body_pose)
        canonical = vertices - vertices.mean(axis=1, keepdims=True)
        rotations = Rotation.from_rotvec(np.asarray(global_orient, dtype=np.float64).reshape(-1, 3)).as_matrix()
        return np.einsum("pij,pvj->pvi", rotations, canonical) + np.asarray(translation)[:, None, :]

    def random_placements(self, rng: np.random.Generator, camera: Camera,
                          settings: SceneSettings = SceneSettings()) -> list[PersonPlacement]:
        """1 to 3 people (settings) with random shapes, poses, outfits, spread over the visible floor."""
        count = int(rng.integers(settings.min_people, settings.max_people + 1))
        positions = _floor_positions(rng, camera, count, settings)
        betas = sample_betas(rng, len(positions), self.body.num_betas)
        poses = sample_poses(rng, len(positions)).reshape(len(positions), -1)
        return [PersonPlacement(betas[i], poses[i], float(rng.uniform(0, 2 * np.pi)), positions[i],
                                self.random_colors(rng), rng.normal(0.0, np.deg2rad(3), size=3))
                for i in range(len(positions))]

    def random_colors(self, rng: np.random.Generator) -> np.ndarray:
        """(V, 3) per-vertex colours of a random outfit."""
        return vertex_colors(sample_outfit(rng), self.body.weights, self.body.v_template, rng)

    # -------------------------------------------------------------------------------------------- frames

    def random_frame(self, rng: np.random.Generator, settings: SceneSettings = SceneSettings()) -> SyntheticFrame:
        """A random camera, room, lighting and 1 to 3 people, rendered with their ground truth."""
        camera = sample_camera(rng, settings.image_size, settings.camera)
        placements = self.random_placements(rng, camera, settings)
        return self.compose_frame(rng, camera, placements, room_background(rng, camera), sample_lighting(rng))

    def compose_frame(self, rng: np.random.Generator, camera: Camera, placements: list[PersonPlacement],
                      background: np.ndarray, lighting: Lighting) -> SyntheticFrame:
        """Render `placements` over `background` (H, W, 3) float RGB in [0, 1]; ground truth for each person."""
        if not placements:
            raise InputError("expected at least one person to place in the frame")
        vertices, joints = self.pose_bodies(np.stack([p.betas for p in placements]),
                                            np.stack([p.body_pose for p in placements]))
        posed = []
        for placement, body_vertices, body_joints in zip(placements, vertices, joints, strict=True):
            rotation, shift = _floor_transform(placement, body_vertices)
            to_camera = camera.rotation @ rotation
            origin = camera.world_to_camera(shift)  # where the body's own origin lands
            posed.append((placement, to_camera, body_vertices, body_vertices @ to_camera.T + origin,
                          body_joints @ to_camera.T + origin))
        meshes = [(torch.as_tensor(entry[3], device=self.device), self.faces) for entry in posed]
        rendering = render_meshes(meshes, camera.intrinsics, camera.image_size, [p.colors for p in placements],
                                  background, lighting.direction, lighting.ambient, lighting.diffuse)
        image = finish_frame(rng, rendering.rgb.cpu().numpy(), lighting)
        mesh_id, depth = rendering.mesh_id.cpu().numpy(), rendering.depth.cpu().numpy()
        people = [self._truth(camera, mesh_id, depth, index, *entry) for index, entry in enumerate(posed)]
        return SyntheticFrame(image, camera, people, rendering)

    def _truth(self, camera: Camera, mesh_id: np.ndarray, depth: np.ndarray, index: int,
               placement: PersonPlacement, to_camera: np.ndarray, body_vertices: np.ndarray,
               vertices_camera: np.ndarray, joints_camera: np.ndarray) -> PersonTruth:
        h36m_camera = self.h36m(vertices_camera)
        keypoints, inside = _project_keypoints(h36m_camera[list(H36M_TO_J17)], camera)
        return PersonTruth(
            betas=np.asarray(placement.betas, dtype=np.float64),
            body_pose=np.asarray(placement.body_pose, dtype=np.float64),
            global_orient=Rotation.from_matrix(to_camera).as_rotvec(),
            translation=vertices_camera.mean(axis=0),
            canonical_vertices=(body_vertices - body_vertices.mean(axis=0)).astype(np.float32),
            vertices_camera=vertices_camera.astype(np.float32),
            joints_camera=joints_camera,
            h36m_camera=h36m_camera,
            keypoints_2d=keypoints,
            keypoints_visible=inside & _shows_person(mesh_id, keypoints[:, :2], index),
            box=_clipped_box(vertices_camera, camera),
            visible_fraction=_visible_fraction(vertices_camera, self.body.faces, depth, camera),
        )


# --------------------------------------------------------------------------------------------- placement


def _floor_transform(placement: PersonPlacement, body_vertices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World rotation (3, 3) and shift (3,) putting the posed body's lowest vertex on the floor at its position."""
    rotation = placement.world_rotation()
    rotated = body_vertices @ rotation.T
    x, z = placement.floor_position
    shift = np.array([x - rotated[:, 0].mean(), -rotated[:, 1].min(), z - rotated[:, 2].mean()])
    return rotation, shift


def _floor_positions(rng: np.random.Generator, camera: Camera, count: int, settings: SceneSettings) -> list:
    """Up to `count` floor points (x, z) in view, at least `min_separation_m` apart; some behind one another."""
    half_fov = 0.85 * horizontal_half_fov(camera)
    origin = camera.position
    positions, bearings = [], []
    for _ in range(20 * count):
        if len(positions) == count:
            break
        if positions and rng.uniform() < settings.occlusion_probability:
            bearing = bearings[rng.integers(len(bearings))] + rng.normal(0.0, 0.04)
        else:
            bearing = rng.uniform(-half_fov, half_fov)
        distance = rng.uniform(*settings.distance_m)
        candidate = np.array([origin[0] - distance * np.sin(bearing), origin[2] + distance * np.cos(bearing)])
        if all(np.linalg.norm(candidate - other) >= settings.min_separation_m for other in positions):
            positions.append(candidate)
            bearings.append(bearing)
    return positions


# ----------------------------------------------------------------------------------------- ground truth


def _project(points: np.ndarray, camera: Camera) -> np.ndarray:
    """(N, 3) camera-frame points -> (N, 2) pixels (points behind the camera give meaningless values)."""
    z = np.where(np.abs(points[:, 2]) > 1e-9, points[:, 2], 1e-9)
    homogeneous = (points / z[:, None]) @ camera.intrinsics.T
    return homogeneous[:, :2]


def _inside_image(pixels: np.ndarray, camera: Camera) -> np.ndarray:
    height, width = camera.image_size
    return ((pixels[:, 0] >= -0.5) & (pixels[:, 0] < width - 0.5) & (pixels[:, 1] >= -0.5)
            & (pixels[:, 1] < height - 0.5))


def _project_keypoints(points: np.ndarray, camera: Camera) -> tuple[np.ndarray, np.ndarray]:
    pixels = _project(points, camera)
    inside = _inside_image(pixels, camera) & (points[:, 2] > 0)
    return np.concatenate([pixels, inside[:, None].astype(np.float64)], axis=1), inside


def _shows_person(mesh_id: np.ndarray, pixels: np.ndarray, index: int) -> np.ndarray:
    """(N,) whether the pixels nearest to (N, 2) points show mesh `index` (clamped to the image)."""
    height, width = mesh_id.shape
    columns = np.clip(np.rint(pixels[:, 0]).astype(int), 0, width - 1)
    rows = np.clip(np.rint(pixels[:, 1]).astype(int), 0, height - 1)
    return mesh_id[rows, columns] == index


def _clipped_box(vertices_camera: np.ndarray, camera: Camera) -> np.ndarray:
    """(4,) x, y, w, h of the projected mesh, clipped to the image (a zero-size box when out of view)."""
    height, width = camera.image_size
    pixels = _project(vertices_camera[vertices_camera[:, 2] > 0], camera)
    if len(pixels) == 0:
        return np.zeros(4)
    low = np.clip(pixels.min(axis=0), [-0.5, -0.5], [width - 0.5, height - 0.5])
    high = np.clip(pixels.max(axis=0), [-0.5, -0.5], [width - 0.5, height - 0.5])
    return np.concatenate([low, high - low])


def _visible_fraction(vertices_camera: np.ndarray, faces: np.ndarray, depth: np.ndarray, camera: Camera) -> float:
    """Share of the camera-facing vertices whose depth matches the depth map (H, W) at their pixel."""
    normals = np.zeros_like(vertices_camera, dtype=np.float64)
    corners = vertices_camera[faces].astype(np.float64)
    face_normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    for k in range(3):
        np.add.at(normals, faces[:, k], face_normals)
    facing = (np.einsum("ij,ij->i", normals, vertices_camera) < 0) & (vertices_camera[:, 2] > 0)
    if not facing.any():
        return 0.0
    pixels = _project(vertices_camera[facing], camera)
    inside = _inside_image(pixels, camera)
    rows, columns = np.rint(pixels[inside, 1]).astype(int), np.rint(pixels[inside, 0]).astype(int)
    seen = depth[rows, columns] >= vertices_camera[facing][inside, 2] - VISIBILITY_DEPTH_TOLERANCE_M
    return float(seen.sum() / facing.sum())
