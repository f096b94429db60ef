"""What every benchmark records about the machine, and how it writes its JSON and markdown results."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from vqhps_ros import __version__
from vqhps_ros.atomic_files import write_bytes_atomically
from vqhps_ros.runtime.cpu_features import this_cpu


def machine_info(threads: int) -> dict:
    cpu = this_cpu()
    info = {
        "cpu": cpu.describe(),  # model and instruction sets: they decide which precision is fast
        "cpu_model": cpu.model,
        "cpu_native_bf16": cpu.native_bf16(),
        "cpu_vnni": cpu.has_vnni(),
        "logical_cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "threads": threads,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "vqhps_ros": __version__,
    }
    try:
        import onnxruntime

        info["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        info["onnxruntime"] = None
    return info


def cpu_seconds() -> tuple[float, float, float] | None:
    """(wall time, CPU seconds busy on the whole machine, CPU seconds of this process); None off Linux."""
    try:
        fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    machine_busy = (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
    own = os.times()
    return time.monotonic(), machine_busy, own.user + own.system


def other_processes_share(start: tuple | None, end: tuple | None) -> float | None:
    """Fraction of all cores' time used by other processes between two `cpu_seconds()` readings.

    Other processes share the cores and slow every case, the OpenMP-threaded PyTorch ones most: timings are only
    clean near 0.
    """
    if start is None or end is None:
        return None
    wall, machine_busy, own = (after - before for after, before in zip(end, start, strict=True))
    return round(max(0.0, machine_busy - own) / (wall * (os.cpu_count() or 1)), 3)


def write_results(folder: Path, name: str, report: dict, title: str, table: str) -> None:
    """`<name>.json` (the full report) and `<name>.md` (title and table) in `folder`, written atomically."""
    write_bytes_atomically((json.dumps(report, indent=2) + "\n").encode(), folder / f"{name}.json")
    write_bytes_atomically(f"# {title}\n\n{table}\n".encode(), folder / f"{name}.md")
    print(f"wrote {folder / name}.json and .md")
