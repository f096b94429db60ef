"""VQ-HPS network cost per backbone on this machine: parameters, GFLOPs per crop, latency at batch 1 and 4.

The whole inference graph is timed (crops -> logits -> tokens -> Mesh-VQ-VAE decode -> rotated mesh), in PyTorch
eager float32 with random weights (latency does not depend on their values). Writes regressor.json and
regressor.md to --out.

    python benchmarks/regressor.py --out benchmarks/results
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import cpu_seconds, machine_info, other_processes_share, write_results  # noqa: E402

from vqhps_ros.hps import VQHPS, MeshRegressor, RegressorConfig  # noqa: E402
from vqhps_ros.mesh_vq import MeshVQConfig, MeshVQVAE, load_connections  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CONNECTIONS = REPO.parent / "shared" / "reference" / "vqhps_official" / "connections"
BACKBONES = ("hrnet_w48", "resnet50", "resnet34", "resnet18", "resnet18_half", "resnet18_quarter")


def build_model(backbone: str, mesh_vqvae: MeshVQVAE) -> VQHPS:
    torch.manual_seed(0)
    return VQHPS(MeshRegressor(RegressorConfig(backbone=backbone)), mesh_vqvae, torch.zeros(51)).eval()


def gflops_per_crop(model: VQHPS) -> float:
    """Multiply-adds (billions) of one crop through the whole graph, counted by torch's FLOP counter.

    Runs with autograd on: the counter's module tracker fails on parameter views made under no_grad.
    """
    counter = FlopCounterMode(display=False)
    with counter:
        model(torch.zeros(1, 3, 224, 224))
    return counter.get_total_flops() / 2 / 1e9  # the counter reports 2 FLOPs per multiply-add


@torch.no_grad()
def latency_ms(model: VQHPS, batch: int, repeats: int, warmup: int) -> list[float]:
    crops = torch.randn(batch, 3, 224, 224)
    for _ in range(warmup):
        model(crops)
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        model(crops)
        timings.append(1000 * (time.perf_counter() - started))
    return timings


def measure(backbone: str, mesh_vqvae: MeshVQVAE, batches: tuple[int, ...], repeats: int, warmup: int) -> dict:
    model = build_model(backbone, mesh_vqvae)
    row = {
        "backbone": backbone,
        "regressor_parameters_m": sum(p.numel() for p in model.regressor.parameters()) / 1e6,
        "gflops_per_crop": gflops_per_crop(model),
    }
    for batch in batches:
        timings = latency_ms(model, batch, repeats, warmup)
        row[f"batch{batch}_p50_ms"] = float(np.percentile(timings, 50))
        row[f"batch{batch}_p95_ms"] = float(np.percentile(timings, 95))
        row[f"batch{batch}_crops_per_s"] = 1000 * batch / row[f"batch{batch}_p50_ms"]
    print(json.dumps(row), flush=True)
    return row


def markdown_table(rows: list[dict], batches: tuple[int, ...]) -> str:
    header = ["backbone", "params (M)", "GFLOPs/crop"]
    for batch in batches:
        header += [f"b{batch} p50 ms", f"b{batch} p95 ms", f"b{batch} crops/s"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [row["backbone"], f"{row['regressor_parameters_m']:.1f}", f"{row['gflops_per_crop']:.2f}"]
        for batch in batches:
            cells += [f"{row[f'batch{batch}_p50_ms']:.0f}", f"{row[f'batch{batch}_p95_ms']:.0f}",
                      f"{row[f'batch{batch}_crops_per_s']:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--connections", type=Path, default=DEFAULT_CONNECTIONS)
    parser.add_argument("--backbones", nargs="+", default=list(BACKBONES))
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    batches = (1, 4)
    mesh_vqvae = MeshVQVAE(MeshVQConfig(), load_connections(args.connections, MeshVQConfig().connection_layers)).eval()
    started = cpu_seconds()
    rows = [measure(name, mesh_vqvae, batches, args.repeats, args.warmup) for name in args.backbones]
    info = machine_info(threads=args.threads)
    info["other_processes_cpu_share"] = other_processes_share(started, cpu_seconds())
    title = (f"VQ-HPS whole graph (crops -> meshes, official Mesh-VQ-VAE decoder, 6890 vertices), PyTorch eager "
             f"fp32, {args.threads} threads, {info['cpu']}; other processes used "
             f"{info['other_processes_cpu_share']} of the cores' time")
    write_results(args.out, "regressor", {"machine": info, "rows": rows}, title, markdown_table(rows, batches))


if __name__ == "__main__":
    main()
