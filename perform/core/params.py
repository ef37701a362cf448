"""Performable parameters: declared by patches, set from any input, read by the render thread.

Inputs (OSC, HTTP, later MIDI) call `ParamStore.set` on the event loop; the render thread
calls `ParamStore.snapshot` once per frame and gets an immutable mapping, smoothed toward the
latest targets. Values are coerced and clamped at this boundary so no input can put a NaN,
a wrong type or an out-of-range value in front of a patch. Whoever mirrors the values
(OSC feedback, OSCQuery listeners) polls `changes_since` once per frame, so a 1 kHz sweep
costs them one message per frame, whatever its source.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

Vector = tuple[float, ...]
Value = float | int | bool | str | Vector
RESERVED = "perform/"  # server addresses (/perform/reload...) live under this prefix
MAX_LENGTH = 64  # components of a vector param
MAX_TEXT = 4096  # characters of a text param
# how the control page draws a param besides its type: "trigger" (a button; its value counts
# the fires), "seed" (a knob over whole seeds; `walks.seed` slerps between them)
CONTROLS = ("", "trigger", "seed")


class ParamError(ValueError):
    """A value that cannot be applied to a param; the message is for the performer."""


class UnknownParam(ParamError):
    pass


@dataclass(frozen=True)
class ParamSpec:
    """What a patch declares: `param("walk/speed", 0.08, 0.0, 1.0, smooth=0.2)`.

    The type of `default` is the param's type; a tuple of numbers makes a vector (an XY pad,
    a latent direction), clamped per component. `smooth` is a time constant in seconds: the
    value glides toward each new target instead of jumping (numbers and vectors).
    """

    name: str
    default: Value
    min: float | None = None
    max: float | None = None
    smooth: float = 0.0
    doc: str = ""
    control: str = ""  # one of CONTROLS

    def __post_init__(self) -> None:
        if self.control not in CONTROLS:
            raise ParamError(f"param {self.name!r}: control is one of {CONTROLS}")
        if (not self.name or self.name.startswith("/") or self.name.endswith("/")
                or "//" in self.name or any(c in self.name for c in " #*?,[]{}")):
            raise ParamError(f"bad param name {self.name!r}: "
                             "use words joined by '/', e.g. 'walk/speed'")
        if self.name.startswith(RESERVED):
            raise ParamError(f"bad param name {self.name!r}: "
                             f"names starting with {RESERVED!r} are the server's")
        if isinstance(self.default, list | tuple) and not 1 <= len(self.default) <= MAX_LENGTH:
            raise ParamError(f"param {self.name!r}: a vector has 1 to {MAX_LENGTH} components")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ParamError(f"param {self.name!r}: min {self.min} is above max {self.max}")
        if self.smooth < 0:
            raise ParamError(f"param {self.name!r}: smooth must be >= 0 seconds")
        object.__setattr__(self, "default", self.coerce(self.default))

    @property
    def kind(self) -> type:
        return type(self.default)

    @property
    def is_trigger(self) -> bool:
        return self.control == "trigger"

    @property
    def length(self) -> int | None:
        """Components of a vector param; None for a scalar."""
        return len(self.default) if isinstance(self.default, tuple) else None

    def coerce(self, value: object) -> Value:
        """Turn an incoming value into this param's type, clamped into its range."""
        if value is None:
            raise ParamError(f"/{self.name} needs a value")
        kind = type(self.default)
        if isinstance(self.default, list | tuple):
            return self._coerce_vector(value)
        if kind is str:
            if isinstance(value, str | int | float) and not isinstance(value, bool):
                if len(text := str(value)) > MAX_TEXT:
                    raise ParamError(f"{self.name} takes at most {MAX_TEXT} characters, "
                                     f"got {len(text)}")
                return text
            raise ParamError(f"{self.name} expects text, got {_show(value)}")
        if isinstance(value, str):
            text = value.strip().lower()
            if kind is bool and text in ("true", "on", "yes"):
                value = True
            elif kind is bool and text in ("false", "off", "no"):
                value = False
            else:
                try:
                    value = float(text)
                except ValueError:
                    raise ParamError(f"{self.name} expects a number, got {_show(value)}") from None
        if not isinstance(value, int | float):
            raise ParamError(f"{self.name} expects a number, got {_show(value)}")
        number = float(value)
        if not math.isfinite(number):
            raise ParamError(f"{self.name} refuses {number}")
        if kind is bool:
            return number >= 0.5
        if self.min is not None:
            number = max(number, self.min)
        if self.max is not None:
            number = min(number, self.max)
        return round(number) if kind is int else number

    def _coerce_vector(self, value: object) -> Vector:
        want = len(self.default)  # type: ignore[arg-type]
        if isinstance(value, str):
            value = value.replace(",", " ").split()
        if isinstance(value, str | bytes) or not hasattr(value, "__len__"):
            raise ParamError(f"{self.name} expects {want} numbers, got {_show(value)}")
        if len(value) != want:  # type: ignore[arg-type]
            raise ParamError(f"{self.name} expects {want} numbers, got {len(value)}")  # type: ignore[arg-type]
        out = []
        for item in value:  # type: ignore[attr-defined]
            if isinstance(item, bool) or not isinstance(item, int | float | str):
                raise ParamError(f"{self.name} expects numbers, got {_show(item)}")
            try:
                number = float(item)
            except ValueError:
                raise ParamError(f"{self.name} expects numbers, got {_show(item)}") from None
            if not math.isfinite(number):
                raise ParamError(f"{self.name} refuses {number}")
            if self.min is not None:
                number = max(number, self.min)
            if self.max is not None:
                number = min(number, self.max)
            out.append(number)
        return tuple(out)

    def describe(self) -> dict[str, object]:
        kind = "vector" if self.length is not None else self.kind.__name__
        return {"default": self.default, "min": self.min, "max": self.max, "smooth": self.smooth,
                "type": kind, "length": self.length, "doc": self.doc, "control": self.control}


def _fires(name: str, value: object) -> bool:
    """Whether a value sent to a trigger fires it: anything but a release (0, off, false)."""
    if isinstance(value, list | tuple):
        value = value[0] if value else None
    if value is None:
        return True
    if isinstance(value, str):
        return value.strip().lower() not in ("0", "0.0", "off", "false", "no")
    if isinstance(value, bool | int) or (isinstance(value, float) and math.isfinite(value)):
        return value != 0
    raise ParamError(f"{name} is a trigger: send nothing or 1 to fire it, got {_show(value)}")


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


class ParamStore:
    """The one registry of params: specs, latest targets and the render thread's smoothed values."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._specs: dict[str, ParamSpec] = {}
        self._targets: dict[str, Value] = {}
        self._current: dict[str, Value] = {}
        self._changed_at: dict[str, int] = {}  # the version at which each target last changed
        self._triggers: tuple[str, ...] = ()  # read every frame: worked out once a declare
        self.version = 0  # bumped on every accepted change; frames carry it
        self.generation = 0  # bumped when the set of params may have changed (a declare)

    def declare(self, specs: Iterable[ParamSpec]) -> None:
        """Install a patch's declarations; values of params that stay keep their value."""
        with self._lock:
            self.version += 1
            self.generation += 1
            new_specs = {spec.name: spec for spec in specs}
            targets: dict[str, Value] = {}
            current: dict[str, Value] = {}
            changed_at: dict[str, int] = {}
            for name, spec in new_specs.items():
                old = self._specs.get(name)
                if (old is not None and old.kind is spec.kind and old.length == spec.length
                        and old.control == spec.control):
                    targets[name] = spec.coerce(self._targets[name])
                    current[name] = spec.coerce(self._current.get(name, targets[name]))
                    same = targets[name] == self._targets[name]
                    changed_at[name] = self._changed_at[name] if same else self.version
                else:
                    targets[name] = current[name] = spec.default
                    changed_at[name] = self.version
            self._specs, self._targets, self._current = new_specs, targets, current
            self._changed_at = changed_at
            self._triggers = tuple(name for name, spec in new_specs.items() if spec.is_trigger)

    def set(self, name: str, value: object) -> Value:
        """Set one target value; raises UnknownParam or ParamError with a readable message.

        A trigger fires instead: any value but a zero (a button's or a note's release) adds
        one to its count; None (an OSC message without arguments) fires too."""
        with self._lock:
            spec = self._specs.get(name)
            if spec is None:
                raise UnknownParam(f"no param named {name!r}")
            if spec.is_trigger:
                return self._fire_locked(name, spec, value)
            coerced = spec.coerce(value)
            self.version += 1
            self._target_locked(name, spec, coerced)
            return coerced

    def _fire_locked(self, name: str, spec: ParamSpec, value: object) -> Value:
        count = self._targets[name]
        if not _fires(name, value):
            return count  # a release
        self.version += 1
        self._target_locked(name, spec, count + 1)  # type: ignore[operator]
        return count + 1

    def set_many(self, values: Mapping[str, object]) -> dict[str, str]:
        """Set several targets at once (no frame sees half of them); returns what was refused.

        Unknown names and bad values are skipped, each with the reason, so a preset saved
        for an older version of a patch still applies what it can.
        """
        with self._lock:
            accepted, refused = self._coerce_many_locked(values)
            self.version += 1
            for name, coerced in accepted.items():
                self._target_locked(name, self._specs[name], coerced)
        return refused

    def coerce_many(self, values: Mapping[str, object]) -> tuple[dict[str, Value], dict[str, str]]:
        """Each value coerced by its param, and those refused with the reason; sets nothing."""
        with self._lock:
            return self._coerce_many_locked(values)

    def _coerce_many_locked(self, values: Mapping[str, object]
                            ) -> tuple[dict[str, Value], dict[str, str]]:
        accepted: dict[str, Value] = {}
        refused: dict[str, str] = {}
        for name, value in values.items():
            spec = self._specs.get(name)
            try:
                if spec is None:
                    raise UnknownParam(f"no param named {name!r}")
                if spec.is_trigger:
                    raise ParamError(f"{name} is a trigger: it fires, it keeps no value to set")
                accepted[name] = spec.coerce(value)
            except ParamError as exc:
                refused[name] = str(exc)
        return accepted, refused

    def set_unless_moved(self, values: Mapping[str, Value],
                         expected: Mapping[str, Value]) -> set[str]:
        """Set each target that still holds `expected[name]`; returns the names that did not.

        A crossfade writes through this once a frame, so a fader the performer moves mid-fade
        (or a param a save removed or retyped) is theirs from that moment on.
        """
        moved: set[str] = set()
        changed: dict[str, Value] = {}
        with self._lock:
            for name, value in values.items():
                spec = self._specs.get(name)
                if spec is None or self._targets[name] != expected[name]:
                    moved.add(name)  # removed, or moved by someone else
                    continue
                try:
                    coerced = spec.coerce(value)
                except ParamError:  # retyped by a save
                    moved.add(name)
                    continue
                if coerced != self._targets[name]:
                    changed[name] = coerced
            if changed:
                self.version += 1
                for name, coerced in changed.items():
                    self._target_locked(name, self._specs[name], coerced)
        return moved

    def _target_locked(self, name: str, spec: ParamSpec, value: Value) -> None:
        self._targets[name] = value
        self._changed_at[name] = self.version
        if not spec.smooth or isinstance(value, (str, int)):
            self._current[name] = value

    def targets(self) -> dict[str, Value]:
        """Every param's latest target: what a preset saves and a controller should show."""
        with self._lock:
            return dict(self._targets)

    def target(self, name: str) -> Value | None:
        """One param's latest target; None when the patch declares no such param."""
        with self._lock:
            return self._targets.get(name)

    def names(self) -> list[str]:
        with self._lock:
            return list(self._specs)

    def triggers(self) -> tuple[str, ...]:
        return self._triggers  # replaced whole by a declare, never changed in place

    def spec(self, name: str) -> ParamSpec | None:
        with self._lock:
            return self._specs.get(name)

    def changes_since(self, version: int) -> tuple[dict[str, Value], int]:
        """Targets set after `version` (each once, however often it moved) and the version now."""
        with self._lock:
            changed = {name: self._targets[name]
                       for name, at in self._changed_at.items() if at > version}
            return changed, self.version

    def snapshot(self, dt: float) -> tuple[Mapping[str, Value], int]:
        """Advance smoothing by `dt` seconds and return (frozen values, version)."""
        with self._lock:
            for name, spec in self._specs.items():
                if spec.smooth:
                    alpha = 1.0 - math.exp(-max(dt, 0.0) / spec.smooth)
                    self._current[name] = _glide(self._current[name], self._targets[name], alpha)
            return MappingProxyType(dict(self._current)), self.version

    def describe(self) -> dict[str, dict[str, object]]:
        with self._lock:
            return {name: {"value": self._current[name], "target": self._targets[name],
                           **spec.describe()} for name, spec in self._specs.items()}


def _glide(now: Value, target: Value, alpha: float) -> Value:
    """One smoothing step from `now` toward `target`; settles exactly once within 1e-9."""
    if isinstance(target, tuple):
        moved = tuple(_glide(a, b, alpha) for a, b in zip(now, target, strict=True))  # type: ignore[arg-type]
        return moved  # type: ignore[return-value]
    if not isinstance(target, float) or isinstance(now, str | bool):
        return target
    step = float(now) + (target - float(now)) * alpha
    return target if abs(target - step) < 1e-9 else step
