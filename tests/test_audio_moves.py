"""The audio idioms a patch uses: hits, pulses, pushes, chroma palettes, travel."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from perform import audio
from perform.audio.features import REST, AudioFeatures
from perform.patch import Ctx


def frames(features: list[AudioFeatures], dt: float = 0.1) -> list[Ctx]:
    """Successive frames hearing `features`, sharing one state as the engine's do."""
    state: dict = {}
    previous = REST
    found = []
    for i, now in enumerate(features):
        found.append(Ctx(t=i * dt, frame=i, dt=dt, fps=1 / dt, width=8, height=8, bpm=120.0,
                         params={}, state=state, audio=now, prev_audio=previous))
        previous = now
    return found


def heard(onsets: int, low: int = 0, level: float = 0.0) -> AudioFeatures:
    return AudioFeatures(onsets=onsets, band_onset_counts={"low": low, "high": 0}, level=level)


def test_a_hit_is_the_first_frame_after_an_onset_once_per_onset() -> None:
    ctxs = frames([heard(0), heard(1, low=1), heard(1, low=1), heard(3, low=1), REST])
    assert [c.hit() for c in ctxs] == [False, True, False, True, False]  # REST: reset, no hit
    assert [c.hit("low") for c in ctxs] == [False, True, False, False, False]
    assert not any(c.hit("high") for c in ctxs)


def test_a_pulse_jumps_on_a_hit_and_decays_with_time() -> None:
    ctxs = frames([heard(0), heard(1), heard(1), heard(1), heard(2)])
    values = [audio.pulse(c, decay=0.2) for c in ctxs]
    assert values[0] == 0.0 and values[1] == 1.0 and values[4] == 1.0
    assert audio.pulse(ctxs[2], decay=0.2) == values[2]  # asked again in its frame: the same
    assert values[2] == pytest.approx(math.exp(-0.5)) and values[3] == pytest.approx(math.exp(-1))


def test_a_push_moves_the_chosen_layers_toward_the_hit_latent() -> None:
    ws, target = torch.zeros(6, 4), torch.ones(6, 4)
    ctxs = frames([heard(0, low=0), heard(1, low=1)])
    assert torch.equal(audio.push(ctxs[0], ws, target, "low", layers=range(2)), ws)
    pushed = audio.push(ctxs[1], ws, target, "low", amount=0.5, layers=range(2))
    assert torch.equal(pushed[:2], torch.full((2, 4), 0.5)) and torch.equal(pushed[2:], ws[2:])
    assert torch.equal(ws, torch.zeros(6, 4))  # the caller's latent is left alone
    z = audio.push(frames([heard(0), heard(1)])[1], np.zeros(3), np.ones(3))
    assert np.array_equal(z, np.ones(3))


def test_a_chroma_blend_follows_the_harmony_and_keeps_the_spread() -> None:
    rng = np.random.default_rng(0)
    palette = [rng.standard_normal(512) for _ in range(12)]
    a_only = audio.chroma_blend([0.0] * 9 + [1.0, 0.0, 0.0], palette)
    assert np.allclose(a_only, palette[9])
    chord = audio.chroma_blend([1, 0, 0, 0, 1, 0, 0, 1, 0, 0, 0, 0], palette)  # C major
    assert np.std(chord) == pytest.approx(1.0, abs=0.1)
    assert np.allclose(audio.chroma_blend([0.0] * 12, palette), palette[0])
    ws = [np.full(4, float(note)) for note in range(12)]
    assert np.allclose(audio.chroma_blend([1.0] + [0.0] * 6 + [1.0] + [0.0] * 4, ws,
                                          average=True), np.full(4, 3.5))  # C and G: between
    with pytest.raises(ValueError, match="12 latents"):
        audio.chroma_blend([1.0] * 12, palette[:5])


def test_travel_speeds_up_with_the_music_without_jumping() -> None:
    ctxs = frames([heard(0, level=0.0), heard(0, level=1.0), heard(0, level=1.0)], dt=0.5)
    positions = [audio.travel(c, base=0.1, follow=0.4) for c in ctxs]
    assert positions == pytest.approx([0.05, 0.30, 0.55])
