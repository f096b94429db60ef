"""Inference engines on the whole VQ-HPS graph (crops -> tokens -> meshes): speed, memory, arithmetic rate.

For every backend and precision this machine runs (PyTorch eager fp32 and, on CPUs with bf16 instructions, bf16;
ONNX Runtime fp32 and int8; TensorRT / CUDA where present), at batch 1, 2, 4 and 8: latency p50 / p95, persons per
second, peak memory of the process, GFLOP per crop (2 per multiply-add, torch's counter) and the achieved GFLOP/s,
and the speed relative to PyTorch eager fp32 measured in the same run. Each case runs in a fresh process (its peak
memory is its own) and is measured again when other processes took more than --max-other-share of the cores
meanwhile. Writes engines.json and engines.md to --out.

    python benchmarks/engines.py                          # official HRNet-W48, reference weights
    python benchmarks/engines.py --model demo_model.pt --calibration-dataset data/synth_train
"""

from __future__ import annotations

import argparse
import concurrent.futures
import logging
import multiprocessing
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from graphs import (  # noqa: E402
    DEFAULT_REFERENCE_DIR,
    DEFAULT_WORK_DIR,
    describe_samples,
    exported_graph,
    fp32_graph,
    int8_graph,
    load_benchmark_model,
    model_gflop,
    person_samples,
    reference_model_file,
)
from machine import cpu_seconds, machine_info, other_processes_share, write_results  # noqa: E402

LOG = logging.getLogger("benchmarks")
REPO = Path(__file__).resolve().parents[1]
BATCHES = (1, 2, 4, 8)


# ------------------------------------------------------------------------------------------- one case (a process)


def run_case(case: dict) -> dict:
    """Build the case's engine and time it at every batch; runs in its own process."""
    import torch

    from vqhps_ros.runtime import create_engine

    torch.set_num_threads(case["threads"])
    baseline_mb = _peak_rss_mb()
    model = load_benchmark_model(Path(case["model"])) if case["backend"] == "pytorch" else None
    engine = create_engine(case["backend"], case["precision"], onnx_path=case.get("graph"), model=model,
                           threads=case["threads"], max_persons=max(case["batches"]), device=case.get("device"))
    crops = np.load(case["crops"])
    rows = []
    for batch in case["batches"]:
        batch_crops = np.resize(crops, (batch, *crops.shape[1:]))  # repeats persons when there are fewer
        rows.append(_measure_batch(engine, batch_crops, case))
    description = engine.description
    engine.deactivate()
    return {"description": str(description), "device": description.device, "rows": rows,
            "baseline_rss_mb": baseline_mb, "peak_rss_mb": _peak_rss_mb()}


def _measure_batch(engine, crops: np.ndarray, case: dict) -> dict:
    for attempt in range(case["attempts"]):
        for _ in range(case["warmup"]):
            engine.infer(crops)
        started, timings = cpu_seconds(), []
        deadline = time.monotonic() + case["budget_s"]
        while len(timings) < case["repeats"] and (len(timings) < 3 or time.monotonic() < deadline):
            begin = time.perf_counter()
            engine.infer(crops)
            timings.append(time.perf_counter() - begin)
        share = other_processes_share(started, cpu_seconds())
        if share is None or share <= case["max_other_share"] or attempt == case["attempts"] - 1:
            break
        LOG.warning("other processes used %.0f%% of the cores; measuring again", 100 * share)
        time.sleep(case["pause_s"])
    p50 = float(np.percentile(timings, 50))
    return {"batch": len(crops), "p50_ms": 1000 * p50, "p95_ms": 1000 * float(np.percentile(timings, 95)),
            "persons_per_s": len(crops) / p50, "repeats": len(timings), "other_share": share}


def _peak_rss_mb() -> float:
    """This process's peak resident memory. /proc's VmHWM belongs to the process image, so unlike ru_maxrss it does
    not start from the parent's size at fork (spawned workers are forked, then exec'd)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux, bytes on macOS


def run_isolated(case: dict) -> dict:
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as executor:
        return executor.submit(run_case, case).result()


# -------------------------------------------------------------------------------------------------------- cases


def available_cases(graphs: dict[str, Path], include_gpu: bool) -> list[tuple[str, str, str | None]]:
    """(backend, precision, device) in the order they are measured; PyTorch eager fp32 first (the reference)."""
    import importlib.util

    import torch

    from vqhps_ros.runtime.cpu_features import this_cpu

    cases = [("pytorch", "fp32", "cpu"), ("pytorch", "bf16", "cpu"), ("onnxruntime", "fp32", None),
             ("onnxruntime", "int8", None)]
    if not this_cpu().native_bf16():  # the engine refuses emulated bf16: several times slower than fp32
        LOG.info("not measuring pytorch bf16: %s has no bf16 instructions", this_cpu().describe())
        cases.remove(("pytorch", "bf16", "cpu"))
    if include_gpu and torch.cuda.is_available():
        cases += [("pytorch", "fp32", "cuda"), ("pytorch", "fp16", "cuda")]
    if include_gpu and importlib.util.find_spec("tensorrt") and importlib.util.find_spec("pycuda"):
        cases += [("tensorrt", "fp16", None), ("tensorrt", "fp32", None)]
    return [case for case in cases if case[0] == "pytorch" or case[1] in graphs or case[0] == "tensorrt"]


def graph_for(backend: str, precision: str, graphs: dict[str, Path], model_path: Path, work_dir: Path,
              max_persons: int) -> Path | None:
    """The graph a case runs: its precision's for ONNX Runtime; for TensorRT the one this TensorRT builds from."""
    if backend == "pytorch":
        return None
    if backend == "tensorrt":
        from vqhps_ros.runtime.tensorrt_engine import TensorRTFeatures, import_tensorrt, preferred_graph_precision

        wanted = preferred_graph_precision(TensorRTFeatures.of(import_tensorrt()), precision)
        if wanted not in graphs:
            graphs[wanted] = exported_graph(model_path, work_dir, max_persons, wanted)
        return graphs[wanted]
    return graphs[precision]


# ------------------------------------------------------------------------------------------------------- report


def table(results: list[dict], gflop: float) -> str:
    header = ["backend", "precision", "device", "batch", "p50 ms", "p95 ms", "persons/s", "x PyTorch fp32",
              "GFLOP/s", "peak RSS MB", "other CPU"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * 3 + "---:|" * (len(header) - 3)]
    for result in results:
        for row in result["rows"]:
            lines.append("| " + " | ".join([
                result["backend"], result["precision"], result["device"], str(row["batch"]), f"{row['p50_ms']:.0f}",
                f"{row['p95_ms']:.0f}", f"{row['persons_per_s']:.2f}", f"{row['speedup']:.2f}",
                f"{gflop * row['persons_per_s']:.0f}", f"{result['peak_rss_mb']:.0f}",
                "-" if row["other_share"] is None else f"{100 * row['other_share']:.0f}%",
            ]) + " |")  # fmt: skip
    return "\n".join(lines)


def engines_title(model_name: str, gflop: float, threads: int, cpu: str) -> str:
    return (f"Inference engines, whole VQ-HPS graph ({model_name}: crops -> tokens -> meshes, {gflop:.1f} GFLOP = "
            f"{gflop / 2:.1f} G multiply-adds per crop), {threads} threads, {cpu}")


def add_speedups(results: list[dict]) -> None:
    reference = {row["batch"]: row["persons_per_s"] for row in results[0]["rows"]}
    for result in results:
        for row in result["rows"]:
            row["speedup"] = row["persons_per_s"] / reference[row["batch"]]


def targets(results: list[dict]) -> list[str]:
    """The issue's targets, each with the measured values."""
    lines = []
    for backend, precision, goal in (("onnxruntime", "fp32", 1.5), ("onnxruntime", "int8", 4.0)):
        result = next((item for item in results if (item["backend"], item["precision"]) == (backend, precision)), None)
        if result is None:
            continue
        ratios = ", ".join(f"batch {row['batch']}: {row['speedup']:.2f}x" for row in result["rows"])
        verdict = "met" if all(row["speedup"] >= goal for row in result["rows"]) else "missed"
        lines.append(f"- {backend} {precision} vs PyTorch eager fp32 (target >= {goal}x, {verdict}): {ratios}")
    for result in results:
        rows = {row["batch"]: row["persons_per_s"] for row in result["rows"]}
        if 1 in rows and 4 in rows:
            gain = rows[4] / rows[1]
            lines.append(f"- batch 4 vs batch 1, {result['backend']} {result['precision']} {result['device']}: "
                         f"{gain:.2f}x persons/s (target >= 1.3x: {'met' if gain >= 1.3 else 'missed'})")
    return lines


# --------------------------------------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="a model file written by vqhps_ros (default: the official "
                        "HRNet-W48 architecture with the reference directory's weights)")
    parser.add_argument("--reference", type=Path, default=DEFAULT_REFERENCE_DIR)
    parser.add_argument("--calibration-dataset", type=Path, help="dataset folder for INT8 calibration (default: "
                        "rendered synthetic frames)")
    parser.add_argument("--calibration-count", type=int, default=32)
    parser.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batches", type=int, nargs="+", default=list(BATCHES))
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--budget-s", type=float, default=20.0, help="time per batch size after 3 repeats")
    parser.add_argument("--max-other-share", type=float, default=0.1)
    parser.add_argument("--attempts", type=int, default=4)
    parser.add_argument("--no-gpu", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    model_path = args.model or reference_model_file(args.work_dir, args.reference)
    gflop = model_gflop(load_benchmark_model(model_path))
    calibration = person_samples(args.calibration_dataset, args.work_dir, args.calibration_count, seed=1)
    graphs = {"fp32": fp32_graph(model_path, args.work_dir, max(args.batches))}
    graphs["int8"] = int8_graph(graphs["fp32"], calibration)
    crops_path = args.work_dir / "benchmark_crops.npy"
    np.save(crops_path, person_samples(None, args.work_dir, max(args.batches), seed=2).crops)

    results = []
    for backend, precision, device in available_cases(graphs, not args.no_gpu):
        case = dict(backend=backend, precision=precision, device=device, model=str(model_path),
                    graph=None if (path := graph_for(backend, precision, graphs, model_path, args.work_dir,
                                                     max(args.batches))) is None else str(path),
                    crops=str(crops_path), batches=args.batches, threads=args.threads, repeats=args.repeats,
                    warmup=args.warmup, budget_s=args.budget_s, max_other_share=args.max_other_share,
                    attempts=args.attempts, pause_s=20.0)
        LOG.info("measuring %s %s", backend, precision)
        result = {"backend": backend, "precision": precision, **run_isolated(case)}
        print(result["description"], [(row["batch"], round(row["p50_ms"])) for row in result["rows"]], flush=True)
        results.append(result)
    add_speedups(results)
    info = machine_info(threads=args.threads)
    summary = targets(results)
    report = {"machine": info, "model": str(model_path), "gflop_per_crop": gflop, "graphs": {k: str(v) for k, v in
              graphs.items()}, "calibration": describe_samples(args.calibration_dataset, calibration, 1),
              "results": results, "targets": summary}
    title = engines_title(model_path.name, gflop, args.threads, info["cpu"])
    body = table(results, gflop) + "\n\n" + "\n".join(summary)
    write_results(args.out, "engines", report, title, body)


if __name__ == "__main__":
    main()
