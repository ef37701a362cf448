"""Frame timing, kept cheaply per frame and summarised on demand (p50, p99, fps, drops)."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence

import numpy as np


class FrameStats:
    """Rolling window of the last frames' timings; written by the render thread."""

    def __init__(self, window: int = 600) -> None:
        self._lock = threading.Lock()
        self._work: deque[float] = deque(maxlen=window)  # whole frame, seconds
        self._patch: deque[float] = deque(maxlen=window)  # inside frame(ctx)
        self._published: deque[float] = deque(maxlen=window)  # publish times
        self.frames = 0
        self.dropped = 0  # frame slots skipped because a frame took too long
        self.held = 0  # frames that repeated the last image because the patch failed

    def record(self, work: float, patch: float, published_at: float) -> None:
        with self._lock:
            self.frames += 1
            self._work.append(work)
            self._patch.append(patch)
            self._published.append(published_at)

    def add_dropped(self, count: int) -> None:
        with self._lock:
            self.dropped += count

    def add_held(self) -> None:
        with self._lock:
            self.held += 1

    def summary(self) -> dict[str, float | int | None]:
        with self._lock:
            work = np.array(self._work)
            overhead = work - np.array(self._patch)
            published = np.array(self._published)
            frames, dropped, held = self.frames, self.dropped, self.held
        fps = None
        if len(published) > 1 and published[-1] > published[0]:
            fps = (len(published) - 1) / (published[-1] - published[0])

        return {"frames": frames, "fps": round(fps, 2) if fps else None,
                "frame_ms_p50": percentile_ms(work, 50), "frame_ms_p99": percentile_ms(work, 99),
                "overhead_ms_p50": percentile_ms(overhead, 50),
                "overhead_ms_p99": percentile_ms(overhead, 99),
                "dropped": dropped, "held": held}


def percentile_ms(seconds: Sequence[float] | np.ndarray, q: float) -> float | None:
    """The q-th percentile of durations in seconds, in milliseconds to the microsecond."""
    return round(float(np.percentile(seconds, q)) * 1000, 3) if len(seconds) else None
