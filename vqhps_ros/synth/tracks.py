"""People moving through a synthetic scene over time: walkers on floor paths and people gesturing in place.

A track holds one person's shape, outfit and, per frame, a body pose, a heading (yaw) and a floor position, for the
frames in which the person is in the scene. Walkers face where they go and move at a constant speed along a gently
curved path, with a gait cycle whose cadence follows their speed; standing people keep their place and turn a
little while they wave, reach or bend. `SceneGenerator.compose_frame` renders the tracks frame by frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from .poses import sample_motion
from .scene import PersonPlacement

STRIDE_LENGTH_M = 1.35  # metres per gait cycle (two steps) of an ordinary walk


@dataclass(frozen=True)
class PersonTrack:
    """track_id; betas (B,); colors (V, 3); first_frame; per active frame: body_pose (T, 69), yaw (T,) radians,
    floor_position (T, 2) world x, z metres."""

    track_id: int
    betas: np.ndarray
    colors: np.ndarray
    first_frame: int
    body_pose: np.ndarray
    yaw: np.ndarray
    floor_position: np.ndarray

    @property
    def last_frame(self) -> int:
        """One past the last frame in which the person is present."""
        return self.first_frame + len(self.yaw)

    def placement(self, frame: int) -> PersonPlacement | None:
        """The person at `frame`, or None outside the track."""
        if not self.first_frame <= frame < self.last_frame:
            return None
        index = frame - self.first_frame
        return PersonPlacement(self.betas, self.body_pose[index], float(self.yaw[index]),
                               self.floor_position[index], self.colors)


def walking_track(rng: np.random.Generator, track_id: int, betas: np.ndarray, colors: np.ndarray, start,
                  end, speed_mps: float, fps: float, first_frame: int = 0, sway_m: float = 0.15) -> PersonTrack:
    """A person walking from floor point `start` to `end` (x, z) at `speed_mps`, swaying sideways by `sway_m`."""
    start, end = np.asarray(start, dtype=np.float64), np.asarray(end, dtype=np.float64)
    length = float(np.linalg.norm(end - start))
    if length <= 0 or speed_mps <= 0 or fps <= 0:
        raise InputError(f"expected a path of positive length, speed and fps, found {length}, {speed_mps}, {fps}")
    num_frames = max(2, int(round(length / speed_mps * fps)))
    progress = np.linspace(0.0, 1.0, num_frames)[:, None]
    direction = (end - start) / length
    side = np.array([-direction[1], direction[0]])
    positions = start + progress * (end - start) + sway_m * np.sin(np.pi * progress) * side
    heading = np.gradient(positions, axis=0)
    yaw = np.arctan2(heading[:, 0], heading[:, 1])  # the body's forward (+z) turned to the heading
    poses = sample_motion(rng, num_frames, fps, walking=True, walk_cadence_hz=speed_mps / STRIDE_LENGTH_M)
    return PersonTrack(track_id, betas, colors, first_frame, poses.reshape(num_frames, -1), yaw, positions)


def standing_track(rng: np.random.Generator, track_id: int, betas: np.ndarray, colors: np.ndarray, position,
                   facing_yaw: float, num_frames: int, fps: float, archetype: str | None = None,
                   first_frame: int = 0, turn_rad: float = 0.4) -> PersonTrack:
    """A person gesturing in place at floor point `position`, turning slowly within +-turn_rad of `facing_yaw`."""
    poses = sample_motion(rng, num_frames, fps, archetype=archetype)
    time = np.arange(num_frames) / fps
    yaw = facing_yaw + turn_rad * np.sin(2 * np.pi * time / max(num_frames / fps, 1e-6) + rng.uniform(0, 2 * np.pi))
    positions = np.tile(np.asarray(position, dtype=np.float64), (num_frames, 1))
    return PersonTrack(track_id, betas, colors, first_frame, poses.reshape(num_frames, -1), yaw, positions)


def placements_at(tracks: list[PersonTrack], frame: int) -> tuple[list[int], list[PersonPlacement]]:
    """Track ids and placements of the people present at `frame`."""
    present = [(track.track_id, track.placement(frame)) for track in tracks]
    present = [(track_id, placement) for track_id, placement in present if placement is not None]
    return [track_id for track_id, _ in present], [placement for _, placement in present]
