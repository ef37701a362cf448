"""Fader response curves: how a control's travel (0..1) spreads over a param's range (0..1).

Every curve starts at 0, ends at 1, only rises, and has an exact inverse, so LED feedback and
soft takeover can turn a param value back into the fader position that would produce it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

_K = 4.0  # steepness of exp and log: exp spends half the travel on the lowest 12 % of the range
_SCALE = math.expm1(_K)


class Curve(NamedTuple):
    forward: Callable[[float], float]  # travel -> share of the range
    inverse: Callable[[float], float]  # share of the range -> travel


def _linear(x: float) -> float:
    return x


def _exp(x: float) -> float:
    """Fine control at the bottom (speeds, gains): slow start, steep end."""
    return math.expm1(_K * x) / _SCALE


def _log(x: float) -> float:
    """Fine control at the top: steep start, slow end."""
    return math.log1p(_SCALE * x) / _K


def _s(x: float) -> float:
    """Fine control at both ends, quick through the middle (crossfades)."""
    return x * x * (3.0 - 2.0 * x)


def _s_inverse(y: float) -> float:
    return 0.5 - math.sin(math.asin(min(max(1.0 - 2.0 * y, -1.0), 1.0)) / 3.0)


CURVES: dict[str, Curve] = {
    "linear": Curve(_linear, _linear),
    "exp": Curve(_exp, _log),
    "log": Curve(_log, _exp),
    "s": Curve(_s, _s_inverse),
}
