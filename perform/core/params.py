"""Performable parameters: declared by patches, set from any input, read by the render thread.

Inputs (OSC, HTTP, later MIDI) call `ParamStore.set` on the event loop; the render thread
calls `ParamStore.snapshot` once per frame and gets an immutable mapping, smoothed toward the
latest targets. Values are coerced and clamped at this boundary so no input can put a NaN,
a wrong type or an out-of-range value in front of a patch.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

Value = float | int | bool | str


class ParamError(ValueError):
    """A value that cannot be applied to a param; the message is for the performer."""


class UnknownParam(ParamError):
    pass


@dataclass(frozen=True)
class ParamSpec:
    """What a patch declares: `param("walk/speed", 0.08, 0.0, 1.0, smooth=0.2)`.

    The type of `default` is the param's type. `smooth` is a time constant in seconds:
    the value glides toward each new target instead of jumping (numbers only).
    """

    name: str
    default: Value
    min: float | None = None
    max: float | None = None
    smooth: float = 0.0

    def __post_init__(self) -> None:
        if not self.name or self.name.startswith("/") or " " in self.name:
            raise ParamError(f"bad param name {self.name!r}: "
                             "use words joined by '/', e.g. 'walk/speed'")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ParamError(f"param {self.name!r}: min {self.min} is above max {self.max}")
        if self.smooth < 0:
            raise ParamError(f"param {self.name!r}: smooth must be >= 0 seconds")
        object.__setattr__(self, "default", self.coerce(self.default))

    @property
    def kind(self) -> type:
        return type(self.default)

    def coerce(self, value: object) -> Value:
        """Turn an incoming value into this param's type, clamped into its range."""
        kind = type(self.default)
        if kind is str:
            if isinstance(value, str | int | float) and not isinstance(value, bool):
                return str(value)
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

    def describe(self) -> dict[str, object]:
        return {"default": self.default, "min": self.min, "max": self.max, "smooth": self.smooth,
                "type": self.kind.__name__}


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
        self.version = 0  # bumped on every accepted change; frames carry it

    def declare(self, specs: Iterable[ParamSpec]) -> None:
        """Install a patch's declarations; values of params that stay keep their value."""
        with self._lock:
            new_specs = {spec.name: spec for spec in specs}
            targets: dict[str, Value] = {}
            current: dict[str, Value] = {}
            for name, spec in new_specs.items():
                old = self._specs.get(name)
                if old is not None and old.kind is spec.kind:
                    targets[name] = spec.coerce(self._targets[name])
                    current[name] = spec.coerce(self._current.get(name, targets[name]))
                else:
                    targets[name] = current[name] = spec.default
            self._specs, self._targets, self._current = new_specs, targets, current
            self.version += 1

    def set(self, name: str, value: object) -> Value:
        """Set one target value; raises UnknownParam or ParamError with a readable message."""
        with self._lock:
            spec = self._specs.get(name)
            if spec is None:
                raise UnknownParam(f"no param named {name!r}")
            coerced = spec.coerce(value)
            self._targets[name] = coerced
            if not spec.smooth or not isinstance(coerced, float):
                self._current[name] = coerced
            self.version += 1
            return coerced

    def names(self) -> list[str]:
        with self._lock:
            return list(self._specs)

    def snapshot(self, dt: float) -> tuple[Mapping[str, Value], int]:
        """Advance smoothing by `dt` seconds and return (frozen values, version)."""
        with self._lock:
            for name, spec in self._specs.items():
                target = self._targets[name]
                if spec.smooth and isinstance(target, float):
                    now = float(self._current[name])
                    alpha = 1.0 - math.exp(-max(dt, 0.0) / spec.smooth)
                    moved = now + (target - now) * alpha
                    self._current[name] = target if abs(target - moved) < 1e-9 else moved
            return MappingProxyType(dict(self._current)), self.version

    def describe(self) -> dict[str, dict[str, object]]:
        with self._lock:
            return {name: {"value": self._current[name], "target": self._targets[name],
                           **spec.describe()} for name, spec in self._specs.items()}
