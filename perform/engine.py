"""The render loop: one thread that turns (patch, params, time) into frames at a steady pace.

Each frame takes one frozen snapshot of the params, swaps in a newly loaded patch if one is
waiting, calls the patch's `frame(ctx)` and publishes the image to every output's mailbox.
It never waits on I/O. When a patch raises, the previous good version draws the same frame
instead, or, if there is none, the last image is held: the output never stops.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from perform.audio.features import REST, AudioFeatures
from perform.core import scope
from perform.core.crossfade import SeedFades
from perform.core.fit import Size
from perform.core.frames import Frame, Mailbox
from perform.core.loader import Patch, PatchError
from perform.core.params import ParamStore
from perform.core.readback import Readback
from perform.core.stats import FrameStats
from perform.core.triggers import TriggerWatch
from perform.models.host import ModelHost
from perform.patch import Ctx
from perform.tempo import FixedTempo, Tempo

log = logging.getLogger("perform.engine")


class Engine:
    """Owns the running patch and renders frames; `run` paces it, `render_one` is one frame."""

    def __init__(self, store: ParamStore, models: ModelHost, *, width: int, height: int,
                 fps: float, tempo: Tempo | None = None, outputs: Sequence[Mailbox] = (),
                 stats: FrameStats | None = None,
                 on_error: Callable[[PatchError], None] = lambda error: None,
                 on_swap: Callable[[Patch], None] = lambda patch: None,
                 before_snapshot: Callable[[float, float], SeedFades] = lambda t, beat: {},
                 state: dict[str, Any] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.store, self.models = store, models
        self.width, self.height, self.fps = width, height, fps
        self.tempo: Tempo = tempo or FixedTempo()  # swappable while running (MIDI clock, Link)
        # the music at show time t, if the show listens (see perform.audio.listen)
        self.audio: Callable[[float], AudioFeatures] | None = None
        self._last_audio = REST
        self.last_tempo = self.tempo.reading(0.0)
        self.outputs = list(outputs)
        self.stats = stats or FrameStats()
        self.readback = Readback()
        self.sizes: set[Size] = set()  # outputs' other sizes, scaled on the GPU for GPU frames
        # ctx.state: survives every save of the patch (scenes save it and fade it too)
        self.state: dict[str, Any] = {} if state is None else state
        self._on_error, self._on_swap, self._clock = on_error, on_swap, clock
        # (t, beat): moves params (a crossfade) and says which seed knobs it is fading
        self._before_snapshot = before_snapshot
        self._triggers = TriggerWatch()
        self._pending: Patch | None = None
        self._pending_lock = threading.Lock()
        self.active: Patch | None = None
        self.fallback: Patch | None = None
        self._active_ok = False
        self.error: PatchError | None = None  # the latest failure, until a good frame
        self._last_image = np.zeros((height, width, 3), np.uint8)
        self._last_image.flags.writeable = False
        self.epoch = clock()  # show time 0 on `clock`; `run` sets it again as it starts
        self._seq = 0
        self.last_frame: Frame | None = None
        self._last_t: float | None = None
        self._last_beat: float | None = None

    def show_time(self) -> float:
        """Seconds since the show started, as `ctx.t` counts them; for other threads."""
        return self._clock() - self.epoch

    def offer(self, patch: Patch) -> None:
        """Queue a freshly loaded patch; it replaces the running one before the next frame."""
        with self._pending_lock:
            self._pending = patch

    def report(self, error: PatchError) -> None:
        """Record a failure; tell the performer once per distinct message.

        The error stays on show until a later version of the patch draws a good frame.
        """
        if self.error != error:
            self._on_error(error)
        self.error = error

    def render_one(self, t: float) -> Frame:
        started = self._clock()
        dt = 0.0 if self._last_t is None else max(t - self._last_t, 0.0)
        self._last_t = t
        self._swap_pending()
        tempo = self.last_tempo = self.tempo.reading(t)
        seed_fades = self._before_snapshot(t, tempo.beat)
        values, version = self.store.snapshot(dt)
        fires = self._triggers.frame(values, self.store.triggers(), t)
        prev_beat = tempo.beat - 1e-9 if self._last_beat is None else self._last_beat
        self._last_beat = tempo.beat
        audio = self.audio(t) if self.audio is not None else REST
        prev_audio, self._last_audio = self._last_audio, audio
        ctx = Ctx(t=t, frame=self._seq, dt=dt, fps=self.fps, width=self.width,
                  height=self.height, bpm=tempo.bpm, params=values, state=self.state,
                  beat=tempo.beat, prev_beat=prev_beat, audio=audio, prev_audio=prev_audio)
        frame_scope = {scope.frame_values: values, scope.host: self.models,
                       scope.store: self.store, scope.fires: fires, scope.seed_fades: seed_fades}
        tokens = [(var, var.set(value)) for var, value in frame_scope.items()]
        try:
            image, scaled, patch_time, patch_version = self._draw(ctx)
        finally:
            for var, token in tokens:
                var.reset(token)
        published = self._clock()
        frame = Frame(self._seq, t, image, values, version, patch_version, published, tempo.beat,
                      scaled, audio if self.audio is not None else None)
        self.stats.record(published - started, patch_time, published)  # before outputs see it
        self.last_frame = frame  # for stills
        for mailbox in self.outputs:
            mailbox.put(frame)
        self._seq += 1
        return frame

    def run(self, stop: threading.Event) -> None:
        """Render at `fps` until `stop` is set; late frames skip their slots, never pile up.

        `fps` may change while it runs (OSC /perform/fps): the next slot uses the new pace.
        """
        start = self.epoch = self._clock()
        due = start
        while not stop.is_set():
            interval = 1.0 / self.fps
            wait = due - self._clock()
            if wait > 0 and stop.wait(wait):
                break
            try:
                self.render_one(self._clock() - start)
            except Exception:  # a bug of ours must not end the show either
                log.exception("frame %d failed outside the patch", self._seq)
            due += interval
            behind = self._clock() - due
            if behind > interval:
                skipped = int(behind / interval)
                due += skipped * interval
                self.stats.add_dropped(skipped)

    def _swap_pending(self) -> None:
        with self._pending_lock:
            patch, self._pending = self._pending, None
        if patch is not None:
            if self.active is not None and self._active_ok:
                self.fallback = self.active
            self.active, self._active_ok = patch, True
            self.store.declare(patch.params)
            self._on_swap(patch)

    def _draw(self, ctx: Ctx) -> tuple[np.ndarray, dict[Size, np.ndarray], float, int]:
        """Run the active patch, then its fallback; hold the last image if both fail."""
        while self.active is not None:
            patch = self.active
            began = self._clock()
            folder = scope.folder.set(patch.path.parent)
            try:
                result = patch.frame(ctx)
                image = self.readback.rgb8(result, self.width, self.height)
                scaled = self.readback.scaled(result, self.sizes)
            except Exception as exc:
                self._active_ok = False
                self.report(PatchError.from_exception(exc, patch.path, "frame", patch.version))
                if self.fallback is None:
                    break
                log.warning("falling back to version %d of %s", self.fallback.version,
                            patch.path.name)
                self.active, self.fallback, self._active_ok = self.fallback, None, True
                self.store.declare(self.active.params)
                continue
            finally:
                scope.folder.reset(folder)
            self._active_ok = True
            if self.error is not None and patch.version > self.error.version:
                self.error = None
            self._last_image = image
            return image, scaled, self._clock() - began, patch.version
        self.stats.add_held()
        return self._last_image, {}, 0.0, -1 if self.active is None else self.active.version
