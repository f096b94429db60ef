"""Training pairs for the displacement network (`refine.displacement`), with the exact displacement known.

A pair is one free-body person seen by a random camera: the image crop shows the true mesh (shaded, with its outfit,
over a random wall), the rendering shows a perturbed mesh (another pose near the true one, another shape, a few
degrees of rotation and centimetres of translation off: what a regressor gets wrong) in the same crop, as the
refinement renders it. The truth, per field cell the perturbed mesh covers: the surface point the cell shows (its
triangle and barycentric coordinates) is found on the true mesh and projected; the displacement is that projection
minus the cell's centre. It counts only where the true point is itself visible in the image (its depth matches the
image's depth there), else the cell is marked invalid: the network must learn low confidence there.

The rendering's colour comes from one of three textures, as a track would have it: the true colours as the image
shows them (shaded vertex colours: a learnt texture), a noisy copy of them (a texture still learning, or learnt
under other light), or none (mid grey, a new track).

The image is rendered at twice the crop's resolution and averaged down, as `displacement.image_crop` averages a real
image, then given a little noise.

Scene pairs (`DisplacementSampler.scene_pair`) close the gap between these pairs and what the refinement meets: a
rendered scene of several people (`SceneGenerator.random_frame`), a regressor's mesh of one of them as the rendered
mesh, the crop cut from the whole frame by the regressor's box (other people, occluders and all). The truth is found
the same way, with the scene's depth deciding what is visible. Their textures are learnt from the frame as a track
learns its own (`refine.VertexTexture`): at the true mesh (`true`), at the regressed mesh (`noisy`: colours taken a
little beside where they belong, as a track's are before refinement) or none.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
from scipy.spatial.transform import Rotation

from ..errors import InputError
from ..hps.camera import project_points
from ..hps.crops import crop_geometry_from_boxes
from ..refine.displacement import CROP_SIZE, FIELD_STRIDE, field_centres, image_crop, network_input
from ..refine.renderings import crop_intrinsics, facing_camera, render_in_crop, visible_vertices
from ..refine.texture import VertexTexture
from ..synth.appearance import sample_betas
from ..synth.backgrounds import sample_lighting, wall_image
from ..synth.poses import sample_poses
from ..synth.render import rasterize, render_meshes, vertex_normals
from ..synth.scene import SceneGenerator, SyntheticFrame

TEXTURES = ("true", "noisy", "none")


@dataclass(frozen=True)
class DisplacementSampling:
    """How far the perturbed mesh is from the true one, and the cameras. Angles in radians unless named."""

    joint_noise: float = 0.15  # per body-pose axis-angle component
    severity: tuple[float, float] = (0.3, 1.6)  # every noise above is scaled by a factor drawn in this range
    shape_noise: float = 0.4  # per shape coefficient
    rotation_noise_deg: float = 5.0
    lateral_noise_m: float = 0.04
    depth_noise: float = 0.05  # relative
    texture_shares: tuple[float, float, float] = (0.4, 0.3, 0.3)  # TEXTURES
    distance_m: tuple[float, float] = (1.5, 7.0)
    fov_deg: tuple[float, float] = (50.0, 90.0)
    image_size: tuple[int, int] = (480, 640)
    crop_size: int = CROP_SIZE
    visible_depth_m: float = 0.03  # a true point this close to the image's depth there is visible

    def __post_init__(self):
        shares = np.asarray(self.texture_shares)
        if len(shares) != len(TEXTURES) or np.any(shares < 0) or not shares.sum() > 0 or self.crop_size % 16:
            raise InputError(f"unusable displacement sampling {self}: three texture shares >= 0 (not all 0) and a "
                             "crop size divisible by 16 needed")


@dataclass(frozen=True)
class DisplacementPairs:
    """N pairs: inputs (N, 11, S, S) float16 (`network_input`), flow (N, 2, S/2, S/2) float32 crop pixels, valid
    (N, S/2, S/2) bool, covered (N, S/2, S/2) bool (the perturbed mesh covers the cell), texture (N,) index into
    TEXTURES."""

    inputs: np.ndarray
    flow: np.ndarray
    valid: np.ndarray
    covered: np.ndarray
    texture: np.ndarray

    def __len__(self) -> int:
        return len(self.inputs)

    @classmethod
    def concatenate(cls, parts: list[DisplacementPairs]) -> DisplacementPairs:
        return cls(*(np.concatenate([getattr(part, name) for part in parts]) for name in cls.__dataclass_fields__))


class DisplacementSampler:
    """Draws `DisplacementPairs` (one body model held for every call)."""

    def __init__(self, settings: DisplacementSampling | None = None, generator: SceneGenerator | None = None):
        self.settings = settings or DisplacementSampling()
        self.generator = generator or SceneGenerator()
        self.faces = np.asarray(self.generator.body.faces, dtype=np.int64)

    def sample(self, rng: np.random.Generator, count: int) -> DisplacementPairs:
        pairs = [self.pair(rng) for _ in range(count)]
        return DisplacementPairs(*(np.stack([pair[k] for pair in pairs]) for k in range(5)))

    def pair(self, rng: np.random.Generator) -> tuple:
        """One pair: (input, flow, valid, covered, texture index)."""
        settings = self.settings
        true_mesh, perturbed_mesh, intrinsics = self._people(rng)
        pixels = project_points(true_mesh[None], intrinsics)[0]
        low, high = pixels.min(axis=0), pixels.max(axis=0)
        box = np.concatenate([low, high - low]) * rng.uniform(0.97, 1.03, 4)
        crop_from_image = crop_geometry_from_boxes(box[None], crop_size=settings.crop_size).crop_from_image[0]
        crop_camera = crop_intrinsics(intrinsics, crop_from_image)
        image, image_depth, seen_colours = self._image(rng, true_mesh, crop_camera)
        texture = int(rng.choice(len(TEXTURES), p=np.asarray(settings.texture_shares) / sum(settings.texture_shares)))
        colours = self._texture(rng, TEXTURES[texture], seen_colours)
        rendering = render_in_crop(perturbed_mesh, self.faces, intrinsics, crop_from_image, settings.crop_size, colours)
        double = np.array([[2.0, 0.0, 0.5], [0.0, 2.0, 0.5], [0.0, 0.0, 1.0]]) @ crop_camera  # the depth's pixels
        flow, valid, covered = self._truth(true_mesh, perturbed_mesh, crop_camera, double, image_depth)
        return network_input(image, rendering).astype(np.float16), flow, valid, covered, texture

    def scene_pair(self, rng: np.random.Generator, frame: SyntheticFrame, person: int, regressed: np.ndarray,
                   box: np.ndarray) -> tuple:
        """One scene pair (see the module docstring): person `person` of `frame`, `regressed` (V, 3) a regressor's
        camera-frame mesh of that person, `box` (4,) x, y, w, h the regressor's crop box. Returns what `pair` does."""
        size = self.settings.crop_size
        intrinsics = frame.camera.intrinsics
        true_mesh = frame.people[person].vertices_camera.astype(np.float64)
        regressed = np.asarray(regressed, np.float64)
        if regressed.shape != true_mesh.shape:
            raise InputError(f"expected a regressed mesh of shape {true_mesh.shape}, found {regressed.shape}")
        crop_from_image = crop_geometry_from_boxes(np.asarray(box, np.float64)[None], crop_size=size).crop_from_image[0]
        texture = int(rng.choice(len(TEXTURES), p=np.asarray(self.settings.texture_shares)
                                 / sum(self.settings.texture_shares)))
        colours = None
        if TEXTURES[texture] != "none":
            learnt_at = true_mesh if TEXTURES[texture] == "true" else regressed
            colours = self._learnt_texture(frame, person, learnt_at)
        rendering = render_in_crop(regressed, self.faces, intrinsics, crop_from_image, size, colours)
        flow, valid, covered = self._truth(true_mesh, regressed, crop_intrinsics(intrinsics, crop_from_image),
                                           intrinsics, frame.rendering.depth.cpu().numpy())
        inputs = network_input(image_crop(frame.image, crop_from_image, size), rendering)
        return inputs.astype(np.float16), flow, valid, covered, texture

    def _learnt_texture(self, frame: SyntheticFrame, person: int, mesh: np.ndarray) -> np.ndarray:
        """(V, 3) colours a track would learn from `frame` with `mesh` as person `person`'s (the others' true meshes
        hiding it), grey where the frame gives none."""
        meshes = [p.vertices_camera.astype(np.float64) for p in frame.people]
        meshes[person] = mesh
        intrinsics = frame.camera.intrinsics
        seen = visible_vertices(meshes, self.faces, intrinsics, frame.camera.image_size)[person]
        texture = VertexTexture(len(mesh))
        texture.update(frame.image, project_points(mesh[None], intrinsics)[0], seen, facing_camera(mesh, self.faces))
        return texture.rendering_colours()

    # ------------------------------------------------------------------------------------------------ people

    def _people(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """True and perturbed camera-frame meshes (V, 3) and the intrinsics (3, 3)."""
        settings = self.settings
        severity = rng.uniform(*settings.severity)
        betas = sample_betas(rng, 1, self.generator.body.num_betas)
        pose = sample_poses(rng, 1).reshape(1, -1)
        vertices, _ = self.generator.pose_bodies(
            np.concatenate([betas, betas + rng.normal(0.0, severity * settings.shape_noise, betas.shape)]),
            np.concatenate([pose, pose + rng.normal(0.0, severity * settings.joint_noise, pose.shape)]))
        canonical = vertices - vertices.mean(axis=1, keepdims=True)
        upright = Rotation.from_rotvec([np.pi, 0.0, 0.0])  # the body's up (+y) to the camera's up (-y)
        heading = Rotation.from_euler("y", rng.uniform(-np.pi, np.pi))
        tilt = Rotation.from_rotvec(rng.normal(0.0, np.radians(5.0), 3))
        rotation = (tilt * upright * heading).as_matrix()
        turn = Rotation.from_rotvec(rng.normal(0.0, severity * np.radians(settings.rotation_noise_deg) / np.sqrt(3), 3))
        height, width = settings.image_size
        focal = (width / 2) / np.tan(np.radians(rng.uniform(*settings.fov_deg)) / 2)
        intrinsics = np.array([[focal, 0.0, (width - 1) / 2], [0.0, focal, (height - 1) / 2], [0.0, 0.0, 1.0]])
        depth = rng.uniform(*settings.distance_m)
        where = rng.uniform([0.25 * width, 0.3 * height], [0.75 * width, 0.7 * height])
        translation = np.append((where - intrinsics[:2, 2]) / focal * depth, depth)
        offset = severity * np.append(rng.normal(0.0, settings.lateral_noise_m, 2),
                                      rng.normal(0.0, settings.depth_noise) * depth)
        true_mesh = canonical[0] @ rotation.T + translation
        perturbed_mesh = canonical[1] @ (turn.as_matrix() @ rotation).T + translation + offset
        return true_mesh, perturbed_mesh, intrinsics

    # ------------------------------------------------------------------------------------------------- image

    def _image(self, rng: np.random.Generator, mesh: np.ndarray, crop_camera: np.ndarray):
        """The image crop (S, S, 3) float32, its depth at twice the resolution (2S, 2S) and the vertex colours as
        the image shows them (V, 3)."""
        size = self.settings.crop_size
        double = np.array([[2.0, 0.0, 0.5], [0.0, 2.0, 0.5], [0.0, 0.0, 1.0]]) @ crop_camera
        lighting = sample_lighting(rng)
        albedo = self.generator.random_colors(rng).astype(np.float32)
        rendering = render_meshes([(mesh, self.faces)], double, (2 * size, 2 * size), colors=[albedo],
                                  background=wall_image(rng, (2 * size, 2 * size)),
                                  light_direction=lighting.direction, ambient=lighting.ambient,
                                  diffuse=lighting.diffuse)
        image = rendering.rgb.numpy() * lighting.tint.astype(np.float32)
        image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
        image = np.clip(image + rng.normal(0.0, 0.015, image.shape), 0.0, 1.0).astype(np.float32)
        normals = vertex_normals(torch.from_numpy(mesh), torch.from_numpy(self.faces)).numpy()
        shading = lighting.ambient + lighting.diffuse * np.clip(normals @ lighting.direction, 0.0, None)
        seen = np.clip(albedo * shading[:, None] * lighting.tint, 0.0, 1.0).astype(np.float32)
        return image, rendering.depth.numpy(), seen

    def _texture(self, rng: np.random.Generator, kind: str, seen_colours: np.ndarray) -> np.ndarray | None:
        if kind == "none":
            return None
        if kind == "true":
            return seen_colours
        gain = rng.uniform(0.75, 1.25, 3) * rng.uniform(0.85, 1.15, (len(seen_colours), 1))
        return np.clip(seen_colours * gain + rng.normal(0.0, 0.06, seen_colours.shape), 0.0, 1.0).astype(np.float32)

    # ------------------------------------------------------------------------------------------------- truth

    def _truth(self, true_mesh: np.ndarray, perturbed_mesh: np.ndarray, crop_camera: np.ndarray,
               depth_camera: np.ndarray, image_depth: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """flow (2, S/2, S/2), valid and covered (S/2, S/2): see the module docstring. `image_depth` (H, W): the
        depth of what the image shows, its pixels those of the intrinsics `depth_camera`."""
        cells = self.settings.crop_size // FIELD_STRIDE
        # the field's grid as a camera: cell j's centre is crop coordinate 2j + 0.5
        to_field = np.array([[1 / FIELD_STRIDE, 0.0, -0.25], [0.0, 1 / FIELD_STRIDE, -0.25], [0.0, 0.0, 1.0]])
        fragments = rasterize(torch.from_numpy(perturbed_mesh), torch.from_numpy(self.faces), to_field @ crop_camera,
                              (cells, cells))
        covered = fragments.covered.numpy()
        flow = np.zeros((2, cells, cells), np.float32)
        valid = np.zeros((cells, cells), bool)
        if not covered.any():
            return flow, valid, covered
        rows, columns = np.nonzero(covered)
        corners = self.faces[fragments.face_index.numpy()[rows, columns]]  # (C, 3)
        weights = fragments.barycentric.numpy()[rows, columns].astype(np.float64)  # (C, 3)
        points = (true_mesh[corners] * weights[..., None]).sum(axis=1)
        target = project_points(points[None], crop_camera)[0]
        centres = field_centres(self.settings.crop_size)
        flow[0, rows, columns] = target[:, 0] - centres[columns]
        flow[1, rows, columns] = target[:, 1] - centres[rows]
        pixel = np.rint(project_points(points[None], depth_camera)[0]).astype(int)
        height, width = image_depth.shape
        inside = (pixel >= 0).all(axis=1) & (pixel[:, 0] < width) & (pixel[:, 1] < height)
        at = np.clip(pixel, 0, [width - 1, height - 1])
        seen = np.abs(image_depth[at[:, 1], at[:, 0]] - points[:, 2]) < self.settings.visible_depth_m
        valid[rows, columns] = inside & seen
        return flow, valid, covered
