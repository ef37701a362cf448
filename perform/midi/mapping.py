"""MIDI controller mappings: TOML files binding controls to params, and the engine playing them.

A mapping file is a list of `[[bind]]` tables, one per control, so a performer reads it at a
glance and MIDI learn can append one. `Mapping.parse` checks everything up front and points at
the file and line of any mistake, like a broken patch, so the show keeps the last good mapping.
`MidiMapper` turns each incoming `mido.Message` into param updates and each param value back
into the messages that light the controller. Nothing here opens ports or starts threads: the
port layer feeds it, from one thread.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import mido

from perform.core.params import ParamError, ParamSpec
from perform.midi.curves import CURVES

Value = float | int | bool
Current = Callable[[str], object]  # a param's current target, None when the patch lacks it
SpecOf = Callable[[str], ParamSpec | None]

SOURCES = ("cc", "cc14", "note", "pitchbend", "aftertouch", "program")
BUTTON_MODES = ("momentary", "toggle", "trigger")
MODES = {"cc": ("value", *BUTTON_MODES), "note": (*BUTTON_MODES, "velocity")}  # others: value
RELATIVE = ("none", "twos", "offset", "sign")
TAKEOVER = ("pickup", "jump")
PICKUP = 1 / 127  # how close, in control travel, counts as reaching the param
BIND_KEYS = {*SOURCES, "param", "channel", "range", "curve", "invert", "smooth", "takeover",
             "relative", "step", "mode", "value", "led_on", "led_off"}
TOP_KEYS = {"name", "channel", "port", "bind"}
_BIND_HEADER = re.compile(r"^\s*\[\[\s*bind\s*\]\]\s*(#.*)?$")
_TOML_WHERE = re.compile(r"\s*\(at (?:line (\d+), column \d+|end of document)\)$")


class MappingError(ValueError):
    """A mapping file that cannot be used, pointing at the performer's own line."""

    def __init__(self, file: str, line: int | None, message: str) -> None:
        self.file, self.line, self.message = file, line, message
        super().__init__(f"{file}:{line}: {message}" if line else f"{file}: {message}")


@dataclass(frozen=True)
class Binding:
    """One control driving one param. Numbers are as they travel in MIDI (channel 0-15)."""

    param: str
    source: str  # one of SOURCES
    number: int | None = None  # cc or note number, a cc14's MSB controller, poly aftertouch's key
    lsb: int | None = None  # a cc14's LSB controller
    channel: int | None = 0  # None: every channel
    bounds: tuple[float, float] | None = None  # the file's `range`; None: the param's own
    curve: str = "linear"
    invert: bool = False
    smooth: float = 0.0  # seconds
    takeover: str = "jump"
    relative: str = "none"
    step: float = 1 / 127  # share of the travel per encoder tick
    mode: str = "value"
    value: float | None = None  # what a trigger sets; None: the top of the range
    led_on: int = 127
    led_off: int = 0
    line: int = field(default=0, compare=False)

    @property
    def label(self) -> str:
        """The control in words, channels as printed on hardware: 'cc 7 on channel 1'."""
        if self.source == "cc14":
            what = f"cc14 {self.number}/{self.lsb}"
        elif self.number is not None:
            what = f"{self.source} {self.number}"
        else:
            what = {"pitchbend": "pitch bend", "program": "program change"}.get(self.source,
                                                                                  self.source)
        where = "every channel" if self.channel is None else f"channel {self.channel + 1}"
        return f"{what} on {where}"

    def hears(self) -> tuple[tuple[str, int | None], ...]:
        """The (message kind, number) pairs this binding listens to."""
        if self.source == "cc14":
            return ("cc", self.number), ("cc", self.lsb)
        return ((self.source, self.number),)

    def listens(self, channel: int) -> bool:
        return self.channel is None or self.channel == channel

    def span(self, spec: ParamSpec) -> tuple[float, float]:
        """The values the travel covers: the file's range, else the param's min and max."""
        if self.bounds is not None:
            return self.bounds
        low, high = spec.min, spec.max
        if low is None:
            low = 0.0 if high is None or high > 0 else high - 1.0
        if high is None:
            high = low + 1.0
        return float(low), float(high)

    def value_at(self, position: float, spec: ParamSpec) -> Value:
        """The param value at this point of the travel (0..1): invert, curve, range, type."""
        position = min(max(position, 0.0), 1.0)
        if self.invert:
            position = 1.0 - position
        if spec.kind is bool:
            return position >= 0.5  # a CC at 64 or above is on
        low, high = self.span(spec)
        return spec.coerce(low + CURVES[self.curve].forward(position) * (high - low))  # type: ignore[return-value]

    def position_of(self, value: object, spec: ParamSpec) -> float:
        """Where on the travel `value` sits: the inverse of `value_at`."""
        if spec.kind is bool:
            position = 1.0 if value else 0.0
        else:
            low, high = self.span(spec)
            share = (float(value) - low) / (high - low) if high > low else 0.0  # type: ignore[arg-type]
            position = CURVES[self.curve].inverse(min(max(share, 0.0), 1.0))
        return 1.0 - position if self.invert else position

    def on_off(self, spec: ParamSpec) -> tuple[Value, Value]:
        """What a button sets when lit and when dark (invert swaps them)."""
        return self.value_at(1.0, spec), self.value_at(0.0, spec)

    def press_value(self, spec: ParamSpec) -> Value:
        """What a trigger sets on each press."""
        if self.value is None:
            return self.value_at(1.0, spec)
        return spec.coerce(self.value)  # type: ignore[return-value]

    def is_on(self, value: object, spec: ParamSpec) -> bool:
        """Whether a button's LED should be lit for this param value."""
        if self.mode == "trigger":
            return _same(value, self.press_value(spec))
        on, off = self.on_off(spec)
        if spec.kind is bool:
            return bool(value) == on
        return abs(float(value) - on) <= abs(float(value) - off)  # type: ignore[arg-type]

    def feedback(self, value: object, spec: ParamSpec | None = None) -> list[mido.Message]:
        """The messages that show `value` on the controller: an LED, a motor fader, a ring.

        Without a spec the value's own type and the file's range (else 0..1) are used.
        Aftertouch and program change have nothing to show, so they give [].
        """
        spec = spec or ParamSpec(self.param, value)  # type: ignore[arg-type]
        channel = 0 if self.channel is None else self.channel
        if self.mode in BUTTON_MODES:
            level = self.led_on if self.is_on(value, spec) else self.led_off
            return [_level(self.source, channel, self.number, level)]
        if self.source in ("aftertouch", "program"):
            return []
        position = self.position_of(value, spec)
        if self.source == "pitchbend":
            return [mido.Message("pitchwheel", channel=channel,
                                 pitch=round(position * 16383) - 8192)]
        if self.source == "cc14":
            raw = round(position * 16383)
            return [_level("cc", channel, self.number, raw >> 7),
                    _level("cc", channel, self.lsb, raw & 0x7F)]
        return [_level(self.source, channel, self.number, round(position * 127))]


def _level(source: str, channel: int, number: int | None, level: int) -> mido.Message:
    if source == "note":
        return mido.Message("note_on", channel=channel, note=number, velocity=level)
    return mido.Message("control_change", channel=channel, control=number, value=level)


def _same(a: object, b: object) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return bool(a) == bool(b)
    return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Mapping:
    """One controller's mapping file, checked and ready to play."""

    name: str
    bindings: tuple[Binding, ...]
    source: Path | None = None
    port: str | None = None  # part of the MIDI port name this mapping is written for

    @classmethod
    def load(cls, path: str | Path) -> Mapping:
        """Read and check a mapping file; raises MappingError with file and line."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise MappingError(str(path), None, f"cannot read the file: {exc}") from None
        return cls.parse(text, path)

    @classmethod
    def parse(cls, text: str, source: str | Path | None = None) -> Mapping:
        """Check a mapping's text; `source` names it in errors."""
        return _Reader(text, Path(source) if source is not None else None).mapping()


class _Reader:
    """Reads one mapping text, knowing its lines so every complaint can name one."""

    def __init__(self, text: str, source: Path | None) -> None:
        self.text, self.source = text, source
        self.file = str(source) if source is not None else "<mapping>"
        self.lines = text.splitlines()

    def fail(self, line: int, message: str) -> NoReturn:
        raise MappingError(self.file, line, message)

    def line_of(self, key: str, start: int = 1, end: int | None = None) -> int:
        """The line where `key = ...` is written between two lines, else `start`."""
        quoted = re.escape(key)
        pattern = re.compile(rf"^\s*(?:{quoted}|\"{quoted}\"|'{quoted}')\s*=")
        for number in range(start, (len(self.lines) if end is None else end) + 1):
            if pattern.match(self.lines[number - 1]):
                return number
        return start

    def mapping(self) -> Mapping:
        try:
            data = tomllib.loads(self.text)
        except tomllib.TOMLDecodeError as exc:
            problem = str(exc)
        else:
            return self.checked(data)
        where = _TOML_WHERE.search(problem)
        line = int(where.group(1)) if where and where.group(1) else max(len(self.lines), 1)
        self.fail(line, f"not valid TOML: {_TOML_WHERE.sub('', problem)}")

    def checked(self, data: dict[str, Any]) -> Mapping:
        headers = [n for n, text in enumerate(self.lines, 1) if _BIND_HEADER.match(text)]
        top_end = (headers[0] if headers else len(self.lines) + 1) - 1
        for key in data:
            if key not in TOP_KEYS:
                self.fail(self.line_of(key, 1, top_end),
                          f"unknown key {key!r}: a mapping has {', '.join(sorted(TOP_KEYS))}")
        name = data.get("name", self.source.stem if self.source else "mapping")
        port = data.get("port")
        for key, text in (("name", name), ("port", port)):
            if text is not None and not isinstance(text, str):
                self.fail(self.line_of(key, 1, top_end), f"{key} must be text")
        channel = self.channel(data.get("channel", 1), self.line_of("channel", 1, top_end))
        tables = data.get("bind", [])
        if (not isinstance(tables, list) or len(tables) != len(headers)
                or not all(isinstance(table, dict) for table in tables)):
            self.fail(self.line_of("bind"), "write each binding as its own [[bind]] table")
        ends = [start - 1 for start in headers[1:]] + [len(self.lines)]
        bindings = tuple(self.binding(table, start, end, channel)
                         for table, start, end in zip(tables, headers, ends, strict=True))
        for index, binding in enumerate(bindings):
            for earlier in bindings[:index]:
                if earlier.param == binding.param and _overlap(earlier, binding):
                    self.fail(binding.line, f"duplicate binding: {binding.label} already drives "
                                            f"{binding.param!r} at line {earlier.line}")
        return Mapping(name, bindings, self.source, port)

    def channel(self, value: object, line: int) -> int | None:
        if value == "all":
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 16:
            self.fail(line, f"channel is 1 to 16 (as printed on the hardware) or \"all\", "
                            f"got {value!r}")
        return value - 1

    def binding(self, table: dict[str, Any], start: int, end: int,
                channel: int | None) -> Binding:
        def at(key: str) -> int:
            return self.line_of(key, start, end)

        for key in table:
            if key not in BIND_KEYS:
                self.fail(at(key), f"unknown key {key!r} in [[bind]]")
        sources = [key for key in SOURCES if key in table]
        if len(sources) != 1:
            self.fail(start, "a [[bind]] names exactly one control: "
                             f"{', '.join(SOURCES)}" + (f"; got {', '.join(sources)}"
                                                        if sources else ""))
        source = sources[0]
        number, lsb = self.control(source, table[source], at(source))
        param = table.get("param")
        if not isinstance(param, str):
            self.fail(at("param") if "param" in table else start,
                      'a [[bind]] needs param = "name" (the param it drives)')
        try:
            ParamSpec(param, 0.0)
        except ParamError as exc:
            self.fail(at("param"), str(exc))
        if "channel" in table:
            channel = self.channel(table["channel"], at("channel"))
        self.applies(table, at, ("mode", source in MODES, "cc and note bindings"),
                     ("relative", source == "cc", "cc bindings"))
        mode = self.choice(table, "mode", MODES.get(source, ("value",)),
                           "momentary" if source == "note" else "value", at)
        relative = self.choice(table, "relative", RELATIVE, "none", at)
        if relative != "none" and mode != "value":
            self.fail(at("relative"), f"a relative encoder cannot also be a {mode} button")
        absolute = mode == "value" and relative == "none" and source != "program"
        self.applies(table, at, ("takeover", absolute, "faders and knobs that send where they "
                                                        "are (not buttons or encoders)"),
                     ("step", relative != "none", "relative encoders"),
                     ("value", mode == "trigger", 'mode = "trigger"'),
                     ("led_on", mode in BUTTON_MODES, "buttons"),
                     ("led_off", mode in BUTTON_MODES, "buttons"))
        takeover = self.choice(table, "takeover", TAKEOVER,
                               "pickup" if absolute and source in ("cc", "cc14") else "jump", at)
        return Binding(
            param=param, source=source, number=number, lsb=lsb, channel=channel,
            bounds=self.bounds(table, at),
            curve=self.choice(table, "curve", tuple(CURVES), "linear", at),
            invert=self.flag(table, "invert", at),
            smooth=self.seconds(table, "smooth", at),
            takeover=takeover, relative=relative, step=self.step(table, at), mode=mode,
            value=self.trigger_value(table, at),
            led_on=self.byte(table.get("led_on", 127), at("led_on"), "led_on"),
            led_off=self.byte(table.get("led_off", 0), at("led_off"), "led_off"),
            line=start)

    def applies(self, table: dict[str, Any], at: Callable[[str], int],
                *rules: tuple[str, bool, str]) -> None:
        """Refuse keys that mean nothing for this binding, rather than silently ignore them."""
        for key, applies, what in rules:
            if key in table and not applies:
                self.fail(at(key), f"{key} only applies to {what}")

    def control(self, source: str, value: object, line: int) -> tuple[int | None, int | None]:
        """A control's numbers: (number, lsb) as the Binding keeps them."""
        if source in ("cc", "note"):
            return self.byte(value, line, source), None
        if source == "cc14":
            if not isinstance(value, list) or len(value) != 2:
                self.fail(line, "cc14 = [MSB, LSB], the two controllers of a 14-bit pair, "
                                "e.g. [0, 32]")
            msb, lsb = (self.byte(part, line, "cc14") for part in value)
            if msb == lsb:
                self.fail(line, "cc14 needs two different controllers")
            return msb, lsb
        if source == "aftertouch" and value is not True:
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 127:
                self.fail(line, "aftertouch = true (channel pressure) or a note number 0 to 127 "
                                f"(polyphonic aftertouch), got {value!r}")
            return value, None
        if value is not True:
            self.fail(line, f"write {source} = true")
        return None, None

    def byte(self, value: object, line: int, what: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 127:
            self.fail(line, f"{what} is a whole number from 0 to 127, got {value!r}")
        return value

    def choice(self, table: dict[str, Any], key: str, allowed: tuple[str, ...], default: str,
               at: Callable[[str], int]) -> str:
        value = table.get(key, default)
        if value not in allowed:
            self.fail(at(key), f"{key} is one of {', '.join(allowed)}, got {value!r}")
        return value

    def flag(self, table: dict[str, Any], key: str, at: Callable[[str], int]) -> bool:
        value = table.get(key, False)
        if not isinstance(value, bool):
            self.fail(at(key), f"{key} is true or false, got {value!r}")
        return value

    def seconds(self, table: dict[str, Any], key: str, at: Callable[[str], int]) -> float:
        value = table.get(key, 0.0)
        if (isinstance(value, bool) or not isinstance(value, int | float)
                or not math.isfinite(value) or value < 0):
            self.fail(at(key), f"{key} is a number of seconds, 0 or more, got {value!r}")
        return float(value)

    def step(self, table: dict[str, Any], at: Callable[[str], int]) -> float:
        value = table.get("step", 1 / 127)
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
            self.fail(at("step"), f"step is the share of the travel per encoder tick, "
                                  f"above 0 and at most 1, got {value!r}")
        return float(value)

    def bounds(self, table: dict[str, Any], at: Callable[[str], int]) -> tuple[float, float] | None:
        value = table.get("range")
        if value is None:
            return None
        if (not isinstance(value, list) or len(value) != 2
                or any(isinstance(v, bool) or not isinstance(v, int | float)
                       or not math.isfinite(v) for v in value) or not value[0] < value[1]):
            self.fail(at("range"), f"range is [low, high] with low below high "
                                   f"(use invert = true to flip), got {value!r}")
        return float(value[0]), float(value[1])

    def trigger_value(self, table: dict[str, Any], at: Callable[[str], int]) -> float | None:
        value = table.get("value")
        if value is None:
            return None
        if not isinstance(value, int | float) or not math.isfinite(value):
            self.fail(at("value"), f"value is the number (or true/false) a trigger sets, "
                                   f"got {value!r}")
        return value


def _overlap(a: Binding, b: Binding) -> bool:
    """Whether two bindings hear the same messages."""
    same_channel = a.channel is None or b.channel is None or a.channel == b.channel
    return same_channel and bool(set(a.hears()) & set(b.hears()))


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
        if control.picked and sent is not None and sent[1] == binding and _same(sent[0], now):
            return True  # still ours: nothing else moved the param since we last set it
        target = binding.position_of(now, spec)
        control.picked = (_same(value, now) or abs(position - target) <= PICKUP
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


# Raw bytes. Ports that deliver whole messages (rtmidi) never need this; a byte stream does
# (a DIN-serial adapter, a rawmidi device, a network bridge).

MAX_SYSEX = 4096  # bytes; a longer sysex is dropped whole so a flood cannot grow memory
_CHANNEL_LENGTH = {0x80: 2, 0x90: 2, 0xA0: 2, 0xB0: 2, 0xC0: 1, 0xD0: 1, 0xE0: 2}
_COMMON_LENGTH = {0xF1: 1, 0xF2: 2, 0xF3: 1, 0xF6: 0}


class MidiStream:
    """MIDI bytes to mido messages, as the MIDI 1.0 spec reads them.

    mido.Parser (1.3) drops every message sent with running status and loses a message when a
    clock byte falls inside it; DIN hardware does both. Here real-time bytes pass through
    anywhere, running status is kept for channel messages and cleared by system messages,
    and anything that fits nothing is skipped and counted in `dropped`.
    """

    def __init__(self) -> None:
        self._status = 0  # running status, or the system common being read; 0: none
        self._data: list[int] = []
        self._sysex: list[int] | None = None  # the sysex being read
        self.dropped = 0

    def feed(self, data: Iterable[int]) -> list[mido.Message]:
        messages: list[mido.Message] = []
        for byte in data:
            if not 0 <= byte <= 0xFF:
                self.dropped += 1
            elif byte >= 0xF8:  # real time: may come between any two bytes, changes nothing
                if byte not in (0xF9, 0xFD):
                    messages.append(mido.Message.from_bytes([byte]))
            elif self._sysex is not None and byte < 0x80:
                if len(self._sysex) <= MAX_SYSEX:  # one byte past the cap marks it too long
                    self._sysex.append(byte)
            elif byte >= 0x80:
                self._status_byte(byte, messages)
            elif not self._status:
                self.dropped += 1  # a data byte with no status to belong to
            else:
                self._data.append(byte)
                if len(self._data) == self._length():
                    messages.append(mido.Message.from_bytes([self._status, *self._data]))
                    self._data = []
                    if self._status >= 0xF0:
                        self._status = 0  # system common messages have no running status
        return messages

    def _length(self) -> int:
        return _CHANNEL_LENGTH.get(self._status & 0xF0) or _COMMON_LENGTH[self._status]

    def _status_byte(self, byte: int, messages: list[mido.Message]) -> None:
        if self._sysex is not None:  # any status byte ends a sysex; only F7 ends it well
            if byte == 0xF7 and len(self._sysex) <= MAX_SYSEX:
                messages.append(mido.Message("sysex", data=self._sysex))
            else:
                self.dropped += 1
            self._sysex = None
            if byte == 0xF7:
                return
        if self._data:
            self.dropped += 1  # a message cut short by the next one
            self._data = []
        self._status = byte if byte < 0xF0 or byte in _COMMON_LENGTH else 0
        if byte == 0xF0:
            self._sysex = []
        elif byte == 0xF6:
            messages.append(mido.Message.from_bytes([byte]))
            self._status = 0
        elif not self._status:
            self.dropped += 1  # undefined F4/F5, or an F7 with no sysex open
