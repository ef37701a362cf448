"""MIDI controller mappings: TOML files binding controls to params, and the engine playing them.

A mapping file is a list of `[[bind]]` tables, one per control, so a performer reads it at a
glance and MIDI learn can append one. `Mapping.parse` checks everything up front and points at
the file and line of any mistake, like a broken patch, so the show keeps the last good mapping.
`perform.midi.mapper` plays a mapping. Nothing here opens ports or starts threads.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Callable
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
            return same_value(value, self.press_value(spec))
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


def same_value(a: object, b: object) -> bool:
    """Whether two param values are the same, floats within rounding."""
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
        ends = [start - 1 for start in headers[1:]] + [len(self.lines)] * bool(headers)
        bindings = tuple(self.binding(table, start, end, channel)
                         for table, start, end in zip(tables, headers, ends, strict=True))
        for index, binding in enumerate(bindings):
            for earlier in bindings[:index]:
                if earlier.param == binding.param and overlap(earlier, binding):
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


def overlap(a: Binding, b: Binding) -> bool:
    """Whether two bindings hear the same messages (the same control on a shared channel)."""
    same_channel = a.channel is None or b.channel is None or a.channel == b.channel
    return same_channel and bool(set(a.hears()) & set(b.hears()))
