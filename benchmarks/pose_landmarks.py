"""The free body's MediaPipe pose landmarks against the landmark model, on scenes the fit never saw.

For every landmark: how often the landmark model sees it on rendered free-body people, and the distance between
the projected free-body landmark and the model's, for the prior definition and the fitted one
(`vqhps_ros.body.pose_landmarks`); then the fitted landmarks' offsets (mean and spread, x and y): the noise a model
that reads the keypoints sees on renders. Distances are in units of the person's box height. The fit used seed 1000
(`tools/fit_pose_landmarks.py`); these scenes use other seeds.

    python benchmarks/pose_landmarks.py [--seeds 2000 2001] [--frames 150] [--out benchmarks/results]

Writes pose_landmarks.json and pose_landmarks.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_info, write_results  # noqa: E402

from vqhps_ros.body import free_body_pose_landmarks, load_free_body_data, prior_pose_landmarks  # noqa: E402
from vqhps_ros.body.pose_landmarks import landmark_info  # noqa: E402
from vqhps_ros.humans import POSE_LANDMARK_NAMES  # noqa: E402
from vqhps_ros.train.landmark_calibration import LandmarkObservations, landmark_errors, observe_landmarks  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def merged(parts: list[LandmarkObservations]) -> LandmarkObservations:
    return LandmarkObservations(**{key: np.concatenate([getattr(part, key) for part in parts])
                                   for key in LandmarkObservations.__dataclass_fields__})


def table(report: dict) -> str:
    lines = ["| landmark | seen | prior: median distance | fitted: median distance | fitted: share over 0.1 "
             "| fitted offset x: mean, sd | fitted offset y: mean, sd |", "|---|---|---|---|---|---|---|"]
    prior, fitted = report["prior"], report["fitted"]
    for name in POSE_LANDMARK_NAMES:
        row = fitted[name]
        (mean_x, mean_y), (std_x, std_y) = row["offset_mean"], row["offset_std"]
        lines.append(f"| {name} | {row['seen']} | {prior[name]['median_distance']:.4f} | {row['median_distance']:.4f}"
                     f" | {100 * row['wild_share']:.1f} % | {mean_x:+.4f}, {std_x:.4f} | {mean_y:+.4f}, {std_y:.4f} |")
    summary = report["summary"]
    return ("\n".join(lines) + f"\n\n{summary['people']} people of {summary['frames']} frames (seeds "
            f"{summary['seeds']}); box heights. Median over landmarks: prior {summary['prior_median']:.4f}, fitted "
            f"{summary['fitted_median']:.4f}. Fitted on seed {summary['fit_seed']} ({summary['fit_people']} people)."
            "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[2000, 2001])
    parser.add_argument("--frames", type=int, default=150, help="frames per seed")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args(argv)
    observations = merged([observe_landmarks(seed, args.frames) for seed in args.seeds])
    body = load_free_body_data()
    regressors = {"prior": prior_pose_landmarks(body),
                  "fitted": free_body_pose_landmarks(num_vertices=body.num_vertices)}
    errors = {name: landmark_errors(observations, regressor) for name, regressor in regressors.items()}
    fit = landmark_info()
    report = {name: value.as_dict() for name, value in errors.items()}
    report["summary"] = {
        "seeds": args.seeds, "frames": args.frames * len(args.seeds), "people": len(observations),
        "prior_median": float(np.nanmedian(errors["prior"].median_distance)),
        "fitted_median": float(np.nanmedian(errors["fitted"].median_distance)),
        "fit_seed": fit["seed"], "fit_people": fit["people"]}
    report["machine"] = machine_info(threads=0)
    write_results(args.out, "pose_landmarks", report, "Free-body pose landmarks against the landmark model",
                  table(report))
    print(table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
