"""Data shipped with the package: the sample bag (`sample_bag/`, see its README) that `vqhps-ros demo` replays."""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError

SAMPLE_BAG = Path(__file__).resolve().parent / "sample_bag"


def sample_bag_path() -> Path:
    """The shipped sample bag (a rosbag2 folder with `ground_truth.npz` beside its MCAP file), checked to exist."""
    if not (SAMPLE_BAG / "metadata.yaml").is_file():
        raise InputError(f"the sample bag is missing at {SAMPLE_BAG}: the package was installed without its "
                         "package data (reinstall with pip from the repository)")
    return SAMPLE_BAG
