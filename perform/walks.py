"""Latent walks: where a patch's latent vector z is at a given time or position.

Every walk here is a pure function of its arguments (time, phase or keyframe position, plus
integer seeds), never of hidden state that advances per call. A patch reloaded mid-show picks
up the path exactly where it was, and an offline render at any frame rate gets the same path
as the live set. Random tables are built once per (seed, dim) and cached, so a call per frame
costs a few small numpy operations even at dim 512.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence
from functools import lru_cache

import numpy as np
import numpy.typing as npt

__all__ = [
    "EASES",
    "keyframes",
    "lerp",
    "noise_loop",
    "random_walk",
    "seed",
    "seed_latent",
    "slerp",
    "spline",
]

ArrayLike = npt.ArrayLike

_U64 = 1 << 64
# Stream tags keep the random tables of different walks independent for the same seed.
_TAG_SEED = 0x5EED
_TAG_NOISE = 0x701CE
_TAG_WALK = 0x3A1C

_NOISE_FEATURES = 16  # J random Fourier features per latent dimension
_NOISE_OFFSET = 100.0  # per-dimension offsets are uniform in [-_NOISE_OFFSET, _NOISE_OFFSET]

_WALK_BLOCK = 64  # lattice noise vectors are generated and cached in blocks of this many
_WALK_REACH = 4.0  # kernel support, in units of smoothness
_MIN_SMOOTHNESS = 0.25  # below this, t halfway between lattice points would see no vector
_WALK_FLOOR = math.exp(-0.5 * _WALK_REACH**2)  # subtracted so the kernel is 0 at the edge

_PARALLEL_EPS = 1e-4  # angle (radians) below which slerp is replaced by lerp
_ZERO_EPS = 1e-12


# --- helpers ----------------------------------------------------------------------------


def _entropy(*values: int) -> tuple[int, ...]:
    """Map arbitrary (also negative) ints onto non-negative seed material."""
    return tuple(operator.index(v) % _U64 for v in values)


def _check_dim(dim: int) -> int:
    d = operator.index(dim)
    if d < 1:
        raise ValueError(f"dim must be a positive integer, got {dim!r}")
    return d


def _finite(x: float, name: str) -> float:
    v = float(x)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {x!r}")
    return v


def _readonly(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


def _out(a: np.ndarray) -> np.ndarray:
    """A fresh float32 array the caller owns."""
    return np.array(a, dtype=np.float32)


@lru_cache(maxsize=1024)
def _seed_table(seed: int, dim: int) -> np.ndarray:
    rng = np.random.default_rng(_entropy(_TAG_SEED, seed))
    return _readonly(rng.standard_normal(dim))


# --- eases --------------------------------------------------------------------------------


def _linear(x: float) -> float:
    return x


def _smooth(x: float) -> float:
    return x * x * (3.0 - 2.0 * x)


def _smoother(x: float) -> float:
    return x * x * x * (x * (6.0 * x - 15.0) + 10.0)


def _sine(x: float) -> float:
    return 0.5 - 0.5 * math.cos(math.pi * x)


def _cubic(x: float) -> float:
    if x < 0.5:
        return 4.0 * x * x * x
    y = 2.0 - 2.0 * x
    return 1.0 - 0.5 * y * y * y


_EASE_FUNCS: dict[str, Callable[[float], float]] = {
    "linear": _linear,
    "smooth": _smooth,
    "smoother": _smoother,
    "sine": _sine,
    "cubic": _cubic,
}
EASES: tuple[str, ...] = tuple(_EASE_FUNCS)
"""Valid ``ease=`` names for :func:`keyframes`."""


def _ease_func(ease: str) -> Callable[[float], float]:
    try:
        return _EASE_FUNCS[ease]
    except (KeyError, TypeError):
        raise ValueError(f"unknown ease {ease!r}; valid eases are: {', '.join(EASES)}") from None


# --- basic interpolation -----------------------------------------------------------------


def _lerp64(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    # (1-t)a + tb rather than a + t(b-a): exact endpoints at t=0 and t=1.
    return (1.0 - t) * a + t * b


def _slerp64(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    na = math.sqrt(float(np.dot(a.ravel(), a.ravel())))
    nb = math.sqrt(float(np.dot(b.ravel(), b.ravel())))
    if na < _ZERO_EPS or nb < _ZERO_EPS:
        return _lerp64(a, b, t)
    cos = float(np.dot(a.ravel(), b.ravel())) / (na * nb)
    theta = math.acos(min(1.0, max(-1.0, cos)))
    if theta < _PARALLEL_EPS or theta > math.pi - _PARALLEL_EPS:
        return _lerp64(a, b, t)
    s = math.sin(theta)
    return (math.sin((1.0 - t) * theta) / s) * a + (math.sin(t * theta) / s) * b


def _pair(a: ArrayLike, b: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    a64, b64 = np.broadcast_arrays(np.asarray(a, np.float64), np.asarray(b, np.float64))
    return a64, b64


def seed_latent(seed: int, dim: int) -> np.ndarray:
    """The standard-normal latent of an integer seed: same seed, same picture, every time."""
    return _out(_seed_table(operator.index(seed), _check_dim(dim)))


def lerp(a: ArrayLike, b: ArrayLike, t: float) -> np.ndarray:
    """Straight-line blend from a (t=0) to b (t=1); t outside [0, 1] extrapolates past them."""
    a64, b64 = _pair(a, b)
    return _out(_lerp64(a64, b64, _finite(t, "t")))


def slerp(a: ArrayLike, b: ArrayLike, t: float) -> np.ndarray:
    """Blend from a (t=0) to b (t=1) along the arc between them, keeping the latent's norm.

    Midpoints of two random latents stay as "typical" as the endpoints (a straight lerp
    dips towards the average image). Parallel, opposite or zero vectors fall back to lerp.
    """
    a64, b64 = _pair(a, b)
    return _out(_slerp64(a64, b64, _finite(t, "t")))


def seed(x: float, dim: int) -> np.ndarray:
    """A fractional seed knob: x=7.0 is seed 7, x=7.5 is halfway between seeds 7 and 8.

    Between integers the two seeds are slerped with a smoothstep on the fraction, so a knob
    sweep moves continuously and eases through every integer seed without a kink. Given a
    `seed(...)` param that a scene crossfade is moving, the latent slerps from the old
    seed's straight to the new one's instead.
    """
    d = _check_dim(dim)
    fading = getattr(x, "fading", None)  # (from, to, eased) of a knob mid-crossfade
    if fading is not None:
        start, end, eased = fading
        return _out(_slerp64(_fractional_seed(start, d), _fractional_seed(end, d), eased))
    return _out(_fractional_seed(_finite(x, "x"), d))


def _fractional_seed(v: float, dim: int) -> np.ndarray:
    i = math.floor(v)
    f = v - i
    if f == 0.0:
        return _seed_table(i, dim)
    return _slerp64(_seed_table(i, dim), _seed_table(i + 1, dim), _smooth(f))


# --- keyframes and splines ----------------------------------------------------------------


def _point(p: ArrayLike | int, dim: int | None) -> np.ndarray:
    if isinstance(p, int | np.integer) and not isinstance(p, bool | np.bool_):
        if dim is None:
            raise ValueError("points given as integer seeds need dim=")
        return _seed_table(int(p), _check_dim(dim))
    return np.asarray(p, dtype=np.float64)


def _count(points: Sequence[ArrayLike | int]) -> int:
    n = len(points)
    if n == 0:
        raise ValueError("points must not be empty")
    return n


def _segment(pos: float, n: int, loop: bool) -> tuple[int, float]:
    """The segment `pos` falls in (index of its first point) and how far along it is.

    loop=True wraps pos around all n points; loop=False clamps it to [0, n-1].
    """
    v = _finite(pos, "pos")
    if loop:
        v %= n
        i = min(math.floor(v), n - 1)
    else:
        v = min(max(v, 0.0), float(n - 1))
        i = min(math.floor(v), n - 2)
    return i, v - i


def keyframes(
    pos: float,
    points: Sequence[ArrayLike | int],
    *,
    ease: str = "smooth",
    loop: bool = True,
    dim: int | None = None,
) -> np.ndarray:
    """Step through a list of latents (or int seeds, with dim=): pos=k is exactly points[k].

    Each segment is slerped with the chosen ease (see EASES), so the walk settles on every
    keyframe. loop=True wraps pos and returns from the last keyframe to the first;
    loop=False holds on the first/last keyframe outside [0, len-1].
    """
    f_ease = _ease_func(ease)
    n = _count(points)
    if n == 1:
        return _out(_point(points[0], dim))
    i, f = _segment(pos, n, loop)
    a = _point(points[i], dim)
    if f == 0.0:
        return _out(a)
    b = _point(points[(i + 1) % n], dim)
    a, b = np.broadcast_arrays(a, b)
    return _out(_slerp64(a, b, f_ease(f)))


def spline(
    pos: float,
    points: Sequence[ArrayLike | int],
    *,
    loop: bool = True,
    dim: int | None = None,
    keep_norm: bool = True,
) -> np.ndarray:
    """A smooth curve through the latents (or int seeds, with dim=): pos=k is points[k].

    Uniform Catmull-Rom: unlike keyframes it does not stop at the points but flows through
    them with continuous velocity; with loop=True it is a seamless perfect loop
    (pos and pos+len(points) agree). keep_norm rescales each point of the curve to the
    spline-interpolated norm of the keyframes, so it does not drift towards the average
    image between them as a plain Euclidean spline would.
    """
    n = _count(points)
    if n == 1:
        return _out(_point(points[0], dim))
    i, t = _segment(pos, n, loop)
    if loop:
        idx = [(i - 1) % n, i, (i + 1) % n, (i + 2) % n]
    else:  # missing neighbours at the ends repeat the end point
        idx = [max(i - 1, 0), i, i + 1, min(i + 2, n - 1)]
    if t == 0.0:
        return _out(_point(points[i], dim))
    p0, p1, p2, p3 = np.broadcast_arrays(*(_point(points[k], dim) for k in idx))
    t2 = t * t
    t3 = t2 * t
    w0 = 0.5 * (-t + 2.0 * t2 - t3)
    w1 = 0.5 * (2.0 - 5.0 * t2 + 3.0 * t3)
    w2 = 0.5 * (t + 4.0 * t2 - 3.0 * t3)
    w3 = 0.5 * (-t2 + t3)
    out = w0 * p0 + w1 * p1 + w2 * p2 + w3 * p3
    if keep_norm:
        norms = [math.sqrt(float(np.dot(p.ravel(), p.ravel()))) for p in (p0, p1, p2, p3)]
        target = w0 * norms[0] + w1 * norms[1] + w2 * norms[2] + w3 * norms[3]
        have = math.sqrt(float(np.dot(out.ravel(), out.ravel())))
        if have > _ZERO_EPS and target > 0.0:
            out *= target / have
    return _out(out)


# --- noise loop ---------------------------------------------------------------------------


@lru_cache(maxsize=64)
def _noise_tables(seed: int, dim: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # Laid out (feature, dim) so the per-call sum over features runs over contiguous rows.
    rng = np.random.default_rng(_entropy(_TAG_NOISE, seed))
    wx, wy = rng.standard_normal((2, _NOISE_FEATURES, dim))
    phi = rng.uniform(0.0, 2.0 * math.pi, (_NOISE_FEATURES, dim))
    ox, oy = rng.uniform(-_NOISE_OFFSET, _NOISE_OFFSET, (2, 1, dim))
    # Fold the constant offset into the phase: w.(r*c + o) + phi = r*(w.c) + (w.o + phi).
    bias = np.mod(phi + wx * ox + wy * oy, 2.0 * math.pi)
    return _readonly(wx), _readonly(wy), _readonly(bias)


def noise_loop(phase: float, dim: int, *, radius: float = 1.0, seed: int = 0) -> np.ndarray:
    """A smooth wandering latent that returns exactly to its start every 1.0 of phase.

    Each dimension follows its own smooth 2-D noise sampled around a circle of the given
    radius, so phase and phase+1 give the same latent at any radius: drive it with
    t * speed for a perfect loop. radius=0 holds still; a larger radius travels further
    (more variety) per loop. Each dimension has roughly unit variance, like the prior.
    """
    d = _check_dim(dim)
    r = _finite(radius, "radius")
    p = _finite(phase, "phase") % 1.0
    wx, wy, bias = _noise_tables(operator.index(seed), d)
    angle = 2.0 * math.pi * p
    arg = wx * (r * math.cos(angle))
    arg += wy * (r * math.sin(angle))
    arg += bias
    np.cos(arg, out=arg)
    out = arg.sum(axis=0)
    out *= math.sqrt(2.0 / _NOISE_FEATURES)
    return out.astype(np.float32)


# --- random walk --------------------------------------------------------------------------


@lru_cache(maxsize=64)
def _walk_block(seed: int, dim: int, block: int) -> np.ndarray:
    rng = np.random.default_rng(_entropy(_TAG_WALK, seed, block))
    return _readonly(rng.standard_normal((_WALK_BLOCK, dim)))


def _lattice(seed: int, dim: int, k0: int, k1: int) -> np.ndarray:
    """Lattice noise vectors n_k for k0 <= k <= k1, shape (k1 - k0 + 1, dim)."""
    b0, b1 = k0 // _WALK_BLOCK, k1 // _WALK_BLOCK
    lo, hi = k0 - b0 * _WALK_BLOCK, k1 - b1 * _WALK_BLOCK + 1
    if b0 == b1:
        return _walk_block(seed, dim, b0)[lo:hi]
    parts = [_walk_block(seed, dim, b0)[lo:]]
    parts.extend(_walk_block(seed, dim, b) for b in range(b0 + 1, b1))
    parts.append(_walk_block(seed, dim, b1)[:hi])
    return np.concatenate(parts)


def random_walk(t: float, dim: int, *, seed: int = 0, smoothness: float = 1.0) -> np.ndarray:
    """A smooth random wander through latent space, as a deterministic function of time t.

    Gaussian-smoothed white noise: random latents sit at integer times and t blends the
    ones within a few smoothness units. Larger smoothness = slower, rounder wander (it is
    the correlation time in units of t; clamped to >= 0.25). Each dimension stays near unit
    variance, and the walk never loops or drifts away.
    """
    d = _check_dim(dim)
    tt = _finite(t, "t")
    s = max(_finite(smoothness, "smoothness"), _MIN_SMOOTHNESS)
    reach = _WALK_REACH * s
    k0 = math.ceil(tt - reach)
    k1 = math.floor(tt + reach)
    u = (tt - np.arange(k0, k1 + 1, dtype=np.float64)) / s
    # Gaussian shifted down to reach 0 at the edge of its support: continuous in t.
    g = np.maximum(np.exp(-0.5 * u * u) - _WALK_FLOOR, 0.0)
    g /= math.sqrt(float(np.dot(g, g)))
    out = g @ _lattice(operator.index(seed), d, k0, k1)
    return out.astype(np.float32)
