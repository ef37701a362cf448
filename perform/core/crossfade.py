"""Crossfades between scenes, stepped by the render thread once per frame.

Each frame moves every numeric param the fade owns from where it was to the scene's value
along a smoothstep curve (ints rounded, vectors per component); bools and text switch at
the end. A seed knob's number moves too, for the page to show, while `walks.seed` slerps
between the two seeds' latents (`step` says which knobs are fading, and how far). The
patch's `ctx.state` moves the same way: numbers (walk positions) along the curve, arrays
(latents) along the sphere, row by row, the rest at the end.
A param moved by anyone else mid-fade (a fader, OSC, the patch) leaves the fade at once
and stays where they put it: `ParamStore.set_unless_moved` checks and writes in one go.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from perform import walks
from perform.core.params import ParamStore, Value

UNITS = ("s", "beats")
SeedFades = Mapping[str, tuple[float, float, float]]  # knob -> (from, to, eased 0..1)


def smoothstep(x: float) -> float:
    """0 at 0, 1 at 1, flat at both ends: a fade that neither lurches away nor lands hard."""
    x = min(max(x, 0.0), 1.0)
    return x * x * (3.0 - 2.0 * x)


def state_between(start: Any, end: Any, eased: float, done: bool) -> Any:
    """One `ctx.state` entry `eased` of the way; what cannot blend switches at the end."""
    if _number(start) and _number(end):
        return start + (end - start) * eased
    if (isinstance(start, np.ndarray) and isinstance(end, np.ndarray)
            and start.shape == end.shape and start.ndim >= 1 and start.size):
        rows = zip(start.reshape(-1, start.shape[-1]), end.reshape(-1, end.shape[-1]),
                   strict=True)
        return np.stack([walks.slerp(a, b, eased) for a, b in rows]).reshape(end.shape)
    return end if done else start


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def between(start: Value, end: Value, eased: float, done: bool) -> Value:
    """The value `eased` of the way from `start` to `end` (same type: one param's values)."""
    if isinstance(end, bool | str):
        return end if done else start
    if isinstance(end, tuple):
        return tuple(a + (b - a) * eased for a, b in zip(start, end, strict=True))  # type: ignore[arg-type]
    step = start + (end - start) * eased  # type: ignore[operator]
    return round(step) if isinstance(end, int) else step


@dataclass
class Crossfade:
    """One fade towards `to` (values already coerced by their params) over `length` units."""

    name: str
    to: Mapping[str, Value]
    length: float
    unit: str = "s"  # "s": show seconds; "beats": the show's tempo
    state: Mapping[str, Any] = field(default_factory=dict)  # ctx.state entries to move to
    progress: float = field(default=0.0, init=False)
    began: float | None = field(default=None, init=False)  # t or beat of its first frame
    origin: dict[str, Value] = field(default_factory=dict, init=False)  # targets at its start
    owned: dict[str, Value] = field(default_factory=dict, init=False)  # each: what it set last
    seeds: set[str] = field(default_factory=set, init=False)  # the seed knobs among them
    state_origin: dict[str, Any] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        if self.unit not in UNITS:
            raise ValueError(f"a crossfade counts {' or '.join(UNITS)}, not {self.unit!r}")


class Fader:
    """Runs at most one crossfade; a new one takes over from where the params are now.
    `state` is the engine's `ctx.state`, which the render thread alone touches."""

    def __init__(self, store: ParamStore, state: dict[str, Any]) -> None:
        self.store, self.state = store, state
        self._fade: Crossfade | None = None
        self._lock = threading.Lock()  # start/stop (event loop) against step (render thread)

    def start(self, fade: Crossfade) -> None:
        with self._lock:
            targets = self.store.targets()
            fade.origin = {name: targets[name] for name, value in fade.to.items()
                           if _same_kind(targets.get(name), value)}
            fade.owned = dict(fade.origin)
            fade.state_origin = {key: self.state.get(key) for key in fade.state}
            fade.seeds = {name for name in fade.origin
                          if (spec := self.store.spec(name)) and spec.control == "seed"}
            self._fade = fade

    def stop(self) -> None:
        with self._lock:
            self._fade = None

    def running(self) -> dict[str, object] | None:
        """{"name", "progress" 0..1} of the fade under way, or None."""
        with self._lock:
            fade = self._fade
            return None if fade is None else {"name": fade.name, "progress": fade.progress}

    def step(self, t: float, beat: float) -> SeedFades:
        """Move the owned params one frame on; called before the frame's snapshot."""
        with self._lock:
            fade = self._fade
            if fade is None:
                return {}
            now = t if fade.unit == "s" else beat
            if fade.began is None:
                fade.began = now
            elapsed = now - fade.began
            fade.progress = 1.0 if fade.length <= 0 else min(max(elapsed / fade.length, 0.0), 1.0)
            done = fade.progress >= 1.0
            eased = smoothstep(fade.progress)
            values = {name: between(fade.origin[name], fade.to[name], eased, done)
                      for name in fade.owned}
            moved = self.store.set_unless_moved(values, fade.owned)
            fade.owned = {name: value for name, value in values.items() if name not in moved}
            for key, end in fade.state.items():
                start = fade.state_origin[key]
                if start is not None or done:
                    self.state[key] = state_between(start, end, eased, done)
            if done or not (fade.owned or fade.state):
                self._fade = None
                return {}
            return {name: (fade.origin[name], fade.to[name], eased) for name in fade.owned
                    if name in fade.seeds}


def _same_kind(now: Value | None, end: Value) -> bool:
    """Whether a fade can run from `now` to `end` (a save may have retyped the param)."""
    if isinstance(now, tuple) and isinstance(end, tuple):
        return len(now) == len(end)
    return type(now) is type(end)
