"""Synthetic people of the free body: poses, shapes, cameras, rooms, rendering, frames with exact ground truth."""

from .appearance import Outfit, sample_betas, sample_outfit, vertex_colors
from .backgrounds import Lighting, room_background, sample_lighting
from .cameras import Camera, CameraRanges, intrinsics_from_fov, look_at, sample_camera
from .dataset import RecordFilter, write_dataset
from .poses import (
    BODY_JOINT_NAMES,
    JOINT_LIMITS_DEG,
    clip_to_limits,
    euler_to_axis_angle,
    joint_limits,
    sample_motion,
    sample_pose_euler,
    sample_poses,
)
from .render import Fragments, Rendering, rasterize, render_meshes, vertex_normals
from .scene import PersonPlacement, PersonTruth, SceneGenerator, SceneSettings, SyntheticFrame
from .tracks import PersonTrack, placements_at, standing_track, walking_track

__all__ = [
    "BODY_JOINT_NAMES",
    "Camera",
    "CameraRanges",
    "Fragments",
    "JOINT_LIMITS_DEG",
    "Lighting",
    "Outfit",
    "PersonPlacement",
    "PersonTrack",
    "PersonTruth",
    "RecordFilter",
    "Rendering",
    "SceneGenerator",
    "SceneSettings",
    "SyntheticFrame",
    "clip_to_limits",
    "euler_to_axis_angle",
    "intrinsics_from_fov",
    "joint_limits",
    "look_at",
    "placements_at",
    "rasterize",
    "render_meshes",
    "room_background",
    "sample_betas",
    "sample_camera",
    "sample_lighting",
    "sample_motion",
    "sample_outfit",
    "sample_pose_euler",
    "sample_poses",
    "standing_track",
    "vertex_colors",
    "vertex_normals",
    "walking_track",
    "write_dataset",
]
