"""Synthetic data on this machine: rasteriser latency and synthetic frames per second, with the free body.

Rendering cases: one free body (1229 vertices, 2454 triangles) filling 90 % of the image height, at 224x224 (a
crop) and 640x480 (a camera frame), and three bodies at 640x480; each is timed for the rasteriser alone
(`rasterize`: face ids, depth, barycentrics) and for the full `render_meshes` (plus shading, normals, vertex ids,
masks). The writer case runs `write_dataset` at 640x480 (1 to 3 people, room background, JPEG files).
Writes synth.json and synth.md into --out.

    python benchmarks/synth.py --out benchmarks/results
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import cpu_seconds, machine_info, other_processes_share, write_results  # noqa: E402

from vqhps_ros.body import FREE_BODY_PATH, load_free_body_data  # noqa: E402
from vqhps_ros.synth import SceneGenerator, rasterize, render_meshes, write_dataset  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def body_meshes(count: int, image_size: tuple[int, int], focal: float) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """`count` T-posed bodies side by side, 90 % of the image height tall, in the camera frame."""
    body = load_free_body_data()
    template = body.v_template.astype(np.float64) @ np.diag([1.0, -1.0, -1.0])  # y down, facing the camera
    template -= template.mean(axis=0)
    depth = focal * 1.8 / (0.9 * image_size[0])
    offsets = (np.arange(count) - (count - 1) / 2) * 0.9
    faces = torch.as_tensor(body.faces)
    return [(torch.as_tensor(template + [offset, 0.0, depth]), faces) for offset in offsets]


def latency_ms(call, repeats: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    return times


def render_cases(repeats: int, warmup: int) -> list[dict]:
    rows = []
    for size, people in (((224, 224), 1), ((480, 640), 1), ((480, 640), 3)):
        focal = 1.1 * size[1]
        intrinsics = np.array([[focal, 0, (size[1] - 1) / 2], [0, focal, (size[0] - 1) / 2], [0, 0, 1]])
        meshes = body_meshes(people, size, focal)
        vertices = torch.cat([mesh_vertices for mesh_vertices, _ in meshes])
        faces = torch.cat([mesh_faces + index * len(meshes[0][0]) for index, (_, mesh_faces) in enumerate(meshes)])
        raster = latency_ms(lambda v=vertices, f=faces, k=intrinsics, s=size: rasterize(v, f, k, s), repeats, warmup)
        full = latency_ms(lambda m=meshes, k=intrinsics, s=size: render_meshes(m, k, s), repeats, warmup)
        covered = int(render_meshes(meshes, intrinsics, size).masks.sum())
        rows.append({"image": f"{size[1]}x{size[0]}", "people": people, "covered_pixels": covered,
                     "rasterize_p50_ms": float(np.median(raster)), "render_p50_ms": float(np.median(full)),
                     "render_p95_ms": float(np.percentile(full, 95))})
    return rows


def writer_case(frames: int) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        SceneGenerator()  # load the body once before timing
        start = time.perf_counter()
        info = write_dataset(Path(folder) / "data", frames, seed=0, progress=False)
        seconds = time.perf_counter() - start
        size = sum(path.stat().st_size for path in (Path(folder) / "data").rglob("*") if path.is_file())
    return {"frames": frames, "records": info["num_records"], "frames_per_s": frames / seconds,
            "megabytes_per_frame": size / frames / 1e6}


def markdown(rows: list[dict], writer: dict) -> str:
    lines = ["| image | people | covered px | rasterize p50 ms | render p50 ms | render p95 ms |",
             "|---|---:|---:|---:|---:|---:|"]
    for row in rows:
        lines.append(f"| {row['image']} | {row['people']} | {row['covered_pixels']} | {row['rasterize_p50_ms']:.1f} | "
                     f"{row['render_p50_ms']:.1f} | {row['render_p95_ms']:.1f} |")
    lines += ["", f"`write_dataset` at 640x480: {writer['frames_per_s']:.1f} frames/s ({writer['records']} records "
              f"in {writer['frames']} frames, {writer['megabytes_per_frame'] * 1000:.0f} kB per frame on disk)."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = cpu_seconds()
    rows = render_cases(args.repeats, args.warmup)
    writer = writer_case(args.frames)
    info = machine_info(threads=args.threads)
    info["other_processes_cpu_share"] = other_processes_share(started, cpu_seconds())
    body = load_free_body_data()
    report = {"machine": info, "render": rows, "writer": writer,
              "body": {"vertices": body.num_vertices, "faces": body.num_faces,
                       "file_megabytes": FREE_BODY_PATH.stat().st_size / 1e6}}
    title = (f"Synthetic data: torch rasteriser and dataset writer, free body ({body.num_vertices} vertices, "
             f"{body.num_faces} triangles), {args.threads} threads, {info['cpu']}; other processes used "
             f"{info['other_processes_cpu_share']} of the cores' time")
    write_results(args.out, "synth", report, title, markdown(rows, writer))


if __name__ == "__main__":
    main()
