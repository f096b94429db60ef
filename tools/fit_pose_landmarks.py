#!/usr/bin/env python3
"""Fit the free body's MediaPipe pose landmarks (`vqhps_ros/body/assets/free_body_pose_landmarks.npz`).

    python tools/fit_pose_landmarks.py [--seed 1000] [--frames 400] [--output PATH]

Renders `--frames` random scenes of free-body people from `--seed` (`synth.SceneGenerator`), runs the built-in
detector's landmark model on every well-seen person (`train.landmark_calibration.observe_landmarks`), and fits, per
landmark, non-negative weights over the vertices around the prior landmark (`body.pose_landmarks`) that put it
where the model does (`fit_landmark_weights`). The file stores the weights, the landmark names and the provenance
(seeds, counts, the median errors of the prior and of the fit on the fitting data) with the landmark model's noise
about the fitted landmarks (per landmark: the share of people on whom it sees it, the share of wild guesses, the
spread of the rest), for training models that read its keypoints. The landmark model runs on ONNX
Runtime (PyTorch without it), so another machine's fit differs in the last digits. `benchmarks/pose_landmarks.py`
measures both definitions on other seeds.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from vqhps_ros.body import load_free_body_data
from vqhps_ros.body.pose_landmarks import FITTED_LANDMARKS_PATH, prior_pose_landmarks, save_pose_landmarks
from vqhps_ros.train.landmark_calibration import fit_landmark_weights, landmark_errors, observe_landmarks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=1000)
    parser.add_argument("--frames", type=int, default=400)
    parser.add_argument("--output", type=Path, default=FITTED_LANDMARKS_PATH)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    observations = observe_landmarks(args.seed, args.frames)
    body = load_free_body_data()
    prior = prior_pose_landmarks(body)
    fitted = fit_landmark_weights(observations, prior, body.v_template.astype(np.float64))
    measured = {name: landmark_errors(observations, regressor)
                for name, regressor in (("prior", prior), ("fitted", fitted))}
    errors = {name: value.median_distance for name, value in measured.items()}
    noise = measured["fitted"]
    info = {"seed": args.seed, "frames": args.frames, "people": len(observations),
            "seen_per_landmark": observations.seen().sum(axis=0).tolist(),
            "median_error_box_heights": {name: np.round(values, 4).tolist() for name, values in errors.items()},
            "noise": {"seen_share": np.round(noise.seen_share, 4).tolist(),
                      "wild_share": np.round(noise.wild_share, 4).tolist(),
                      "inlier_sd": np.round(noise.inlier_sd, 4).tolist()},
            "made_by": "tools/fit_pose_landmarks.py"}
    save_pose_landmarks(args.output, fitted, info)
    print(f"wrote {args.output}: {len(observations)} people from {args.frames} frames (seed {args.seed}), median "
          f"error over landmarks {np.median(errors['prior']):.4f} -> {np.median(errors['fitted']):.4f} box heights, "
          f"{time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
