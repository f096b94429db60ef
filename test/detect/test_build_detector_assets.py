"""tools/build_detector_assets.py without the network: extraction and checks on a wheel made here, writing, and the
agreement of its hashes with the package's."""

import importlib.util
import sys
import zipfile
from pathlib import Path

import pytest

from vqhps_ros.detect import POSE_DETECTOR_FILE, POSE_LANDMARK_FILE
from vqhps_ros.detect.networks import ASSETS_DIR

TOOL = Path(__file__).resolve().parents[2] / "tools" / "build_detector_assets.py"


@pytest.fixture(scope="module")
def tool():
    spec = importlib.util.spec_from_file_location("build_detector_assets", TOOL)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def make_wheel(path: Path, tool, replace: dict[str, bytes] | None = None, leave_out: str = "") -> Path:
    """A zip laid out like the mediapipe wheel, holding the shipped files (or replacements) at the wheel's paths."""
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr("mediapipe/__init__.py", "")
        for asset in tool.ASSETS:
            if asset.filename != leave_out:
                data = (replace or {}).get(asset.filename, (ASSETS_DIR / asset.filename).read_bytes())
                wheel.writestr(asset.wheel_path, data)
    return path


def test_the_tool_and_the_package_expect_the_same_files(tool):
    by_name = {asset.filename: asset for asset in tool.ASSETS}
    for network in (POSE_DETECTOR_FILE, POSE_LANDMARK_FILE):
        asset = by_name[network.filename]
        assert (asset.wheel_path, asset.size, asset.sha256) == (network.wheel_path, network.size, network.sha256)
    tool.check_folder(ASSETS_DIR)  # the shipped files are the wheel's


def test_assets_are_rewritten_bit_for_bit(tool, tmp_path):
    wheel = make_wheel(tmp_path / "mediapipe-0.10.21-py3-none-any.whl", tool)
    assert tool.main(["--wheel", str(wheel), "--output", str(tmp_path / "assets")]) == 0
    for asset in tool.ASSETS:
        assert (tmp_path / "assets" / asset.filename).read_bytes() == (ASSETS_DIR / asset.filename).read_bytes()
    assert tool.main(["--check", "--output", str(tmp_path / "assets")]) == 0


def test_a_different_or_missing_file_writes_nothing(tool, tmp_path, capsys):
    output = tmp_path / "assets"
    changed = make_wheel(tmp_path / "changed.whl", tool, replace={"pose_detection.tflite": b"TFL3 but not it"})
    assert tool.main(["--wheel", str(changed), "--output", str(output)]) == 1
    assert "expected 2959046 bytes" in capsys.readouterr().err and not output.exists()
    missing = make_wheel(tmp_path / "missing.whl", tool, leave_out="pose_landmark_full.tflite")
    with pytest.raises(tool.AssetError, match="has no mediapipe/modules/pose_landmark/pose_landmark_full.tflite"):
        tool.extract_assets(missing)
    (tmp_path / "broken.whl").write_bytes(b"not a zip")
    with pytest.raises(tool.AssetError, match="not a readable wheel"):
        tool.extract_assets(tmp_path / "broken.whl")
    assert tool.main(["--check", "--output", str(tmp_path / "nowhere")]) == 1
