"""Triggers frame by frame: which fired since the last frame, and how long ago the last did.

A trigger's value in the store counts its fires. The render thread compares each frame's
counts with the last frame's, so `if flash:` holds on exactly one frame per fire however
the fires arrive, and `flash.ago` runs on the show's clock (offline renders too).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from perform.core.params import Value


@dataclass(frozen=True)
class Fire:
    new: int  # fires since the previous frame
    ago: float  # show seconds since the last fire; inf before the first


NEVER = Fire(0, math.inf)


class TriggerWatch:
    """The render thread's memory of each trigger's count and the time of its last fire."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}
        self._fired_at: dict[str, float] = {}

    def frame(self, values: Mapping[str, Value], names: Iterable[str],
              t: float) -> dict[str, Fire]:
        fires: dict[str, Fire] = {}
        for name in names:
            count = int(values.get(name, 0))
            last = self._counts.get(name, count)  # first seen: fired before it, not now
            if count > last:
                self._fired_at[name] = t
            self._counts[name] = count
            at = self._fired_at.get(name)
            fires[name] = Fire(max(count - last, 0), math.inf if at is None else t - at)
        return fires
