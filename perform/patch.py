"""The names a patch uses besides `models` and `walks`: `param` and the frame context.

    speed = param("walk/speed", 0.08, 0.0, 1.0)   # settable as OSC /walk/speed

    def frame(ctx):
        z = walks.noise_loop(ctx.t * speed, dim=model.z_dim)
        return model(z)

A `Param` stands for the param's value in the frame being rendered: use it in arithmetic,
`float(speed)` or `speed.value`. Values are frozen for the whole frame.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from perform.audio.features import REST, AudioFeatures
from perform.core import scope
from perform.core.params import ParamSpec, Value
from perform.core.triggers import NEVER, Fire

__all__ = ["Ctx", "Param", "Trigger", "param", "seed", "trigger"]


def param(name: str, default: Value | list[float], min: float | None = None,
          max: float | None = None, *, smooth: float = 0.0, doc: str = "") -> Param:
    """Declare a performable value: OSC address `/` + name, range [min, max].

    A tuple default makes a vector (`param("pad", (0.5, 0.5), 0, 1)` for an XY pad): OSC
    sends it as that many numbers. `smooth` (seconds) makes the value glide to each new
    setting instead of jumping. `doc` is shown to OSCQuery clients and on the preview page.
    """
    return Param(_declare(ParamSpec(name, tuple(default) if isinstance(default, list)
                                    else default, min, max, smooth, doc)))


def trigger(name: str, *, doc: str = "") -> Trigger:
    """Declare a button: OSC `/name` (without arguments, or with 1) fires it, as do its
    button on the control page and a mapped MIDI note; 0 (a release) does nothing.

        flash = trigger("fx/flash")
        ...
        if flash:                   # in frame(ctx): true on the one frame after each fire
        glow = flash.fade(0.25)     # 1 at a fire, 0 a quarter second later (flash.ago: seconds)
    """
    return Trigger(_declare(ParamSpec(name, 0, doc=doc, control="trigger")))


def seed(name: str, default: float = 0, max: float = 9999, *, smooth: float = 0.0,
         doc: str = "") -> Param:
    """Declare a seed knob, from 0 to `max`: `walks.seed(knob, dim)` is that seed's latent,
    fractions morph between neighbours, and a scene crossfade from one seed to another
    slerps between their two latents instead of passing through the seeds between."""
    return Param(_declare(ParamSpec(name, float(default), 0, max, smooth, doc, "seed")))


def _declare(spec: ParamSpec) -> ParamSpec:
    declaring = scope.loading.get()
    if declaring is not None:
        if any(p.name == spec.name for p in declaring.params):
            raise ValueError(f"param {spec.name!r} is declared twice")
        declaring.params.append(spec)
    return spec


def _binary(op: Callable[[Any, Any], Any]) -> tuple[Callable[..., Any], Callable[..., Any]]:
    def forward(self: Param, other: Any) -> Any:
        return op(self.value, _plain(other))

    def reverse(self: Param, other: Any) -> Any:
        return op(_plain(other), self.value)

    return forward, reverse


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, Param) else value


class Param:
    """A declared param; behaves like its current value inside `frame(ctx)`."""

    __slots__ = ("spec",)
    __array_ufunc__ = None  # numpy defers to our reflected operators instead of making objects

    def __init__(self, spec: ParamSpec) -> None:
        self.spec = spec

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def value(self) -> Any:
        """The value in this frame; a vector comes as a read-only float32 numpy array."""
        values = scope.frame_values.get()
        value = self.spec.default if values is None else values.get(self.spec.name,
                                                                     self.spec.default)
        if isinstance(value, tuple):
            array = np.asarray(value, dtype=np.float32)
            array.flags.writeable = False
            return array
        return value

    @property
    def fading(self) -> tuple[float, float, float] | None:
        """(from, to, eased 0..1) while a scene crossfade moves this seed knob, else None:
        `walks.seed` slerps between the two seeds' latents then."""
        fades = scope.seed_fades.get()
        return None if fades is None else fades.get(self.spec.name)

    def set(self, value: Any) -> None:
        """Move the param from inside `frame(ctx)`, as a controller would (it shows in feedback).

        Takes effect from the next frame; raises ParamError for a value it cannot take.
        """
        store = scope.store.get()
        if store is None:
            raise RuntimeError(f"param {self.spec.name!r} can only be set while the show runs")
        store.set(self.spec.name, value)

    def __len__(self) -> int:
        return len(self.value)

    def __getitem__(self, index: Any) -> Any:
        return self.value[index]

    def __iter__(self) -> Any:
        return iter(self.value)

    def __float__(self) -> float:
        return float(self.value)

    def __int__(self) -> int:
        return int(self.value)

    def __bool__(self) -> bool:
        return bool(self.value)

    def __index__(self) -> int:
        return operator.index(self.value)

    def __str__(self) -> str:
        return str(self.value)

    def __repr__(self) -> str:
        return f"param({self.spec.name!r} = {self.value!r})"

    def __neg__(self) -> Any:
        return -self.value

    def __abs__(self) -> Any:
        return abs(self.value)

    def __round__(self, digits: int | None = None) -> Any:
        return round(self.value, digits)

    def __eq__(self, other: object) -> bool:
        return self.value == _plain(other)

    def __hash__(self) -> int:
        return hash(self.spec.name)

    __add__, __radd__ = _binary(operator.add)
    __sub__, __rsub__ = _binary(operator.sub)
    __mul__, __rmul__ = _binary(operator.mul)
    __truediv__, __rtruediv__ = _binary(operator.truediv)
    __floordiv__, __rfloordiv__ = _binary(operator.floordiv)
    __mod__, __rmod__ = _binary(operator.mod)
    __pow__, __rpow__ = _binary(operator.pow)
    __lt__, __gt__ = _binary(operator.lt)
    __le__, __ge__ = _binary(operator.le)


class Trigger(Param):
    """A declared trigger: true in the one frame after each fire; `ago` since the last one."""

    __slots__ = ()

    @property
    def fire(self) -> Fire:
        fires = scope.fires.get()
        return NEVER if fires is None else fires.get(self.spec.name, NEVER)

    @property
    def count(self) -> int:
        """Fires since the patch first declared it (it keeps counting across saves)."""
        return int(super().value)

    @property
    def value(self) -> bool:
        return self.fire.new > 0

    @property
    def ago(self) -> float:
        """Show seconds since the last fire; inf before the first."""
        return self.fire.ago

    def fade(self, seconds: float) -> float:
        """1 on the frame after a fire, falling in a straight line to 0 over `seconds` (and 0
        before the first fire): `image + (1 - image) * flash.fade(0.25)` flashes white."""
        if seconds <= 0:
            return 1.0 if self.value else 0.0
        return max(0.0, 1.0 - self.ago / seconds)

    def set(self, value: Any = None) -> None:
        """Fire it from inside `frame(ctx)` (`flash.set()`), as a controller would."""
        super().set(value)

    def __repr__(self) -> str:
        return f"trigger({self.spec.name!r}, fired={self.value}, ago={self.ago:.3g})"


@dataclass(frozen=True)
class Ctx:
    """What `frame(ctx)` knows about the moment it renders.

    `t` is seconds since the show started (a fixed clock when rendering offline), `beat`
    counts beats from the tempo source (`--bpm`, or a followed MIDI clock), `audio` is
    the music (`--audio-in`, `--audio-file`; at rest without), `state` is a dict the
    server keeps across saves of the patch.
    """

    t: float
    frame: int
    dt: float
    fps: float
    width: int
    height: int
    bpm: float
    params: Mapping[str, Value]
    state: dict[str, Any] = field(default_factory=dict)
    beat: float = 0.0
    prev_beat: float = -1e-9  # the previous frame's beat: what `on` compares with
    audio: AudioFeatures = REST  # the music now: ctx.audio.level, .low, .onset, .chroma ...
    prev_audio: AudioFeatures = REST  # the previous frame's: what `hit` compares with

    @property
    def bar(self) -> float:
        """Bars of four beats since the start."""
        return self.beat / 4.0

    def on(self, beats: float = 1.0) -> bool:
        """True on the first frame of each step of `beats` beats: `ctx.on(4)` once a bar."""
        return math.floor(self.beat / beats) != math.floor(self.prev_beat / beats)

    def hit(self, band: str | None = None) -> bool:
        """True on the first frame after an onset in the audio (in `band`: "low", "mid",
        "high" by default), once per onset however many frames it lasts."""
        if band is None:
            return self.audio.onsets > self.prev_audio.onsets
        counts, before = self.audio.band_onset_counts, self.prev_audio.band_onset_counts
        return counts.get(band, 0) > before.get(band, 0)

    def quantize(self, value: Any, beats: float = 4.0, name: str = "quantize") -> Any:
        """`value` as it was at the last step of `beats` beats: a knob that switches on the bar.

        `keyframe = ctx.quantize(int(scene), 4)` moves to a new scene only on the next bar.
        Use one `name` per quantized value.
        """
        key = "quantize:" + name
        if key not in self.state or self.on(beats):
            self.state[key] = value
        return self.state[key]

    def phase(self, speed: float, name: str = "phase") -> float:
        """A position that moves `speed` units a second; turning `speed` never makes it jump.

        `ctx.t * speed` leaps when the speed knob moves; this adds `speed * dt` each frame
        instead, kept in `ctx.state[name]` (use one name per walk).
        """
        self.state[name] = self.state.get(name, 0.0) + self.dt * float(speed)
        return self.state[name]

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height
