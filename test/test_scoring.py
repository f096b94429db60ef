"""Scores of a replay against ground truth: exact for a perfect replay, and the demo end to end."""

import json

import cv2
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from vqhps_ros.cli import main
from vqhps_ros.config import load_config
from vqhps_ros.data import sample_bag_path
from vqhps_ros.demo import run_demo
from vqhps_ros.errors import InputError
from vqhps_ros.humans import FrameResult, Human
from vqhps_ros.io import messages
from vqhps_ros.models import load_image_model
from vqhps_ros.runtime.export import model_topology
from vqhps_ros.scoring import (
    PublishedHuman,
    TruthVertices,
    error_plot,
    load_truth,
    match_humans,
    score_replay,
    track_accel_errors,
)

TRUTH = sample_bag_path() / "ground_truth.npz"
FRAME_ID = "camera_color_optical_frame"


def write_replay_of_truth(path, truth, id_of_track, frames=20):
    """An output bag whose humans are the detected people of the ground truth (ids from `id_of_track`)."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    types = messages.rosbags_types()
    topology = model_topology(load_image_model())
    vertices = TruthVertices(truth)
    stamps = np.unique(truth["stamp_ns"])[:frames]
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        connection = writer.add_connection("/vqhps_estimator/humans", messages.HUMAN_MESH_ARRAY,
                                           typestore=types.typestore)
        for stamp in stamps:
            humans = [truth_human(truth, row, vertices, id_of_track)
                      for row in np.flatnonzero((truth["stamp_ns"] == stamp) & truth["detected"])]
            result = FrameResult(int(stamp), FRAME_ID, (480, 640), humans)
            message = messages.human_mesh_array(types, result, topology)
            writer.write(connection, int(stamp), types.typestore.serialize_cdr(message, messages.HUMAN_MESH_ARRAY))
    return len(stamps)


def truth_human(truth, row, vertices, id_of_track) -> Human:
    joints = truth["joints_h36m_camera"][row].astype(np.float32)
    mesh = vertices.vertices(row, 1229).astype(np.float32)
    return Human(
        id=id_of_track(int(truth["track_id"][row]), int(truth["frame_index"][row])), score=1.0,
        box=truth["boxes"][row], tokens=np.zeros(54, np.int64), token_confidence=np.ones(54, np.float32),
        vertices=mesh, joints=joints, joints_2d=np.zeros((17, 2), np.float32), vertices_2d=np.zeros((1229, 2)),
        root_position=joints[0].astype(np.float64),
        root_rotation=Rotation.from_rotvec(truth["global_orient"][row]).as_matrix(),
        crop_camera=np.array([1.0, 0, 0]), translation=truth["translation"][row])


def test_a_replay_of_the_truth_scores_zero(tmp_path):
    truth = load_truth(TRUTH)
    frames = write_replay_of_truth(tmp_path / "perfect", truth, lambda track, frame: f"t{track}")
    scored = score_replay(tmp_path / "perfect", TRUTH)
    scores = scored.summary()
    replayed = np.isin(truth["stamp_ns"], np.unique(truth["stamp_ns"])[:frames])
    # every matched true person has its own error, under its truth row
    assert sorted(scored.row_mpjpe_mm) == np.flatnonzero(replayed & truth["detected"]).tolist()
    assert max(scored.row_mpjpe_mm.values()) < 0.01
    assert scores["frames"] == frames and scores["true_people"] == replayed.sum()
    assert scores["matched"] == scores["published_humans"] == (replayed & truth["detected"]).sum() > frames
    assert scores["id_switches"] == 0
    for key in ("mpjpe_mm", "pa_mpjpe_mm", "pve_mm", "pelvis_error_mm", "accel_error_mm"):
        assert scores[key] < 0.01, key  # float32 rounding of metres


def test_id_changes_are_counted_as_switches(tmp_path):
    truth = load_truth(TRUTH)
    write_replay_of_truth(tmp_path / "switching", truth, lambda track, frame: f"t{track}-{frame // 10}", frames=20)
    scores = score_replay(tmp_path / "switching", TRUTH).summary()
    detected, frame = truth["detected"], truth["frame_index"]
    before, after = (set(truth["track_id"][detected & (frame < 10)]),
                     set(truth["track_id"][detected & (frame >= 10) & (frame < 20)]))
    assert scores["id_switches"] == len(before & after) > 0  # each such track switches once, at frame 10


def test_matching_needs_overlap_and_assigns_each_truth_once():
    box = np.array([100.0, 100, 50, 100])
    humans = [PublishedHuman("a", box + [2, 0, 0, 0], np.zeros((17, 3)), np.zeros((0, 3))),
              PublishedHuman("b", box + [300, 0, 0, 0], np.zeros((17, 3)), np.zeros((0, 3)))]
    pairs = match_humans(humans, np.stack([box + [20, 20, 0, 0], box]), np.array([10, 11]))
    assert [(human.id, row) for human, row in pairs] == [("a", 11)]  # "b" overlaps nothing


def test_accel_error_runs_over_consecutive_frames_only():
    still = np.zeros((17, 3))
    wrist_moved, body_moved = still.copy(), still + 0.003
    wrist_moved[5] += 0.003
    moving = [(0, "a", still, still), (1, "a", still, still), (2, "a", wrist_moved, still)]
    assert track_accel_errors(moving) == pytest.approx([3.0 * np.sqrt(3) / 17])  # one joint of 17, 3 mm per axis
    shifted = [(0, "a", still, still), (1, "a", still, still), (2, "a", body_moved, still)]
    assert track_accel_errors(shifted) == [0.0]  # pelvis-aligned: moving the whole body is no joint acceleration
    assert track_accel_errors([(0, "a", still, still), (1, "a", still, still), (5, "a", still, still)]) == []


def test_errors_name_what_was_expected(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_truth(tmp_path / "none.npz")
    np.savez(tmp_path / "other.npz", stamp_ns=np.zeros(3))
    with pytest.raises(InputError, match=r"missing \['frame_index', 'track_id'"):
        load_truth(tmp_path / "other.npz")
    with pytest.raises(InputError, match=r"expected a vqhps_ros/msg/HumanMeshArray topic.*/camera/camera_info"):
        score_replay(sample_bag_path(), TRUTH)


def test_error_plot_draws_the_series():
    image = error_plot([(0, 100.0), (1, 50.0), (2, 150.0)])
    assert image.shape == (320, 720, 3)
    assert (np.abs(image.astype(int) - [200, 80, 30]).sum(axis=2) < 60).sum() > 100  # the line's pixels


@pytest.mark.slow
def test_demo_writes_a_bag_a_video_key_frames_and_scores(tmp_path):
    config = load_config(overrides=[f"model.engine_cache_dir={tmp_path / 'cache'}"])
    summary = run_demo(sample_bag_path(), tmp_path / "demo", config, max_frames=20, progress=False)
    demo = tmp_path / "demo"
    assert summary["frames_processed"] == 20 and summary["humans"] >= 20
    assert json.loads((demo / "summary.json").read_text())["humans"] == summary["humans"]
    scores = summary["scores"]
    assert scores["matched"] >= 0.9 * summary["humans"] and scores["id_switches"] == 0  # ids from the detections
    assert 20 < scores["pa_mpjpe_mm"] < 200 and scores["pve_mm"] > 0
    video = cv2.VideoCapture(str(demo / "overlay.mp4"))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 20
    assert sorted(p.name for p in (demo / "frames").iterdir()) == ["frame_00000.png", "frame_00015.png"]
    assert (demo / "replay" / "metadata.yaml").is_file() and (demo / "error_per_frame.png").is_file()
    assert main(["score", str(demo / "replay"), "--truth", str(TRUTH), "--output", str(tmp_path / "s")]) == 0
    assert json.loads((tmp_path / "s" / "scores.json").read_text())["pa_mpjpe_mm"] == scores["pa_mpjpe_mm"]
