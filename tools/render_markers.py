#!/usr/bin/env python3
"""Render the RViz markers of a replay's output bag offscreen, seen from a virtual camera above and beside the real
one: what RViz would show, without RViz (the README's picture).

    python tools/render_markers.py demo_output/replay --frame 60 --output docs/markers.png

The mesh markers (TRIANGLE_LIST, one colour per track) are drawn with the package's torch rasteriser, the skeleton
markers (LINE_LIST) and the camera's position on top. The view: the source camera's optical frame, turned
`--pitch` degrees down about its x axis and moved back and up, looking at the people's centre.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
import torch
from scipy.spatial.transform import Rotation

from vqhps_ros.atomic_files import write_bytes_atomically
from vqhps_ros.io.bag import open_bag
from vqhps_ros.synth import render_meshes

MARKER_TYPE = "visualization_msgs/msg/MarkerArray"
TRIANGLE_LIST, LINE_LIST = 11, 5


def marker_arrays(bag: Path) -> list:
    with open_bag(bag) as reader:
        connections = [c for c in reader.connections if c.msgtype == MARKER_TYPE]
        if not connections:
            raise SystemExit(f"{bag} has no {MARKER_TYPE} topic")
        return [reader.deserialize(raw, MARKER_TYPE) for _, _, raw in reader.messages(connections=connections)]


def points(marker) -> np.ndarray:
    return np.array([[p.x, p.y, p.z] for p in marker.points], dtype=np.float64).reshape(-1, 3)


def view_transform(centre: np.ndarray, pitch_deg: float, distance: float) -> tuple[np.ndarray, np.ndarray]:
    """(R, t) mapping source-camera points into a virtual camera pitched down and looking at `centre`."""
    rotation = Rotation.from_euler("x", pitch_deg, degrees=True).as_matrix()
    eye = centre + rotation.T @ np.array([0.0, 0.0, -distance])
    return rotation, -rotation @ eye


def render(array, size=(540, 720), pitch_deg=35.0) -> np.ndarray:
    meshes = [m for m in array.markers if m.type == TRIANGLE_LIST and m.action == 0]
    lines = [m for m in array.markers if m.type == LINE_LIST and m.action == 0]
    if not meshes:
        raise SystemExit("the chosen MarkerArray holds no mesh marker: pick another --frame")
    centre = np.mean([points(m).mean(axis=0) for m in meshes], axis=0)
    rotation, translation = view_transform(centre, pitch_deg, distance=float(np.linalg.norm(centre)) + 1.5)
    height, width = size
    focal = 0.9 * width
    intrinsics = np.array([[focal, 0, width / 2], [0, focal, height / 2], [0, 0, 1.0]])
    to_view = [points(m) @ rotation.T + translation for m in meshes]
    faces = [torch.arange(len(v)).reshape(-1, 3) for v in to_view]
    colours = [np.array([m.color.r, m.color.g, m.color.b]) for m in meshes]
    background = np.full((height, width, 3), 40, np.uint8)
    rendering = render_meshes([(torch.from_numpy(v), f) for v, f in zip(to_view, faces, strict=True)], intrinsics,
                              (height, width), colors=colours, background=background)
    image = np.ascontiguousarray(rendering.rgb_uint8())
    for marker in lines:
        segment = points(marker) @ rotation.T + translation
        pixels = (segment @ intrinsics.T)[:, :2] / segment[:, 2:]
        for start, end in pixels.reshape(-1, 2, 2).round().astype(int):
            cv2.line(image, tuple(start), tuple(end), (255, 255, 255), 1, cv2.LINE_AA)
    camera = (np.zeros(3) @ rotation.T + translation) @ intrinsics.T
    cv2.drawMarker(image, tuple((camera[:2] / camera[2]).round().astype(int)), (255, 220, 0), cv2.MARKER_TRIANGLE_UP,
                   14, 2)
    cv2.putText(image, "camera", tuple((camera[:2] / camera[2]).round().astype(int) + [10, 5]),
                cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 220, 0), 1, cv2.LINE_AA)
    return image


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bag", type=Path, help="an output bag of vqhps-ros replay (or demo_output/replay)")
    parser.add_argument("--frame", type=int, default=0, help="which MarkerArray of the bag (0 = the first)")
    parser.add_argument("--pitch", type=float, default=35.0, help="degrees the view looks down")
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)
    arrays = marker_arrays(args.bag)
    image = render(arrays[min(args.frame, len(arrays) - 1)], pitch_deg=args.pitch)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomically(cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))[1].tobytes(), args.output)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
