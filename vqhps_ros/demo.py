"""`vqhps-ros demo`: the whole job on the shipped sample bag, with the bundled model, through the engine.

It is a replay (`replay.replay_bag`) into `OUTPUT/replay/` (an MCAP rosbag2 folder) with an overlay video
(`OUTPUT/overlay.mp4`), key frames (`OUTPUT/frames/`), the replay summary (`OUTPUT/summary.json`) and, when the bag
has a `ground_truth.npz` beside it (the sample bag does), the scores (`OUTPUT/scores.json`, `scores.md`,
`error_per_frame.png`). Running it again replaces what an earlier demo wrote in OUTPUT, and nothing else.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from .replay import ReplayOptions, replay_bag, write_summary
from .scoring import score_replay, write_score_outputs

GROUND_TRUTH_FILE = "ground_truth.npz"
KEY_FRAME_EVERY = 15


@dataclass(frozen=True)
class DemoPaths:
    output: Path

    @property
    def replay(self) -> Path:
        return self.output / "replay"

    @property
    def video(self) -> Path:
        return self.output / "overlay.mp4"

    @property
    def frames(self) -> Path:
        return self.output / "frames"

    @property
    def summary(self) -> Path:
        return self.output / "summary.json"

    def clear(self) -> None:
        """Remove what an earlier demo wrote here (only those names)."""
        for folder in (self.replay, self.frames):
            shutil.rmtree(folder, ignore_errors=True)
        for name in ("overlay.mp4", "summary.json", "scores.json", "scores.md", "error_per_frame.png"):
            (self.output / name).unlink(missing_ok=True)


def run_demo(bag: Path, output: Path, config, max_frames: int | None = None, progress: bool = True) -> dict:
    """Replay `bag` into `output` and score it when it has ground truth; returns the summary (with scores)."""
    paths = DemoPaths(Path(output))
    paths.clear()
    paths.output.mkdir(parents=True, exist_ok=True)
    options = ReplayOptions(video=paths.video, png_every=KEY_FRAME_EVERY, png_dir=paths.frames,
                            max_frames=max_frames, progress=progress)
    summary = replay_bag(bag, paths.replay, config, options)
    truth = Path(bag) / GROUND_TRUTH_FILE
    if truth.is_file():
        scores = score_replay(paths.replay, truth)
        summary["scores"] = write_score_outputs(scores, paths.output, str(paths.replay))
    write_summary(summary, paths.summary)
    return summary
