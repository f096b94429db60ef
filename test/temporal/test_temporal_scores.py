"""The scores the temporal benchmark adds: camera-frame acceleration, fragmentations, token flips, detected people
published."""

import numpy as np
import pytest

from vqhps_ros.scoring import PublishedHuman, fragmentations, score_published, token_changes, track_accel_errors

BOX = np.array([100.0, 100.0, 50.0, 120.0])


def truth_of(frames: int) -> dict:
    """One true person standing still in `frames` frames, detected in all but frame 3."""
    return {"frame_index": np.arange(frames), "stamp_ns": np.arange(frames) * 100, "track_id": np.ones(frames, int),
            "boxes": np.tile(BOX, (frames, 1)), "joints_h36m_camera": np.zeros((frames, 17, 3)) + [0, 0, 4.0],
            "detected": np.arange(frames) != 3}


def test_camera_frame_acceleration_sees_what_pelvis_alignment_removes():
    still = np.zeros((17, 3))
    moved = still + [0.003, 0.0, 0.0]
    matches = [(0, "a", still, still), (1, "a", still, still), (2, "a", moved, still)]
    assert track_accel_errors(matches) == [0.0]
    assert track_accel_errors(matches, aligned=False) == [pytest.approx(3.0)]


def test_token_flips_count_consecutive_frames_of_one_id():
    tokens = [np.array([1, 2, 3, 4]), np.array([1, 2, 3, 5]), np.array([9, 9, 9, 9]), np.array([9, 9, 9, 9])]
    matches = [(0, "a", None, None, tokens[0]), (1, "a", None, None, tokens[1]), (2, "b", None, None, tokens[2]),
               (4, "b", None, None, tokens[3])]
    assert token_changes(matches) == [0.25]  # id change and a frame gap are not flips


def test_fragmentations_count_interruptions_followed_by_a_match():
    truth = truth_of(8)
    rows = np.arange(8)
    assert fragmentations(truth, rows, {0, 1, 2, 5, 6}) == 1  # lost at 3-4, back at 5; the end is not one
    assert fragmentations(truth, rows, {0, 2, 4, 6}) == 3
    assert fragmentations(truth, rows, set(range(8))) == 0
    truth["boxes"][3] = 0.0  # out of the image in frame 3: not an interruption
    assert fragmentations(truth, rows, {0, 1, 2, 4, 5, 6, 7}) == 0


def test_published_of_detected_and_the_new_summary_keys():
    truth = truth_of(8)
    published = {100 * i: [PublishedHuman("t1", BOX.copy(), np.zeros((17, 3)) + [0, 0, 4.0], np.zeros((0, 3)),
                                          np.arange(54))] if i not in (2, 3) else [] for i in range(8)}
    summary = score_published(published, truth).summary()
    # 7 detected (not frame 3), 6 of them published (not frame 2)
    assert summary["detected_people"] == 7 and summary["published_of_detected"] == round(6 / 7, 3)
    assert summary["fragmentations"] == 1 and summary["token_flip_rate"] == 0.0
    assert summary["accel_error_camera_mm"] == 0.0 and summary["id_switches"] == 0
