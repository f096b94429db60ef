#!/usr/bin/env python3
"""Train the keypoint-reading VQ-HPS that the package ships (`vqhps_ros/models/free_body_keypoint_vqhps.pt`).

    python tools/train_keypoint_model.py --out keypoint_vqhps.pt [--samples 200000] [--minutes 95] [--bundle]
                                         [--init MODEL_FILE] [--rendered-frames N --rendered-seed S]

Samples (`train.keypoint_data.KeypointSampler`, seed `--seed`, no rendering) are tokenised by the bundled Mesh-VQ-VAE;
the regressor (`train.keypoint_hps.new_keypoint_model`, width `--width`) is trained with
`train.keypoint_hps.train_keypoint_hps` for `--steps` steps or `--minutes`, whichever ends first (the learning-rate
schedule follows the earlier of the two). `--init` continues from a keypoint model file's weights instead of a fresh
regressor (its width and Mesh-VQ-VAE are kept). `--rendered-frames` adds the people of that many rendered scenes (seed
`--rendered-seed`) with the landmark model's own keypoints (`train.rendered_keypoint_data`, about 0.1 s a frame). The
output is a complete model file (`hps.save_model`) with the settings and the loss history. `--bundle` also writes the
shipped copy, `vqhps_ros/models/free_body_keypoint_vqhps.pt` (inference only, float16 storage:
`checkpoints.inference_checkpoint`); `benchmarks/default_model.py` measures it. The shipped model: `--samples 200000
--steps 40000 --minutes 95` (seeds and sizes at their defaults), then `--init` that file `--samples 100000 --seed 102
--learning-rate 5e-4 --steps 40000 --minutes 60`, then `--init` that one `--samples 60000 --seed 103 --rendered-frames
14000 --rendered-seed 4000 --learning-rate 3e-4 --steps 40000 --minutes 45`, then `--init` that one `--samples 50000
--seed 104 --rendered-frames 16000 --rendered-seed 5000 --learning-rate 2e-4 --steps 40000 --minutes 45 --bundle`.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch

from vqhps_ros.checkpoints import atomic_torch_save, inference_checkpoint, read_checkpoint
from vqhps_ros.errors import CheckpointError
from vqhps_ros.hps import VQHPS, KeypointMeshRegressor, load_model, save_model
from vqhps_ros.models import KEYPOINT_MODEL, load_image_model
from vqhps_ros.train.keypoint_data import KeypointSampler
from vqhps_ros.train.keypoint_hps import (
    KeypointTraining,
    joined,
    keypoint_dataset,
    new_keypoint_model,
    tokenised,
    train_keypoint_hps,
)
from vqhps_ros.train.rendered_keypoint_data import rendered_keypoint_samples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="model file to write")
    parser.add_argument("--samples", type=int, default=200_000)
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--minutes", type=float, default=None, help="time budget of the training loop")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=100, help="of the samples (keep it apart from measuring seeds)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--bundle", action="store_true", help=f"also write the shipped copy, {KEYPOINT_MODEL.name}")
    parser.add_argument("--init", type=Path, default=None, help="keypoint model file to continue training from")
    parser.add_argument("--rendered-frames", type=int, default=0,
                        help="rendered scenes whose people, with the landmark model's keypoints, join the samples")
    parser.add_argument("--rendered-seed", type=int, default=4000, help="of the rendered scenes (apart from measuring)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    model = initial_model(args.init) if args.init else new_keypoint_model(load_image_model(), args.width)
    started = time.perf_counter()
    data = keypoint_dataset(KeypointSampler(), model, args.samples, seed=args.seed)
    logging.info("%d samples in %.0f s", args.samples, time.perf_counter() - started)
    if args.rendered_frames:
        started = time.perf_counter()
        rendered = rendered_keypoint_samples(args.rendered_seed, args.rendered_frames)
        data = joined([data, tokenised(rendered, model)])
        logging.info("%d rendered people in %.0f s", len(rendered), time.perf_counter() - started)
    settings = KeypointTraining(steps=args.steps, batch_size=args.batch, learning_rate=args.learning_rate,
                                minutes=args.minutes, log_every=250)
    history = train_keypoint_hps(model, data, settings)
    save_model(model, args.out, training={"samples": args.samples, "sample_seed": args.seed,
                                          "rendered_frames": args.rendered_frames,
                                          "rendered_seed": args.rendered_seed,
                                          "width": model.regressor.config.transformer.model_dim,
                                          "init": str(args.init) if args.init else None, **asdict(settings)},
               history=history)
    logging.info("wrote %s after %d steps", args.out, history[-1]["step"])
    if args.bundle:
        bundle(args.out)
    return 0


def initial_model(model_file: Path) -> VQHPS:
    """A keypoint model file's network, in float32 and training mode, to continue training."""
    model = load_model(model_file)
    if not isinstance(model.regressor, KeypointMeshRegressor):
        raise CheckpointError(f"--init {model_file}: expected a keypoint model file, found one whose regressor reads "
                              f"{model.regressor.input_name!r}")
    return model.float()


def bundle(model_file: Path) -> None:
    """The shipped copy of a trained model file: weights only, stored as float16."""
    atomic_torch_save(inference_checkpoint(read_checkpoint(model_file), "float16"), KEYPOINT_MODEL)
    logging.info("wrote %s", KEYPOINT_MODEL)


if __name__ == "__main__":
    sys.exit(main())
