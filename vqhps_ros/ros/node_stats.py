"""The node's running numbers behind /diagnostics: rates, latency per stage, drops and skips, with bounded memory.

Latencies are kept for the last WINDOW frames only (percentiles of a sliding window), counters since activation.
`diagnostic_values()` gives the (key, value) strings of a `diagnostic_msgs/DiagnosticStatus`; `level()` says when
the node should report a warning. Time is the caller's (monotonic seconds), so tests can drive it.
"""

from __future__ import annotations

import threading
from collections import Counter, deque

import numpy as np

WINDOW = 100  # frames whose latencies the percentiles cover
STALE_AFTER_S = 5.0  # no processed frame for this long while images arrive: a warning


class NodeStats:
    def __init__(self, now_s: float) -> None:
        self._lock = threading.Lock()
        self.started_s = now_s
        self.images_received = 0
        self.frames_processed = 0
        self.humans_last_frame = 0
        self.skipped: Counter[str] = Counter()
        self.errors = 0
        self._latencies: dict[str, deque[float]] = {}
        self._processed_times: deque[float] = deque(maxlen=WINDOW)
        self._last_image_s: float | None = None

    def image_received(self, now_s: float) -> None:
        with self._lock:
            self.images_received += 1
            self._last_image_s = now_s

    def frame_processed(self, now_s: float, timings_ms: dict[str, float], humans: int,
                        skipped: dict[str, int]) -> None:
        with self._lock:
            self.frames_processed += 1
            self.humans_last_frame = humans
            self.skipped.update(skipped)
            self._processed_times.append(now_s)
            for stage, milliseconds in timings_ms.items():
                self._latencies.setdefault(stage, deque(maxlen=WINDOW)).append(milliseconds)

    def frame_failed(self, reason: str) -> None:
        with self._lock:
            self.errors += 1
            self.skipped[reason] += 1

    def processing_rate_hz(self) -> float:
        times = self._processed_times
        if len(times) < 2 or times[-1] <= times[0]:
            return 0.0
        return (len(times) - 1) / (times[-1] - times[0])

    def latency_ms(self, stage: str, percentile: float) -> float | None:
        values = self._latencies.get(stage)
        return float(np.percentile(list(values), percentile)) if values else None

    def level(self, now_s: float, dropped: int) -> tuple[int, str]:
        """(0 OK | 1 WARN, message) of the estimator's diagnostic status."""
        with self._lock:
            if self._last_image_s is None:
                return 1, "no images received"
            last_processed = self._processed_times[-1] if self._processed_times else self.started_s
            if now_s - last_processed > STALE_AFTER_S and now_s - self._last_image_s < STALE_AFTER_S:
                return 1, f"images arrive but no frame was processed for {now_s - last_processed:.1f} s"
            if self.errors:
                return 1, f"{self.errors} frames failed (see skipped_*)"
        return 0, f"{self.processing_rate_hz():.1f} frames/s, {dropped} dropped while busy"

    def diagnostic_values(self, dropped: int, engine: dict[str, str]) -> list[tuple[str, str]]:
        with self._lock:
            values = [
                ("images_received", str(self.images_received)),
                ("frames_processed", str(self.frames_processed)),
                ("frames_dropped_busy", str(dropped)),
                ("processing_rate_hz", f"{self.processing_rate_hz():.2f}"),
                ("persons_last_frame", str(self.humans_last_frame)),
                *engine.items(),
            ]
            for stage in sorted(self._latencies):
                for percentile in (50, 95):
                    values.append((f"latency_{stage}_p{percentile}_ms", f"{self.latency_ms(stage, percentile):.2f}"))
            values.extend((f"skipped_{reason}", str(count)) for reason, count in sorted(self.skipped.items()))
        return values
