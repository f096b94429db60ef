"""Train a keypoint-reading VQ-HPS on sampled keypoints and measure it on rendered people, beside the bundled image
model: a check of the recipe, not the shipped model (there is none yet).

Samples: `train.keypoint_data.KeypointSampler` (seed `--seed`), tokens from the bundled Mesh-VQ-VAE; training:
`train.keypoint_hps.train_keypoint_hps`; measure: `evaluate_on_renders` on scenes of `--eval-seed` (the landmark
model's keypoints on the renders, both models on the same people), official MPJPE / PA-MPJPE / PVE / PA-PVE in mm.
About 35 minutes on a 2-core CPU with the defaults.

    python benchmarks/keypoint_model.py [--samples 40000] [--steps 6000] [--width 128] [--out benchmarks/results]

Writes keypoint_model.json and keypoint_model.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_info, write_results  # noqa: E402

from vqhps_ros.models import load_image_model  # noqa: E402
from vqhps_ros.train.keypoint_data import KeypointSampler  # noqa: E402
from vqhps_ros.train.keypoint_hps import (  # noqa: E402
    KeypointTraining,
    evaluate_on_renders,
    keypoint_dataset,
    new_keypoint_model,
    train_keypoint_hps,
)

REPO = Path(__file__).resolve().parents[1]


def table(report: dict) -> str:
    lines = ["| model | MPJPE | PA-MPJPE | PVE | PA-PVE |", "|---|---|---|---|---|"]
    for name in ("keypoint model", "image model"):
        row = report["renders"][name]
        lines.append(f"| {name} | {row['mpjpe']} | {row['pa_mpjpe']} | {row['pve']} | {row['pa_pve']} |")
    settings = report["settings"]
    return ("\n".join(lines) + f"\n\nmm, {report['renders']['people']} rendered people (seed {settings['eval_seed']}), "
            f"keypoints from the landmark model. Keypoint model: width {settings['width']}, {settings['samples']} "
            f"samples (seed {settings['seed']}), {settings['steps']} steps of {settings['batch']} in "
            f"{report['training_minutes']} min. Image model: the bundled one.\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=40000)
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--seed", type=int, default=100)
    parser.add_argument("--eval-seed", type=int, default=2000)
    parser.add_argument("--eval-frames", type=int, default=150)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    image_model = load_image_model().eval()
    model = new_keypoint_model(image_model, args.width)
    data = keypoint_dataset(KeypointSampler(), model, args.samples, seed=args.seed)
    started = time.perf_counter()
    history = train_keypoint_hps(model, data, KeypointTraining(steps=args.steps, batch_size=args.batch,
                                                               learning_rate=1e-3, log_every=250))
    minutes = round((time.perf_counter() - started) / 60, 1)
    renders = evaluate_on_renders(model.eval(), args.eval_seed, args.eval_frames, image_model=image_model)
    report = {"settings": vars(args) | {"out": str(args.out)}, "history": history, "training_minutes": minutes,
              "renders": renders, "machine": machine_info(threads=args.threads)}
    write_results(args.out, "keypoint_model", report, "A keypoint-reading VQ-HPS against the image model",
                  table(report))
    print(table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
