"""What reduced precision costs in accuracy: INT8 (ONNX Runtime) and BF16 (PyTorch) against fp32 on person crops.

The fp32 outputs of the same backend are the reference (ONNX Runtime fp32 for INT8, PyTorch fp32 for BF16; the
two fp32 backends agree to ~1e-6 m). Reported per candidate (`vqhps_ros.runtime.measure_precision_cost`): token
agreement, vertex error (posed and canonical meshes, mm), rotation difference (degrees), PA-MPJPE or PA-PVE of the
candidate aligned onto fp32 (mm) and, when the evaluation crops have ground truth of the model's topology, the
official metric of fp32 and of the candidate against the truth and its change. Calibration and evaluation crops are
disjoint. Writes precision.json and precision.md to --out.

    python benchmarks/precision.py                               # official HRNet-W48, reference weights
    python benchmarks/precision.py --model demo_model.pt --dataset data/synth_val --calibration-dataset data/synth_train
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from graphs import (  # noqa: E402
    DEFAULT_REFERENCE_DIR,
    DEFAULT_WORK_DIR,
    describe_samples,
    fp32_graph,
    int8_graph,
    load_benchmark_model,
    person_samples,
    reference_model_file,
)
from machine import machine_info, write_results  # noqa: E402

from vqhps_ros.runtime import OnnxRuntimeEngine, TorchEngine, measure_precision_cost  # noqa: E402

LOG = logging.getLogger("benchmarks")
REPO = Path(__file__).resolve().parents[1]


def infer_all(engine, crops: np.ndarray):
    """Activate, infer every crop (the engine splits them into calls), deactivate."""
    with engine:
        return engine.infer(crops)


def table(rows: list[dict]) -> str:
    header = ["candidate", "reference", "persons", "tokens equal", "vertex error mm (mean / p95 / max)",
              "canonical mm", "rotation deg", "persons without a flip: share, vertex mm", "aligned to reference mm",
              "vs truth: reference -> candidate mm"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * 2 + "---:|" * (len(header) - 2)]
    for row in rows:
        cost = row["cost"]
        truth = "-" if cost["truth_change_mm"] is None else (
            f"{cost['reference_to_truth_mm']:.1f} -> {cost['candidate_to_truth_mm']:.1f} "
            f"({cost['truth_change_mm']:+.1f})")
        lines.append("| " + " | ".join([
            row["candidate"], row["reference"], str(cost["persons"]), f"{100 * cost['token_agreement']:.1f}%",
            f"{cost['vertex_error_mm']:.1f} / {cost['vertex_error_p95_mm']:.1f} / {cost['vertex_error_max_mm']:.1f}",
            f"{cost['canonical_vertex_error_mm']:.1f}", f"{cost['rotation_error_deg']:.2f}",
            f"{100 * cost['persons_all_tokens_equal']:.0f}%, " + (
                "-" if cost["vertex_error_all_tokens_equal_mm"] is None
                else f"{cost['vertex_error_all_tokens_equal_mm']:.2f}"),
            f"{cost['aligned_to_reference_mm']:.1f} ({cost['aligned_metric']})", truth,
        ]) + " |")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="a model file written by vqhps_ros (default: the official "
                        "HRNet-W48 architecture with the reference directory's weights)")
    parser.add_argument("--reference", type=Path, default=DEFAULT_REFERENCE_DIR)
    parser.add_argument("--dataset", type=Path, help="held-out dataset folder to evaluate on (default: rendered "
                        "synthetic frames, seed 2)")
    parser.add_argument("--count", type=int, default=64, help="evaluation persons")
    parser.add_argument("--calibration-dataset", type=Path, help="dataset folder for INT8 calibration (default: "
                        "rendered synthetic frames, seed 1)")
    parser.add_argument("--calibration-count", type=int, default=32)
    parser.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)

    model_path = args.model or reference_model_file(args.work_dir, args.reference)
    model = load_benchmark_model(model_path)
    calibration = person_samples(args.calibration_dataset, args.work_dir, args.calibration_count, seed=1)
    evaluation = person_samples(args.dataset, args.work_dir, args.count, seed=2)
    fp32 = fp32_graph(model_path, args.work_dir)
    int8 = int8_graph(fp32, calibration)
    regressor = None if model.joint_regressor is None else model.joint_regressor.numpy()
    truth = evaluation.canonical_vertices

    outputs = {
        "onnxruntime fp32": infer_all(OnnxRuntimeEngine(fp32, threads=args.threads), evaluation.crops),
        "onnxruntime int8": infer_all(OnnxRuntimeEngine(int8, threads=args.threads), evaluation.crops),
        "pytorch fp32": infer_all(TorchEngine(model, device="cpu"), evaluation.crops),
        # Emulated bf16 (CPUs without bf16 instructions) rounds like native bf16: only its speed differs.
        "pytorch bf16": infer_all(TorchEngine(model, device="cpu", precision="bf16", allow_emulated_bf16=True),
                                  evaluation.crops),
    }
    rows = []
    for candidate, reference in (("onnxruntime fp32", "pytorch fp32"), ("onnxruntime int8", "onnxruntime fp32"),
                                 ("pytorch bf16", "pytorch fp32")):
        cost = measure_precision_cost(outputs[reference], outputs[candidate], truth, regressor)
        rows.append({"candidate": candidate, "reference": reference, "cost": cost.to_dict()})
        print(candidate, "vs", reference, cost, flush=True)
    evaluated = describe_samples(args.dataset, evaluation, 2)
    calibrated = describe_samples(args.calibration_dataset, calibration, 1)
    report = {"machine": machine_info(threads=args.threads), "model": str(model_path), "graphs": [str(fp32),
              str(int8)], "evaluation": evaluated, "calibration": calibrated, "rows": rows}
    # Millimetre errors scale with the meshes: say how large this model's are (untrained weights make giants).
    extent = float(np.ptp(outputs["pytorch fp32"].verts_canonical, axis=1).max(axis=1).mean())
    report["mean_mesh_extent_m"] = extent
    title = f"Accuracy cost of reduced precision, {model_path.name}"
    body = (f"Evaluated on {evaluated}; INT8 calibrated on {calibrated}. The fp32 meshes measure {extent:.2f} m "
            f"along their longest side on average.\n\n{table(rows)}")
    write_results(args.out, "precision", report, title, body)


if __name__ == "__main__":
    main()
