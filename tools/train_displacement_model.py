#!/usr/bin/env python3
"""Train the displacement network that the package ships (`vqhps_ros/models/displacement_net.pt`).

    python tools/train_displacement_model.py --out displacement_net.pt [--pairs 32000] [--scene-pairs 0]
        [--init NET] [--minutes 40] [--bundle]

Pairs (`train.displacement_data`, seed `--seed`, drawn by `--workers` processes) train the network
(`train.displacement.train_displacement`) for `--steps` steps or `--minutes`, whichever ends first; `--check-pairs`
pairs of seed `--check-seed` measure it afterwards (`evaluate_displacement`; the report is logged and stored in the
file). `--scene-pairs` adds pairs from rendered scenes of several people with the bundled default model's meshes as
the renderings (`DisplacementSampler.scene_pair`; boxes: the true ones with each edge moved by a few percent of the
height, as a detector's; seed `--scene-seed`, measured on `--check-pairs` pairs of `--scene-seed + 1`). `--init`
starts from a network file instead of random weights. `--bundle` also writes the shipped copy (float16 storage).

The shipped network, in two runs (seeds at their defaults): `--pairs 32000 --minutes 45 --out first.pt` (perturbed
meshes only), then `--init first.pt --pairs 12000 --scene-pairs 8000 --check-pairs 1000 --learning-rate 1e-3
--minutes 35 --bundle`.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from vqhps_ros.boxes import box_iou
from vqhps_ros.checkpoints import atomic_torch_save, inference_checkpoint, read_checkpoint
from vqhps_ros.config import load_config
from vqhps_ros.estimator import Estimator
from vqhps_ros.humans import Detection, Frame
from vqhps_ros.models import DISPLACEMENT_NET
from vqhps_ros.refine.displacement import DisplacementNet, load_displacement_net, save_displacement_net
from vqhps_ros.synth.scene import SceneGenerator
from vqhps_ros.train.displacement import (
    DisplacementTraining,
    displacement_pairs,
    evaluate_displacement,
    pairs_in_chunks,
    train_displacement,
)
from vqhps_ros.train.displacement_data import DisplacementPairs, DisplacementSampler

BOX_JITTER = 0.025  # of the box height, per edge: a detector's boxes
MIN_VISIBLE = 0.3  # people hidden more than this are not detected
SCENE_CHUNK = 250


def scene_pairs(count: int, seed: int, workers: int) -> DisplacementPairs:
    """`count` scene pairs of seed `seed` (chunk k from the seed sequence (seed, k), whatever the workers)."""
    return pairs_in_chunks(_scene_chunk, count, seed, workers, SCENE_CHUNK)


def _scene_chunk(job) -> DisplacementPairs:
    seed, index, count = job
    torch.set_num_threads(1)
    rng = np.random.default_rng([seed, index])
    config = load_config(overrides=["model.backend=onnxruntime", "model.threads=1", "persons.source=detections",
                                    "temporal.enabled=false", "refine.enabled=false"])
    estimator = Estimator.from_config(config)
    generator = SceneGenerator()
    sampler = DisplacementSampler(generator=generator)
    pairs = []
    while len(pairs) < count:
        frame = generator.random_frame(rng)
        people = [i for i, person in enumerate(frame.people) if person.visible_fraction >= MIN_VISIBLE]
        boxes = [_jittered(rng, frame.people[i].box, frame.camera.image_size) for i in people]
        detections = tuple(Detection(box, 0.9, "person") for box in boxes)
        result = estimator.process(Frame(frame.image, 0, "camera", frame.camera.intrinsics, detections))
        for human in result.humans:
            overlaps = [box_iou(human.box, box) for box in boxes]
            if overlaps and max(overlaps) >= 0.9 and len(pairs) < count:
                pairs.append(sampler.scene_pair(rng, frame, people[int(np.argmax(overlaps))], human.vertices,
                                                human.box))
    estimator.close()
    return DisplacementPairs(*(np.stack([pair[k] for pair in pairs]) for k in range(5)))


def _jittered(rng: np.random.Generator, box: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    x0, y0, w, h = box
    edges = np.array([x0, y0, x0 + w, y0 + h]) + rng.normal(0.0, BOX_JITTER * h, size=4)
    height, width = image_size
    edges = np.clip(edges, 0, [width, height, width, height])
    return np.array([edges[0], edges[1], max(edges[2] - edges[0], 1.0), max(edges[3] - edges[1], 1.0)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="network file to write")
    parser.add_argument("--pairs", type=int, default=32_000)
    parser.add_argument("--steps", type=int, default=40_000)
    parser.add_argument("--minutes", type=float, default=None, help="time budget of the training loop")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=200, help="of the training pairs (apart from measuring seeds)")
    parser.add_argument("--check-pairs", type=int, default=2000)
    parser.add_argument("--check-seed", type=int, default=201)
    parser.add_argument("--scene-pairs", type=int, default=0, help="pairs from scenes with the regressor's meshes")
    parser.add_argument("--scene-seed", type=int, default=210)
    parser.add_argument("--init", type=Path, default=None, help="network file to start from")
    parser.add_argument("--workers", type=int, default=2, help="processes drawing the pairs")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--bundle", action="store_true", help=f"also write the shipped copy, {DISPLACEMENT_NET.name}")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    started = time.perf_counter()
    pairs = displacement_pairs(args.pairs, args.seed, workers=args.workers)
    checks = {"perturbed": displacement_pairs(args.check_pairs, args.check_seed, workers=args.workers)}
    if args.scene_pairs:
        pairs = DisplacementPairs.concatenate([pairs, scene_pairs(args.scene_pairs, args.scene_seed, args.workers)])
        checks["scene"] = scene_pairs(args.check_pairs, args.scene_seed + 1, args.workers)
    logging.info("%d training pairs, %s check pairs in %.0f s", len(pairs),
                 {name: len(check) for name, check in checks.items()}, time.perf_counter() - started)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    net = DisplacementNet(args.width) if args.init is None else load_displacement_net(args.init)
    if args.init is not None:
        before = {name: evaluate_displacement(net, check) for name, check in checks.items()}
        logging.info("from %s: %s", args.init, json.dumps(before))
    settings = DisplacementTraining(steps=args.steps, batch_size=args.batch, learning_rate=args.learning_rate,
                                    minutes=args.minutes)
    history = train_displacement(net, pairs, settings)
    report = {name: evaluate_displacement(net, check) for name, check in checks.items()}
    logging.info("check pairs: %s", json.dumps(report))
    training = {"pairs": args.pairs, "pair_seed": args.seed, "scene_pairs": args.scene_pairs,
                "scene_seed": args.scene_seed, "init": args.init and str(args.init), **asdict(settings)}
    save_displacement_net(net, args.out, training=training, history=history,
                          check={"seed": args.check_seed, "scene_seed": args.scene_seed + 1, **report})
    logging.info("wrote %s after %d steps", args.out, history[-1]["step"])
    if args.bundle:
        atomic_torch_save(inference_checkpoint(read_checkpoint(args.out), "float16"), DISPLACEMENT_NET)
        logging.info("wrote %s", DISPLACEMENT_NET)
    return 0


if __name__ == "__main__":
    sys.exit(main())
