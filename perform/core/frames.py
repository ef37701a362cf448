"""Frames and the latest-wins mailboxes that carry them from the render thread to outputs.

The render thread never waits for an output: `Mailbox.put` replaces whatever frame the
output has not taken yet, so a slow output drops its own frames and nobody else's.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from perform.audio.features import AudioFeatures
from perform.core.params import Value


@dataclass(frozen=True)
class Frame:
    """One rendered image (read-only (height, width, 3) uint8 RGB) and what produced it."""

    seq: int  # counts rendered frames from 0
    t: float  # the patch clock it was rendered at
    image: np.ndarray
    params: Mapping[str, Value]  # the frozen param values it was drawn with
    params_version: int  # ParamStore.version of those values
    patch_version: int  # which load of the patch drew it
    rendered_at: float  # time.monotonic() when it was published
    beat: float = 0.0  # where the music was (ctx.beat)
    # the image at the outputs' other sizes, when the GPU scaled it (see outputs.fit)
    scaled: Mapping[tuple[int, int, str], np.ndarray] = field(default_factory=dict)
    audio: AudioFeatures | None = None  # what the music was, if the show listens

    @property
    def width(self) -> int:
        return self.image.shape[1]

    @property
    def height(self) -> int:
        return self.image.shape[0]


class Mailbox:
    """Holds the newest frame for one output; safe to use from threads and from asyncio."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._frame: Frame | None = None
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []
        self.delivered = 0
        self.replaced = 0  # frames replaced before anyone took them: the output's drops

    def put(self, frame: Frame) -> None:
        with self._lock:
            self.replaced += self._frame is not None
            self._frame = frame
            waiters, self._waiters = self._waiters, []
            self._arrived.notify_all()
        for loop, event in waiters:
            if not loop.is_closed():
                loop.call_soon_threadsafe(event.set)

    def take_nowait(self) -> Frame | None:
        with self._lock:
            return self._take_locked() if self._frame is not None else None

    def take(self, timeout: float) -> Frame | None:
        """Wait in a thread for the next frame, at most `timeout` seconds."""
        with self._lock:
            if self._frame is None:
                self._arrived.wait(timeout)
            return self._take_locked() if self._frame is not None else None

    async def next(self) -> Frame:
        """Wait on the event loop for the next frame and take it."""
        while True:
            event = asyncio.Event()
            with self._lock:
                if self._frame is not None:
                    return self._take_locked()
                self._waiters.append((asyncio.get_running_loop(), event))
            await event.wait()

    def _take_locked(self) -> Frame:
        frame, self._frame = self._frame, None
        assert frame is not None
        self.delivered += 1
        return frame
