"""Latent walks: the properties a performer relies on when driving z from a patch."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from perform import walks

DIM = 64


def dist(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64)))


# --- seed_latent / seed ----------------------------------------------------------------------


def test_seed_latent_is_float32_standard_normal_and_deterministic() -> None:
    z = walks.seed_latent(7, 512)
    assert z.shape == (512,)
    assert z.dtype == np.float32
    assert np.array_equal(z, walks.seed_latent(7, dim=512))
    assert not np.array_equal(z, walks.seed_latent(8, 512))
    assert abs(float(z.mean())) < 0.2
    assert 0.8 < float(z.std()) < 1.2


def test_seed_latent_returns_a_copy_the_caller_can_mutate() -> None:
    z = walks.seed_latent(3, DIM)
    z[:] = 0.0
    assert np.any(walks.seed_latent(3, DIM) != 0.0)


def test_seed_latent_is_the_same_in_a_fresh_process() -> None:
    code = "from perform import walks; print(walks.seed_latent(11, 8).tobytes().hex())"
    root = Path(__file__).resolve().parents[1]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
    }
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root, env=env
    ).stdout.strip()
    assert out == walks.seed_latent(11, 8).tobytes().hex()


def test_negative_seeds_work_and_differ() -> None:
    a, b = walks.seed_latent(-1, DIM), walks.seed_latent(1, DIM)
    assert np.all(np.isfinite(a))
    assert not np.array_equal(a, b)


def test_bad_dim_raises() -> None:
    with pytest.raises(ValueError):
        walks.seed_latent(1, 0)
    with pytest.raises(TypeError):
        walks.seed_latent(1, 2.5)  # type: ignore[arg-type]


def test_fractional_seed_equals_integer_seeds_at_integers() -> None:
    for n in (-3, 0, 7):
        assert np.array_equal(walks.seed(float(n), DIM), walks.seed_latent(n, DIM))


def test_fractional_seed_is_continuous_across_integers_and_flat_there() -> None:
    eps = 1e-4
    for n in (-1, 0, 7):
        left, mid, right = (walks.seed(n + d, DIM) for d in (-eps, 0.0, eps))
        assert dist(left, mid) < 1e-5
        assert dist(right, mid) < 1e-5
    # Between integers it really moves, and both halves head somewhere new.
    assert dist(walks.seed(7.5, DIM), walks.seed_latent(7, DIM)) > 1.0
    assert dist(walks.seed(7.5, DIM), walks.seed_latent(8, DIM)) > 1.0


def test_fractional_seed_sweep_has_no_jumps() -> None:
    xs = np.linspace(-1.0, 2.0, 301)
    zs = np.stack([walks.seed(float(x), DIM) for x in xs])
    steps = np.linalg.norm(np.diff(zs, axis=0), axis=1)
    # Smoothstep speeds up to 1.5x the average mid-segment and slows to 0 at integers.
    assert steps.max() < 2.0 * steps.mean()
    assert steps[[99, 100, 199, 200]].max() < 0.1 * steps.mean()


# --- lerp / slerp ---------------------------------------------------------------------------


def test_lerp_endpoints_and_extrapolation() -> None:
    a, b = np.zeros(4), np.arange(4.0)
    assert np.array_equal(walks.lerp(a, b, 0.0), a)
    assert np.array_equal(walks.lerp(a, b, 1.0), b)
    assert np.allclose(walks.lerp(a, b, 2.0), 2 * b)
    assert np.allclose(walks.lerp(a, b, -0.5), -0.5 * b)
    assert walks.lerp(a, b, 0.5).dtype == np.float32


def test_lerp_and_slerp_keep_input_shape() -> None:
    a, b = np.ones((2, 3)), -np.arange(6.0).reshape(2, 3)
    assert walks.lerp(a, b, 0.3).shape == (2, 3)
    assert walks.slerp(a, b, 0.3).shape == (2, 3)


def test_slerp_endpoints_exact() -> None:
    a, b = walks.seed_latent(1, DIM), walks.seed_latent(2, DIM)
    assert np.array_equal(walks.slerp(a, b, 0.0), a)
    assert np.array_equal(walks.slerp(a, b, 1.0), b)


def test_slerp_preserves_norm_for_equal_norm_inputs() -> None:
    a = walks.seed_latent(1, DIM).astype(np.float64)
    b = walks.seed_latent(2, DIM).astype(np.float64)
    b *= np.linalg.norm(a) / np.linalg.norm(b)
    for t in (0.1, 0.5, 0.9, 1.5, -0.3):
        assert np.linalg.norm(walks.slerp(a, b, t)) == pytest.approx(np.linalg.norm(a), rel=1e-5)
    # lerp dips in the middle; slerp is what keeps the picture "typical".
    assert np.linalg.norm(walks.lerp(a, b, 0.5)) < 0.9 * np.linalg.norm(a)


def test_slerp_parallel_and_zero_vectors_no_nan() -> None:
    a = np.arange(1.0, 5.0)
    cases = [(a, a), (a, 2 * a), (a, -a), (np.zeros(4), a), (np.zeros(4), np.zeros(4))]
    for x, y in cases:
        for t in (0.0, 0.25, 0.5, 1.0):
            assert np.all(np.isfinite(walks.slerp(x, y, t)))
    assert np.allclose(walks.slerp(a, 2 * a, 0.5), 1.5 * a)
    assert np.allclose(walks.slerp(np.zeros(4), a, 0.5), 0.5 * a)


# --- keyframes --------------------------------------------------------------------------------


def test_keyframes_hit_keyframes_at_integers() -> None:
    pts = [walks.seed_latent(s, DIM) for s in (3, 4, 5)]
    for i, p in enumerate(pts):
        assert np.array_equal(walks.keyframes(float(i), pts), p)
    assert np.array_equal(walks.keyframes(1.0, [3, 4, 5], dim=DIM), pts[1])


def test_keyframes_loop_wraps_back_to_first() -> None:
    pts = [3, 4, 5]
    assert np.allclose(walks.keyframes(3.0, pts, dim=DIM), walks.seed_latent(3, DIM))
    assert np.allclose(walks.keyframes(-1.0, pts, dim=DIM), walks.seed_latent(5, DIM))
    for pos in (0.3, 1.7, 2.5):
        assert np.allclose(
            walks.keyframes(pos, pts, dim=DIM), walks.keyframes(pos + 3.0, pts, dim=DIM), atol=1e-5
        )
    # The segment after the last keyframe heads back to the first.
    late = walks.keyframes(2.999, pts, dim=DIM)
    assert dist(late, walks.seed_latent(3, DIM)) < 1e-3


def test_keyframes_clamp_without_loop() -> None:
    pts = [3, 4, 5]
    first, last = walks.seed_latent(3, DIM), walks.seed_latent(5, DIM)
    assert np.array_equal(walks.keyframes(-2.0, pts, loop=False, dim=DIM), first)
    assert np.array_equal(walks.keyframes(2.0, pts, loop=False, dim=DIM), last)
    assert np.array_equal(walks.keyframes(9.5, pts, loop=False, dim=DIM), last)


@pytest.mark.parametrize("ease", ["linear", "smooth", "smoother", "sine", "cubic"])
def test_every_ease_works_with_exact_endpoints(ease: str) -> None:
    assert ease in walks.EASES
    a, b = walks.seed_latent(1, DIM), walks.seed_latent(2, DIM)
    assert np.array_equal(walks.keyframes(0.0, [a, b], ease=ease, loop=False), a)
    assert np.array_equal(walks.keyframes(1.0, [a, b], ease=ease, loop=False), b)
    # Along the segment the distance from a grows monotonically from 0 to |a - b|.
    ds = [dist(walks.keyframes(p, [a, b], ease=ease, loop=False), a) for p in np.linspace(0, 1, 21)]
    assert all(d1 <= d2 + 1e-5 for d1, d2 in itertools.pairwise(ds))
    # Symmetric eases pass the midpoint of the arc at pos 0.5.
    mid = walks.slerp(a, b, 0.5)
    assert np.allclose(walks.keyframes(0.5, [a, b], ease=ease, loop=False), mid, atol=1e-5)


def test_eased_keyframes_settle_on_keyframes() -> None:
    a, b = walks.seed_latent(1, DIM), walks.seed_latent(2, DIM)
    near = dist(walks.keyframes(0.01, [a, b], ease="smooth", loop=False), a)
    linear = dist(walks.keyframes(0.01, [a, b], ease="linear", loop=False), a)
    assert near < 0.1 * linear


def test_bad_ease_raises_with_valid_names() -> None:
    with pytest.raises(ValueError) as info:
        walks.keyframes(0.5, [1, 2], ease="bouncy", dim=DIM)
    for name in walks.EASES:
        assert name in str(info.value)


def test_int_points_need_dim_and_empty_points_raise() -> None:
    with pytest.raises(ValueError, match="dim"):
        walks.keyframes(0.5, [1, 2])
    with pytest.raises(ValueError):
        walks.keyframes(0.5, [])
    with pytest.raises(ValueError):
        walks.spline(0.5, [])


# --- spline -------------------------------------------------------------------------------------


def test_spline_passes_through_points() -> None:
    pts = [walks.seed_latent(s, DIM) for s in (10, 11, 12, 13)]
    for loop in (True, False):
        for i, p in enumerate(pts):
            assert np.allclose(walks.spline(float(i), pts, loop=loop), p, atol=1e-6)
    assert np.allclose(walks.spline(2.0, [10, 11, 12, 13], dim=DIM), pts[2], atol=1e-6)


def test_spline_loop_is_periodic() -> None:
    pts = [10, 11, 12, 13]
    for pos in (0.0, 0.4, 2.75, 3.9):
        a = walks.spline(pos, pts, dim=DIM)
        assert np.allclose(a, walks.spline(pos + 4.0, pts, dim=DIM), atol=1e-5)
        assert np.allclose(a, walks.spline(pos - 8.0, pts, dim=DIM), atol=1e-5)


@pytest.mark.parametrize("keep_norm", [True, False])
@pytest.mark.parametrize("knot", [0.0, 1.0, 3.0])
def test_spline_velocity_is_continuous_at_knots(knot: float, keep_norm: bool) -> None:
    pts = [walks.seed_latent(s, DIM).astype(np.float64) for s in (10, 11, 12, 13)]
    h = 1e-3

    def at(p: float) -> np.ndarray:
        return walks.spline(p, pts, keep_norm=keep_norm).astype(np.float64)

    left = (at(knot) - at(knot - h)) / h
    right = (at(knot + h) - at(knot)) / h
    assert np.linalg.norm(left) > 1.0  # it flows through the knot instead of stopping
    assert np.linalg.norm(left - right) < 0.05 * np.linalg.norm(left)


def test_spline_keep_norm_holds_norm_between_points() -> None:
    pts = [walks.seed_latent(s, 256) for s in (10, 11, 12, 13)]
    norm = float(np.mean([np.linalg.norm(p) for p in pts]))
    kept = np.linalg.norm(walks.spline(1.5, pts))
    plain = np.linalg.norm(walks.spline(1.5, pts, keep_norm=False))
    assert kept == pytest.approx(norm, rel=0.1)
    assert plain < 0.9 * kept


def test_spline_clamps_without_loop() -> None:
    pts = [10, 11, 12]
    last = walks.seed_latent(12, DIM)
    assert np.allclose(walks.spline(5.0, pts, loop=False, dim=DIM), last)
    assert np.allclose(walks.spline(-1.0, pts, loop=False, dim=DIM), walks.seed_latent(10, DIM))


# --- noise_loop ---------------------------------------------------------------------------------


def test_noise_loop_is_a_perfect_loop() -> None:
    z0 = walks.noise_loop(0.0, DIM, radius=1.2, seed=1)
    assert np.array_equal(z0, walks.noise_loop(1.0, DIM, radius=1.2, seed=1))
    assert np.array_equal(z0, walks.noise_loop(3.0, DIM, radius=1.2, seed=1))
    assert np.array_equal(z0, walks.noise_loop(-2.0, DIM, radius=1.2, seed=1))
    for phase in (0.3, 0.77):
        a = walks.noise_loop(phase, DIM, radius=1.2, seed=1)
        assert np.allclose(a, walks.noise_loop(phase + 5.0, DIM, radius=1.2, seed=1), atol=1e-5)
    assert z0.dtype == np.float32
    assert z0.shape == (DIM,)


def test_noise_loop_travels_further_with_larger_radius_and_not_at_all_at_zero() -> None:
    phases = np.linspace(0.0, 1.0, 201)

    def path_length(radius: float) -> float:
        zs = np.stack([walks.noise_loop(float(p), DIM, radius=radius) for p in phases])
        return float(np.linalg.norm(np.diff(zs, axis=0), axis=1).sum())

    assert path_length(0.0) == 0.0
    assert 0.0 < path_length(0.2) < path_length(1.0) < path_length(3.0)
    assert np.array_equal(
        walks.noise_loop(0.0, DIM, radius=0.0), walks.noise_loop(0.6, DIM, radius=0.0)
    )


def test_noise_loop_is_continuous() -> None:
    phases = np.linspace(0.0, 1.0, 1001)
    zs = np.stack([walks.noise_loop(float(p), DIM, radius=2.0) for p in phases])
    steps = np.linalg.norm(np.diff(zs, axis=0), axis=1)
    assert steps.max() < 2.0 * steps.mean()  # no jumps anywhere on the loop
    assert dist(zs[0], zs[500]) > 1.0
    # Halving the phase step halves the change: smooth, not just bounded.
    a, b, c = (walks.noise_loop(0.3 + d, DIM, radius=2.0) for d in (0.0, 1e-4, 2e-4))
    assert dist(a, b) < 0.05
    assert dist(a, c) == pytest.approx(2 * dist(a, b), rel=0.05)


def test_noise_loop_looks_like_prior_samples() -> None:
    # Across dimensions at one phase...
    z = walks.noise_loop(0.37, 512, radius=1.2, seed=3).astype(np.float64)
    assert 0.7 < float(np.mean(z * z)) < 1.3
    # ...and per dimension over a wide loop.
    zs = np.stack([walks.noise_loop(float(p), DIM, radius=30.0) for p in np.linspace(0, 1, 400)])
    var = np.mean(zs.astype(np.float64) ** 2, axis=0)
    assert 0.7 < float(np.mean(var)) < 1.3
    assert float(np.min(var)) > 0.3


def test_noise_loop_deterministic_and_seeded() -> None:
    a = walks.noise_loop(0.4, DIM, radius=1.5, seed=9)
    assert np.array_equal(a, walks.noise_loop(0.4, DIM, radius=1.5, seed=9))
    assert dist(a, walks.noise_loop(0.4, DIM, radius=1.5, seed=10)) > 1.0


def test_noise_loop_result_is_owned_by_the_caller() -> None:
    a = walks.noise_loop(0.4, DIM)
    a += 100.0
    assert np.all(np.abs(walks.noise_loop(0.4, DIM)) < 50.0)


# --- random_walk ------------------------------------------------------------------------------


def test_random_walk_is_continuous() -> None:
    ts = np.linspace(-3.0, 5.0, 801)
    zs = np.stack([walks.random_walk(float(t), DIM) for t in ts])
    steps = np.linalg.norm(np.diff(zs, axis=0), axis=1)
    assert steps.max() < 3.0 * steps.mean()  # no jumps, also where lattice points come and go
    assert dist(zs[0], zs[-1]) > 1.0
    a, b, c = (walks.random_walk(7.3 + d, DIM) for d in (0.0, 1e-4, 2e-4))
    assert dist(a, b) < 0.01
    assert dist(a, c) == pytest.approx(2 * dist(a, b), rel=0.05)


def test_random_walk_deterministic_and_seeded() -> None:
    a = walks.random_walk(12.3, DIM, seed=4)
    assert np.array_equal(a, walks.random_walk(12.3, DIM, seed=4))
    assert dist(a, walks.random_walk(12.3, DIM, seed=5)) > 1.0
    assert a.dtype == np.float32


def test_random_walk_larger_smoothness_changes_slower() -> None:
    def step(smoothness: float) -> float:
        return float(
            np.mean(
                [
                    dist(
                        walks.random_walk(t, DIM, smoothness=smoothness),
                        walks.random_walk(t + 0.1, DIM, smoothness=smoothness),
                    )
                    for t in np.linspace(0.0, 20.0, 40)
                ]
            )
        )

    assert step(4.0) < 0.5 * step(1.0)


def test_random_walk_stays_near_unit_variance() -> None:
    zs = np.stack([walks.random_walk(float(t), DIM, smoothness=2.0) for t in range(-50, 150, 3)])
    assert 0.7 < float(np.mean(zs.astype(np.float64) ** 2)) < 1.3


def test_random_walk_survives_zero_smoothness() -> None:
    for t in (0.0, 0.5, 1.25):
        assert np.all(np.isfinite(walks.random_walk(t, DIM, smoothness=0.0)))
