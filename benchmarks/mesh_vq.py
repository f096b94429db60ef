"""Mesh-VQ-VAE encode and decode latency on this machine: PyTorch eager vs ONNX Runtime (CPU provider).

    python benchmarks/mesh_vq.py --out benchmarks/results

The model has the official architecture ("medium" config) on the official connection matrices, with random weights:
latency does not depend on the weight values. Decode runs the package's exported decoder graph through
OnnxMeshDecoder (as the pipeline would); encode exports verts -> indices (encoder + argmin over codebook distances)
with the same exporter. Each case runs a warm-up, then up to --repeats timed calls (fewer when --case-seconds is
spent first, so slow large batches keep the run short); the tables give p50/p95 and meshes/s at the p50.
Writes mesh_vq.json and mesh_vq.md into --out.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import cpu_seconds, machine_info, other_processes_share  # noqa: E402

from vqhps_ros.mesh_vq import MeshVQConfig, MeshVQVAE, load_connections
from vqhps_ros.runtime import (
    BATCH,
    GraphSignature,
    OnnxMeshDecoder,
    TensorSpec,
    create_session,
    export_mesh_decoder,
    export_onnx,
    write_bytes_atomically,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONNECTIONS = REPO_ROOT.parent / "shared" / "reference" / "vqhps_official" / "connections"
CPU_ONLY = ["CPUExecutionProvider"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    usable_cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "results", help="output folder")
    parser.add_argument("--connections", type=Path, default=DEFAULT_CONNECTIONS,
                        help="folder of the official _pool*/_unpool* connection matrices")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4, 16], help="batch sizes (meshes per call)")
    parser.add_argument("--repeats", type=int, default=30, help="timed calls per case, at most")
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls before each case")
    parser.add_argument("--case-seconds", type=float, default=12.0,
                        help="stop timing a case after this many seconds (at least --min-repeats calls)")
    parser.add_argument("--min-repeats", type=int, default=5, help="timed calls per case, at least")
    parser.add_argument("--threads", type=int, default=usable_cores, help="intra-op threads of both backends")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


class MeshEncoderGraph(nn.Module):
    """verts (B, N, 3) -> indices (B, T): the model's own encode, argmin included."""

    def __init__(self, model: MeshVQVAE):
        super().__init__()
        self.model = model

    def forward(self, verts: torch.Tensor) -> torch.Tensor:
        return self.model.encode(verts)


def export_mesh_encoder(model: MeshVQVAE, path: Path) -> Path:
    signature = GraphSignature(
        inputs=(TensorSpec("vertices", "float32", (BATCH, model.num_vertices, 3)),),
        outputs=(TensorSpec("indices", "int64", (BATCH, model.num_tokens)),),
    )
    example = torch.zeros(2, model.num_vertices, 3)
    return export_onnx(MeshEncoderGraph(model), (example,), signature, path, "mesh_encoder", {})


def time_calls(call: Callable[[], object], args: argparse.Namespace) -> list[float]:
    """Seconds per call after the warm-up: --repeats calls, or fewer once --case-seconds is spent."""
    for _ in range(args.warmup):
        call()
    timings: list[float] = []
    started = time.perf_counter()
    while len(timings) < args.repeats:
        begin = time.perf_counter()
        call()
        timings.append(time.perf_counter() - begin)
        if len(timings) >= args.min_repeats and time.perf_counter() - started > args.case_seconds:
            break
    return timings


def summarise(stage: str, backend: str, batch: int, timings: list[float]) -> dict:
    p50, p95 = np.percentile(np.asarray(timings) * 1e3, [50, 95])
    return {
        "stage": stage, "backend": backend, "batch": batch, "repeats": len(timings),
        "p50_ms": round(float(p50), 3), "p95_ms": round(float(p95), 3),
        "mean_ms": round(float(np.mean(timings) * 1e3), 3), "meshes_per_s": round(batch / (p50 / 1e3), 2),
    }  # fmt: skip


def run_cases(model: MeshVQVAE, folder: Path, args: argparse.Namespace) -> tuple[list[dict], dict]:
    """Timings of every (stage, backend, batch), and how far ONNX Runtime's outputs are from PyTorch's."""
    decoder = OnnxMeshDecoder(export_mesh_decoder(model, folder / "mesh_decoder.onnx"), args.threads, CPU_ONLY)
    encoder = create_session(export_mesh_encoder(model, folder / "mesh_encoder.onnx"), args.threads, CPU_ONLY)
    with torch.inference_mode():  # after the exports: tracing does not run under inference mode
        return _time_every_case(model, encoder, decoder, args)


def _time_every_case(model: MeshVQVAE, encoder, decoder: OnnxMeshDecoder,
                     args: argparse.Namespace) -> tuple[list[dict], dict]:
    generator = torch.Generator().manual_seed(args.seed)
    inputs = {
        batch: (torch.randn(batch, model.num_vertices, 3, generator=generator) * 0.5,
                torch.randint(0, model.num_embeddings, (batch, model.num_tokens), generator=generator))
        for batch in args.batches
    }  # fmt: skip
    backends = {
        "pytorch": {"encode": model.encode, "decode": model.decode},
        "onnxruntime": {"encode": lambda verts: encoder.run(None, {"vertices": verts.numpy()})[0],
                        "decode": lambda indices: decoder(indices.numpy())},
    }  # fmt: skip
    results = []
    # One backend after the other, not interleaved: on few cores, the worker threads one library keeps spinning
    # for a while after a call would slow the other library's next call.
    for backend, stages in backends.items():
        for stage, function in stages.items():
            for batch, (verts, indices) in inputs.items():
                argument = verts if stage == "encode" else indices
                results.append(summarise(stage, backend, batch, time_calls(lambda f=function, a=argument: f(a), args)))
                print(_table_row(results[-1]), flush=True)
    results.sort(key=lambda result: (result["stage"] == "decode", result["batch"], result["backend"] != "pytorch"))
    return results, _parity(backends, inputs)


def _parity(backends: dict, inputs: dict) -> dict:
    """Per batch: largest vertex difference of the decoders, share of equal tokens of the encoders."""
    torch_side, onnx_side = backends["pytorch"], backends["onnxruntime"]
    return {
        batch: {
            "decode_max_abs_error": float(np.abs(onnx_side["decode"](indices) - torch_side["decode"](indices).numpy())
                                          .max()),
            "encode_token_agreement": float(np.mean(onnx_side["encode"](verts) == torch_side["encode"](verts).numpy())),
        }
        for batch, (verts, indices) in inputs.items()
    }


def _percent(share: float | None) -> str:
    return "an unknown share" if share is None else f"{share:.0%}"


def _table_row(result: dict) -> str:
    return (f"| {result['stage']} | {result['backend']} | {result['batch']} | {result['p50_ms']:.1f} | "
            f"{result['p95_ms']:.1f} | {result['meshes_per_s']:.1f} | {result['repeats']} |")


def markdown_report(report: dict) -> str:
    machine, settings = report["machine"], report["settings"]
    lines = [
        "# Mesh-VQ-VAE latency: PyTorch eager vs ONNX Runtime",
        "",
        f"- CPU: {machine['cpu']}, {machine['usable_cores']} usable cores, {machine['threads']} threads per backend",
        f"- torch {machine['torch']}, onnxruntime {machine['onnxruntime']} (CPU provider), numpy {machine['numpy']}, "
        f"Python {machine['python']}, vqhps_ros {machine['vqhps_ros']}",
        f"- official medium architecture, {settings['num_vertices']} vertices, {settings['num_tokens']} tokens, "
        f"random weights, float32; {settings['warmup']} warm-up calls, then up to {settings['repeats']} timed calls "
        f"or {settings['case_seconds']} s per case",
        f"- other processes used {_percent(machine['other_processes_cpu_share'])} of the cores' time during the "
        "run (timings are clean only near 0%)",
        "",
        "| stage | backend | batch | p50 ms | p95 ms | meshes/s (p50) | repeats |",
        "|---|---|---:|---:|---:|---:|---:|",
        *[_table_row(result) for result in report["results"]],
        "",
        "ONNX Runtime vs PyTorch on the benchmark inputs: "
        + "; ".join(f"batch {batch}: decode max |diff| {values['decode_max_abs_error']:.1e}, "
                    f"encode tokens equal {values['encode_token_agreement']:.1%}"
                    for batch, values in report["parity"].items()),
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    config = MeshVQConfig()
    model = MeshVQVAE(config, load_connections(args.connections, config.connection_layers)).eval()
    machine = machine_info(args.threads)
    started = cpu_seconds()
    with tempfile.TemporaryDirectory(prefix="vqhps_bench_") as folder:
        results, parity = run_cases(model, Path(folder), args)
    machine["other_processes_cpu_share"] = other_processes_share(started, cpu_seconds())
    report = {
        "machine": machine,
        "settings": {
            "batches": args.batches, "repeats": args.repeats, "warmup": args.warmup,
            "case_seconds": args.case_seconds, "min_repeats": args.min_repeats, "seed": args.seed,
            "num_vertices": model.num_vertices, "num_tokens": model.num_tokens, "dtype": "float32",
        },
        "results": results,
        "parity": parity,
    }  # fmt: skip
    write_bytes_atomically(json.dumps(report, indent=2).encode(), args.out / "mesh_vq.json")
    write_bytes_atomically(markdown_report(report).encode(), args.out / "mesh_vq.md")
    print(f"wrote {args.out / 'mesh_vq.json'} and {args.out / 'mesh_vq.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
