"""`write_dataset`: synthetic frames of free-body people written in the regressor's training format.

The folder holds `images/<frame>.jpg` and `annotations.npz` with one record per person (`vqhps_ros.train.hps_data`):
`image_paths`, `boxes`, canonical `vertices`, `global_orient`, `keypoints_2d`, `intrinsics`, `translation`, plus the
extra ground truth `frame_index`, `person_index` (the person's rank in its frame), `betas`, `body_pose`,
`joints_h36m_camera` (M, 17, 3) in `H36M_17_JOINT_NAMES` order, `keypoints_visible` (M, 17), `visible_fraction`
and, when a tokenizer is given, its `tokens` (M, T). People too hidden or too small to detect are left out
(`RecordFilter`), but they are still rendered, so they occlude the others. `dataset_info.json` records the settings.
The annotations are written last and atomically: a folder without them is an unfinished dataset.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from ..errors import InputError
from .scene import PersonTruth, SceneGenerator, SceneSettings

ANNOTATION_FILE = "annotations.npz"
INFO_FILE = "dataset_info.json"
IMAGE_FOLDER = "images"


@dataclass(frozen=True)
class RecordFilter:
    """A person becomes a training record when at least `min_visible_fraction` of its camera-facing vertices show
    and its box is at least `min_box_height_px` tall."""

    min_visible_fraction: float = 0.2
    min_box_height_px: float = 32.0

    def accepts(self, person: PersonTruth) -> bool:
        return person.visible_fraction >= self.min_visible_fraction and person.box[3] >= self.min_box_height_px


def write_dataset(folder: str | Path, num_frames: int, seed: int = 0, tokenizer=None,
                  settings: SceneSettings | None = None, record_filter: RecordFilter = RecordFilter(),
                  image_format: str = "jpg", jpeg_quality: int = 92, device: str | torch.device = "cpu",
                  progress: bool = True) -> dict:
    """Render `num_frames` random frames into `folder` (created; must not hold a dataset yet); returns the info.

    tokenizer: optional Mesh-VQ-VAE (`encode((B, V, 3) canonical meshes) -> (B, T)`) for the free body topology;
    its tokens are stored per record. settings: `SceneSettings` (default: 640x480, 1 to 3 people). The same seed
    gives the same dataset.
    """
    settings = settings or SceneSettings()
    folder = Path(folder)
    _check_arguments(folder, num_frames, image_format, jpeg_quality)
    generator = SceneGenerator(device=device)
    _check_tokenizer(tokenizer, generator.body.num_vertices)
    (folder / IMAGE_FOLDER).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    records: dict[str, list] = {}
    for frame_index in tqdm(range(num_frames), desc="synth", unit="frame", disable=not progress):
        frame = generator.random_frame(rng, settings)
        image_path = f"{IMAGE_FOLDER}/{frame_index:06d}.{image_format}"
        _write_image(folder / image_path, frame.image, jpeg_quality)
        people = [person for person in frame.people if record_filter.accepts(person)]
        tokens = _encode(tokenizer, people, device)
        for rank, person in enumerate(people):
            _append_record(records, person, frame_index, rank, image_path, frame.camera.intrinsics,
                           tokens[rank] if tokens is not None else None)
    info = {"num_frames": num_frames, "num_records": len(records.get("image_paths", [])), "seed": seed,
            "num_vertices": generator.body.num_vertices, "body": generator.body.info.get("source", ""),
            "settings": asdict(settings), "record_filter": asdict(record_filter),
            "tokens": tokenizer is not None}
    if not info["num_records"]:
        raise InputError(f"no person passed the record filter in {num_frames} frames; render more frames or "
                         f"relax {record_filter}")
    (folder / INFO_FILE).write_text(json.dumps(info, indent=2))
    _save_annotations(folder / ANNOTATION_FILE, records)
    return info


def _check_arguments(folder: Path, num_frames: int, image_format: str, jpeg_quality: int) -> None:
    if num_frames < 1:
        raise InputError(f"expected at least one frame, found num_frames={num_frames}")
    if image_format not in ("jpg", "png"):
        raise InputError(f"expected image_format 'jpg' or 'png', found {image_format!r}")
    if not 1 <= jpeg_quality <= 100:
        raise InputError(f"expected a JPEG quality in [1, 100], found {jpeg_quality}")
    if (folder / ANNOTATION_FILE).exists():
        raise InputError(f"{folder} already holds a dataset ({ANNOTATION_FILE}); choose another folder")


def _check_tokenizer(tokenizer, num_vertices: int) -> None:
    if tokenizer is None:
        return
    expected = getattr(tokenizer, "num_vertices", num_vertices)
    if not callable(getattr(tokenizer, "encode", None)) or expected != num_vertices:
        raise InputError(f"expected a Mesh-VQ-VAE for the free body ({num_vertices} vertices) as tokenizer, "
                         f"found {type(tokenizer).__name__} for {expected} vertices")


def _encode(tokenizer, people: list[PersonTruth], device) -> np.ndarray | None:
    if tokenizer is None or not people:
        return None
    meshes = torch.as_tensor(np.stack([person.canonical_vertices for person in people]), device=device)
    with torch.no_grad():
        return tokenizer.encode(meshes).cpu().numpy()


def _write_image(path: Path, image: np.ndarray, jpeg_quality: int) -> None:
    options = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality] if path.suffix == ".jpg" else []
    if not cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR), options):
        raise OSError(f"could not write the image {path}")


def _append_record(records: dict[str, list], person: PersonTruth, frame_index: int, rank: int, image_path: str,
                   intrinsics: np.ndarray, tokens: np.ndarray | None) -> None:
    values = {
        "image_paths": image_path, "boxes": person.box, "vertices": person.canonical_vertices,
        "global_orient": person.global_orient, "keypoints_2d": person.keypoints_2d, "intrinsics": intrinsics,
        "translation": person.translation, "frame_index": frame_index, "person_index": rank,
        "betas": person.betas, "body_pose": person.body_pose, "joints_h36m_camera": person.h36m_camera,
        "keypoints_visible": person.keypoints_visible, "visible_fraction": person.visible_fraction,
    }
    if tokens is not None:
        values["tokens"] = tokens
    for name, value in values.items():
        records.setdefault(name, []).append(value)


_DTYPES = {"image_paths": str, "vertices": np.float32, "frame_index": np.int64, "person_index": np.int64,
           "keypoints_visible": bool, "tokens": np.int64}


def _save_annotations(path: Path, records: dict[str, list]) -> None:
    arrays = {name: np.asarray(values, dtype=_DTYPES.get(name, np.float64)) for name, values in records.items()}
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".annotations.", suffix=".npz")
    try:
        with os.fdopen(handle, "wb") as file:
            np.savez(file, **arrays)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
