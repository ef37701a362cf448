"""Playing a MIDI mapping: messages in, param updates out, param values back to the LEDs.

`MidiMapper` keeps what a controller needs between messages (where each fader was, whether
it has picked up its param, the MSB of a 14-bit pair, glides) and nothing else: the port
layer feeds it from one thread, and time comes in through `advance(dt)`.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

import mido

from perform.core.params import ParamSpec
from perform.midi.mapping import (
    BUTTON_MODES,
    PICKUP,
    Binding,
    Current,
    Mapping,
    SpecOf,
    Value,
    same_value,
)


@dataclass
class _Control:
    """What the mapper remembers of one physical control between messages."""

    position: float | None = None  # where it was last, to see a fader pass the param
    picked: bool = False  # soft takeover: it has caught up with its param
    msb: dict[int, int] = field(default_factory=dict)  # cc14: the last MSB, per channel


@dataclass
class _Glide:
    binding: Binding
    value: float
    target: float
    settle: float  # close enough to stop, in param units


_MESSAGE_KEYS = {"control_change": ("cc", "control"), "note_on": ("note", "note"),
                 "note_off": ("note", "note"), "polytouch": ("aftertouch", "note"),
                 "pitchwheel": ("pitchbend", None), "aftertouch": ("aftertouch", None),
                 "program_change": ("program", None)}


PLAYABLE = frozenset(_MESSAGE_KEYS)  # the message types a mapping can bind


class MidiMapper:
    """Plays one mapping: MIDI messages in, param updates out, param values back to the LEDs.

    Call it from one thread. It does no I/O and reads no clock: time comes in through
    `advance(dt)`. It remembers only what a controller needs between messages: where each
    fader was and whether it has picked up its param, the MSB of each 14-bit pair, and the
    glides of smoothed bindings.
    """

    def __init__(self, mapping: Mapping, spec: SpecOf) -> None:
        self._spec = spec
        self._controls: dict[Binding, _Control] = {}
        self._sent: dict[str, tuple[Value, Binding]] = {}  # the last value we gave each param
        self._glides: dict[str, _Glide] = {}
        self.reload(mapping)

    def reload(self, mapping: Mapping) -> None:
        """Play a new version of the file; bindings that did not change keep their state."""
        self._controls = {b: self._controls.get(b) or _Control() for b in mapping.bindings}
        self._glides = {n: g for n, g in self._glides.items() if g.binding in self._controls}
        self._index: dict[tuple[str, int | None], list[Binding]] = defaultdict(list)
        self._by_param: dict[str, list[Binding]] = defaultdict(list)
        for binding in mapping.bindings:
            for key in binding.hears():
                self._index[key].append(binding)
            self._by_param[binding.param].append(binding)

    def handle(self, message: mido.Message, current: Current) -> list[tuple[str, Value]]:
        """The param updates one message asks for, as (name, value) typed for each param.

        `current(name)` is the param's current target, None when the patch has no such param:
        then its bindings wait, and apply once a reload declares it. Messages that no binding
        hears (clock, sysex, other channels) give [].
        """
        kind = _MESSAGE_KEYS.get(message.type)
        if kind is None:
            return []
        source, attribute = kind
        number = getattr(message, attribute) if attribute else None
        updates: list[tuple[str, Value]] = []
        for binding in self._index.get((source, number), ()):
            if not binding.listens(message.channel):
                continue
            spec, now = self._spec(binding.param), current(binding.param)
            if spec is None or now is None or spec.kind not in (float, int, bool):
                continue
            value = self._play(binding, message, spec, now)
            if value is None:
                continue
            if binding.smooth and spec.kind is float:
                self._glide(binding, float(value), float(now), spec)  # type: ignore[arg-type]
                continue
            self._glides.pop(binding.param, None)
            self._sent[binding.param] = (value, binding)
            updates.append((binding.param, value))
        return updates

    def advance(self, dt: float) -> list[tuple[str, Value]]:
        """Move each smoothed param `dt` seconds further toward its control; call once a frame."""
        updates: list[tuple[str, Value]] = []
        for name, glide in list(self._glides.items()):
            share = -math.expm1(-max(dt, 0.0) / glide.binding.smooth)  # 1 - e^(-dt/tau)
            glide.value += (glide.target - glide.value) * share
            if abs(glide.target - glide.value) <= glide.settle:
                glide.value = glide.target
                del self._glides[name]
            self._sent[name] = (glide.value, glide.binding)
            updates.append((name, glide.value))
        return updates

    def unbound(self, declared: Iterable[str]) -> list[str]:
        """Params this mapping drives that the patch does not declare (kept, not dropped)."""
        have = set(declared)
        return [name for name in self._by_param if name not in have]

    def feedback(self, name: str, value: object) -> list[mido.Message]:
        """The messages that show this param value on the controller, for every binding."""
        spec = self._spec(name)
        if spec is None or spec.is_trigger or spec.kind not in (float, int, bool):
            return []  # a trigger's value counts fires: no state for an LED to show
        return [message for binding in self._by_param.get(name, ())
                for message in binding.feedback(value, spec)]

    def _play(self, binding: Binding, message: mido.Message, spec: ParamSpec,
              now: object) -> Value | None:
        if binding.mode in BUTTON_MODES:
            pressed = (message.value >= 64 if message.type == "control_change"
                       else message.type == "note_on" and message.velocity > 0)
            return self._press(binding, pressed, spec, now)
        if binding.relative != "none":
            return self._turn(binding, _ticks(binding.relative, message.value), spec, now)
        position = self._position(binding, message)
        if position is None:
            return None
        value = binding.value_at(position, spec)
        if binding.takeover == "pickup" and not self._picked(binding, position, value, spec,
                                                             now):
            return None
        return value

    def _press(self, binding: Binding, pressed: bool, spec: ParamSpec,
               now: object) -> Value | None:
        on, off = binding.on_off(spec)
        if binding.mode == "momentary":
            return on if pressed else off
        if not pressed:
            return None  # a release means nothing to a toggle or a trigger
        if binding.mode == "trigger":
            return binding.press_value(spec)
        return off if binding.is_on(self._base(binding.param, now), spec) else on

    def _turn(self, binding: Binding, ticks: int, spec: ParamSpec, now: object) -> Value | None:
        if not ticks:
            return None
        step = binding.step
        if spec.kind is bool:
            step = 1.0
        elif spec.kind is int:  # at least one whole unit per tick, or rounding swallows it
            low, high = binding.span(spec)
            step = max(step, 1.0 / max(high - low, 1.0))
        base = binding.position_of(self._base(binding.param, now), spec)
        return binding.value_at(base + ticks * step, spec)

    def _position(self, binding: Binding, message: mido.Message) -> float | None:
        """Where on its travel the control is, 0..1; None when the message sets nothing."""
        kind = message.type
        if kind == "control_change" and binding.source == "cc14":
            msb = self._controls[binding].msb
            if message.control == binding.number:  # a new MSB resets the LSB, as MIDI says
                msb[message.channel] = message.value
                return (message.value << 7) / 16383
            if message.channel not in msb:
                return None  # an LSB means nothing before its MSB
            return (msb[message.channel] << 7 | message.value) / 16383
        if kind == "note_on":
            return message.velocity / 127 if message.velocity else None
        if kind == "pitchwheel":
            return (message.pitch + 8192) / 16383
        if kind == "program_change":
            return message.program / 127
        if kind == "note_off":
            return None  # a velocity binding keeps its value when the key is let go
        return message.value / 127  # control_change, aftertouch, polytouch

    def _picked(self, binding: Binding, position: float, value: Value, spec: ParamSpec,
                now: object) -> bool:
        """Soft takeover: a control moves its param only once it has reached or passed it."""
        control = self._controls[binding]
        before, control.position = control.position, position
        sent = self._sent.get(binding.param)
        if control.picked and sent is not None and sent[1] == binding and same_value(sent[0], now):
            return True  # still ours: nothing else moved the param since we last set it
        target = binding.position_of(now, spec)
        control.picked = (same_value(value, now) or abs(position - target) <= PICKUP
                          or (before is not None and (before - target) * (position - target) <= 0))
        return control.picked

    def _base(self, name: str, now: object) -> object:
        """What relative moves and toggles start from: a glide's goal, else the value now."""
        glide = self._glides.get(name)
        return glide.target if glide else now

    def _glide(self, binding: Binding, value: float, now: float, spec: ParamSpec) -> None:
        glide = self._glides.get(binding.param)
        if glide is None:
            low, high = binding.span(spec)
            glide = self._glides[binding.param] = _Glide(binding, now, value,
                                                         1e-6 * (high - low))
        glide.binding, glide.target = binding, value
        self._sent[binding.param] = (glide.value, binding)


def _ticks(relative: str, value: int) -> int:
    """Encoder ticks from one relative CC: + clockwise, - counter-clockwise."""
    if relative == "twos":
        return value - 128 if value >= 64 else value
    if relative == "offset":
        return value - 64
    return -(value - 64) if value >= 64 else value  # sign: bit 6 is the sign
