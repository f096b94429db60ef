#!/usr/bin/env python3
"""Train the displacement network that the package ships (`vqhps_ros/models/displacement_net.pt`).

    python tools/train_displacement_model.py --out displacement_net.pt [--pairs 32000] [--minutes 40] [--bundle]

Pairs (`train.displacement_data`, seed `--seed`, drawn by `--workers` processes) train the network
(`train.displacement.train_displacement`) for `--steps` steps or `--minutes`, whichever ends first; `--check-pairs`
pairs of seed `--check-seed` measure it afterwards (`evaluate_displacement`; the report is logged and stored in the
file). `--bundle` also writes the shipped copy (float16 storage). The shipped network:
`--pairs 32000 --minutes 40 --bundle` (seeds and sizes at their defaults).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch

from vqhps_ros.checkpoints import atomic_torch_save, inference_checkpoint, read_checkpoint
from vqhps_ros.models import DISPLACEMENT_NET
from vqhps_ros.refine.displacement import DisplacementNet, save_displacement_net
from vqhps_ros.train.displacement import (
    DisplacementTraining,
    displacement_pairs,
    evaluate_displacement,
    train_displacement,
)


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
    parser.add_argument("--workers", type=int, default=2, help="processes drawing the pairs")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--bundle", action="store_true", help=f"also write the shipped copy, {DISPLACEMENT_NET.name}")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    started = time.perf_counter()
    pairs = displacement_pairs(args.pairs, args.seed, workers=args.workers)
    check = displacement_pairs(args.check_pairs, args.check_seed, workers=args.workers)
    logging.info("%d + %d pairs in %.0f s", len(pairs), len(check), time.perf_counter() - started)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    net = DisplacementNet(args.width)
    settings = DisplacementTraining(steps=args.steps, batch_size=args.batch, learning_rate=args.learning_rate,
                                    minutes=args.minutes)
    history = train_displacement(net, pairs, settings)
    report = evaluate_displacement(net, check)
    logging.info("check pairs (seed %d): %s", args.check_seed, json.dumps(report))
    save_displacement_net(net, args.out, training={"pairs": args.pairs, "pair_seed": args.seed, **asdict(settings)},
                          history=history, check={"seed": args.check_seed, **report})
    logging.info("wrote %s after %d steps", args.out, history[-1]["step"])
    if args.bundle:
        atomic_torch_save(inference_checkpoint(read_checkpoint(args.out), "float16"), DISPLACEMENT_NET)
        logging.info("wrote %s", DISPLACEMENT_NET)
    return 0


if __name__ == "__main__":
    sys.exit(main())
