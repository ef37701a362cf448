"""The beat in a patch: a fixed tempo or a followed MIDI clock, and quantising to the bar."""

from __future__ import annotations

import torch

from perform.core.loader import load_patch
from perform.core.params import ParamStore
from perform.engine import Engine
from perform.models.host import ModelHost
from perform.tempo import FixedTempo
from perform.tempo.midi_clock import TICKS_PER_BEAT, ClockFollower

PATCH = """\
import numpy as np
from perform import param

scene = param("scene", 0, 0, 7)
seen = []


def frame(ctx):
    seen.append((ctx.beat, ctx.bpm, ctx.on(1), ctx.on(4), ctx.quantize(int(scene), 4)))
    return np.zeros((ctx.height, ctx.width, 3), np.uint8)
"""


def engine_for(tmp_path, tempo):
    path = tmp_path / "beats.py"
    path.write_text(PATCH)
    store, models = ParamStore(), ModelHost(8, 8, torch.device("cpu"))
    engine = Engine(store, models, width=8, height=8, fps=10, tempo=tempo)
    patch = load_patch(path, 1, models)
    engine.offer(patch)
    return engine, store, patch.module.seen


def test_a_scene_knob_quantized_to_the_bar_switches_only_on_the_bar(tmp_path):
    engine, store, seen = engine_for(tmp_path, FixedTempo(120.0))  # 2 beats a second
    for i in range(25):  # 2.5 s at 10 fps: five beats
        if i == 3:
            store.set("scene", 5)  # turned in the middle of the first bar
        engine.render_one(i / 10)
    beats = [b for b, *_ in seen]
    assert beats == [i / 10 * 2 for i in range(25)]
    assert [i for i, (_, _, on_beat, _, _) in enumerate(seen) if on_beat] == [0, 5, 10, 15, 20]
    assert [i for i, (_, _, _, on_bar, _) in enumerate(seen) if on_bar] == [0, 20]
    scenes = [s for *_, s in seen]
    assert scenes[:20] == [0] * 20 and scenes[20:] == [5] * 5  # the new scene waits for bar 2


def test_a_followed_midi_clock_drives_ctx_beat_and_bpm(tmp_path):
    clock = ClockFollower()
    engine, _, seen = engine_for(tmp_path, clock)
    period = 60.0 / (128.0 * TICKS_PER_BEAT)
    clock.start(0.0)
    for k in range(4 * TICKS_PER_BEAT + 1):  # four beats at 128 BPM, on the show's clock
        clock.tick(k * period)
    engine.render_one(4 * TICKS_PER_BEAT * period)
    beat, bpm, *_ = seen[-1]
    assert abs(beat - 4.0) < 1e-6 and abs(bpm - 128.0) < 0.01
    clock.stop(4.0)
    engine.render_one(10.0)  # stopped: the picture's beat holds
    assert seen[-1][0] == beat
