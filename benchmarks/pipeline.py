"""The whole pipeline on the sample bag: time per stage of `vqhps-ros replay`, and how fast it runs against real time.

Stages: read (bag read, deserialisation, frame assembly), decode (image), persons, crop, engine, place, temporal,
build (messages) and write (output bag). Three cases, through ONNX Runtime on the CPU:

* each bundled model (the default keypoint model, whose crop stage runs the landmark model on every box, and the
  image model) over the whole sample bag (150 frames, 15 Hz, 1 to 3 people): the real-time factor (the bag's
  duration over the replay's wall time; target: at least 2);
* the official HRNet-W48 graph (reference weights) over the first --hrnet-frames frames: everything but the engine
  as a share of the engine's time (target: at most 10 %).

    python benchmarks/pipeline.py [--threads 2] [--hrnet-frames 30] [--out benchmarks/results]

Writes pipeline.json and pipeline.md; the machine's CPU and vector ISA are recorded with the figures.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from graphs import DEFAULT_REFERENCE_DIR, DEFAULT_WORK_DIR, fp32_graph, reference_model_file  # noqa: E402
from machine import cpu_seconds, machine_info, other_processes_share, write_results  # noqa: E402

from vqhps_ros.config import load_config  # noqa: E402
from vqhps_ros.data import sample_bag_path  # noqa: E402
from vqhps_ros.replay import ReplayOptions, replay_bag  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
STAGES = ("read", "decode", "persons", "crop", "engine", "place", "temporal", "build", "write")


def run_case(name: str, model_path: Path | str, threads: int, max_frames: int | None, work_dir: Path,
             extra: tuple[str, ...] = ()) -> dict:
    overrides = [f"model.path={model_path}", "model.backend=onnxruntime", f"model.threads={threads}",
                 f"model.engine_cache_dir={work_dir / 'engines'}", *extra]
    config = load_config(overrides=overrides)
    with tempfile.TemporaryDirectory() as folder:
        before = cpu_seconds()
        summary = replay_bag(sample_bag_path(), Path(folder) / "out", config,
                             ReplayOptions(max_frames=max_frames, progress=False))
        after = cpu_seconds()
    return {"case": name, "engine": summary["engine"], "frames": summary["frames_processed"],
            "humans": summary["humans"], "humans_per_frame": summary["humans_per_frame"],
            "latency": summary["latency"], "wall_s": summary["wall_s"],
            "bag_span_s": summary["bag_span_s"], "real_time_factor": summary["real_time_factor"],
            "skipped": summary["skipped"], "other_processes_share": other_processes_share(before, after)}


def overhead_share(case: dict) -> float:
    """Mean time per frame of every stage but the engine, over the engine's mean time per frame."""
    latency = case["latency"]
    others = sum(latency[stage]["mean_ms"] for stage in STAGES if stage != "engine" and stage in latency)
    return others / latency["engine"]["mean_ms"]


def table(cases: list[dict], cpu: str) -> str:
    header = "| case | " + " | ".join(STAGES) + " | non-engine / engine | real-time factor |\n"
    header += "|---" * (len(STAGES) + 3) + "|\n"
    rows = []
    for case in cases:
        cells = [f"{case['latency'][stage]['mean_ms']:.2f}" if stage in case["latency"] else "-" for stage in STAGES]
        rows.append(f"| {case['case']} ({case['humans_per_frame']} persons/frame) | " + " | ".join(cells)
                    + f" | {100 * overhead_share(case):.1f} % | {case['real_time_factor']}x |")
    note = (f"\nMean milliseconds per frame, ONNX Runtime on the CPU: {cpu}. Real-time factor: the bag's duration "
            "over the replay's wall time (15 Hz bag).\n")
    return header + "\n".join(rows) + "\n" + note


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--hrnet-frames", type=int, default=30)
    parser.add_argument("--reference", type=Path, default=DEFAULT_REFERENCE_DIR)
    parser.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    cases = [run_case("bundled keypoint model (default)", "bundled:keypoints", args.threads, None, args.work_dir),
             run_case("bundled image model", "bundled:image", args.threads, None, args.work_dir)]
    hrnet = fp32_graph(reference_model_file(args.work_dir, args.reference), args.work_dir)
    # exported as the official code decodes (argmax): say so, rather than be warned that the default is not obeyed
    cases.append(run_case("official HRNet-W48 graph", hrnet, args.threads, args.hrnet_frames, args.work_dir,
                          ("model.token_decoding=argmax",)))
    info = machine_info(args.threads)
    report = {"machine": info, "cases": cases,
              "non_engine_share": {case["case"]: round(overhead_share(case), 4) for case in cases}}
    write_results(args.out, "pipeline", report, "Pipeline stages on the sample bag", table(cases, info["cpu"]))
    print(table(cases, info["cpu"]))
    return 0 if np.isfinite(overhead_share(cases[-1])) else 1


if __name__ == "__main__":
    sys.exit(main())
