"""Triggers (buttons that fire) and seed knobs, from the store to the frame."""

from __future__ import annotations

import math
import socket
import time

import mido
import numpy as np
import pytest
from conftest import engine_by_hand, msg, wait_for

from perform import walks
from perform.core.crossfade import Crossfade, smoothstep
from perform.core.params import ParamError, ParamSpec, ParamStore
from perform.midi.mapper import MidiMapper
from perform.midi.mapping import Mapping

PATCH = """\
import numpy as np
from perform import seed, trigger, walks

flash = trigger("fx/flash")
look = seed("look/seed", 7, max=999)


def frame(ctx):
    if flash:
        ctx.state["fired on"] = ctx.state.get("fired on", []) + [ctx.frame]
    ctx.state["ago"] = flash.ago
    ctx.state["glow"] = flash.fade(0.5)
    ctx.state["count"] = flash.count
    ctx.state["z"] = walks.seed(look, 16)
    return np.zeros((ctx.height, ctx.width, 3), np.float32)
"""


def trigger_spec(name: str = "fx/flash") -> ParamSpec:
    return ParamSpec(name, 0, control="trigger")


def engine_for(tmp_path):
    return engine_by_hand(tmp_path, PATCH)


def test_a_trigger_counts_fires_and_ignores_releases():
    store = ParamStore()
    store.declare([trigger_spec()])
    for value in (None, 1, 0, 127, "off", 0.0, True, False, "1", (1.0,)):
        store.set("fx/flash", value)
    assert store.target("fx/flash") == 6  # None, 1, 127, True, "1", (1.0,)
    with pytest.raises(ParamError, match="trigger"):
        store.set("fx/flash", float("nan"))
    assert store.set_many({"fx/flash": 40}) == {
        "fx/flash": "fx/flash is a trigger: it fires, it keeps no value to set"}
    store.declare([trigger_spec(), ParamSpec("level", 0.5, 0.0, 1.0)])  # a save keeps the count
    assert store.target("fx/flash") == 6
    store.declare([ParamSpec("fx/flash", 0, 0, 10)])  # now a plain int: starts afresh
    assert store.target("fx/flash") == 0
    assert store.describe()["fx/flash"]["control"] == ""


def test_a_plain_param_still_needs_a_value():
    store = ParamStore()
    store.declare([ParamSpec("level", 0.5, 0.0, 1.0)])
    with pytest.raises(ParamError, match="needs a value"):
        store.set("level", None)


def test_a_trigger_is_true_on_one_frame_per_fire_and_counts_seconds_since(tmp_path):
    engine, store, _ = engine_for(tmp_path)
    assert engine.state["ago"] == math.inf and engine.state["count"] == 0
    assert engine.state["glow"] == 0.0  # never fired: no flash
    engine.render_one(0.1)
    store.set("fx/flash", 1)
    for t in (0.2, 0.3, 0.4):
        engine.render_one(t)
    assert engine.state["fired on"] == [2]  # the first frame after the fire, and only it
    assert engine.state["ago"] == pytest.approx(0.2)  # show time since the frame that saw it
    assert engine.state["glow"] == pytest.approx(0.6)  # 0.2 s into a 0.5 s fade
    store.set("fx/flash", None)
    store.set("fx/flash", None)  # two fires between frames: one true frame, count 3
    engine.render_one(0.5)
    engine.render_one(0.6)
    assert engine.state["fired on"] == [2, 5] and engine.state["count"] == 3


def test_a_pad_mapped_to_a_trigger_fires_once_per_hit():
    store = ParamStore()
    store.declare([trigger_spec()])
    binding = '[[bind]]\nnote = 36\nparam = "fx/flash"\nmode = "momentary"\n'
    mapper = MidiMapper(Mapping.parse(binding), store.spec)
    hits = [mido_note(36, 127), mido_note(36, 0), mido_note(36, 90), mido_note(36, 0)]
    for message in hits:
        for name, value in mapper.handle(message, store.target):
            store.set(name, value)
    assert store.target("fx/flash") == 2
    assert mapper.feedback("fx/flash", 2) == []  # no LED left lit by a count


def mido_note(number: int, velocity: int) -> mido.Message:
    return mido.Message("note_on", note=number, velocity=velocity)


def test_a_seed_knob_crossfade_slerps_the_two_latents_while_its_number_moves(tmp_path):
    engine, store, fader = engine_for(tmp_path)
    seven, twelve = walks.seed_latent(7, 16), walks.seed_latent(12, 16)
    assert np.allclose(engine.state["z"], seven)
    fader.start(Crossfade("chorus", store.coerce_many({"look/seed": 12})[0], 2.0))
    engine.render_one(1.0)  # the fade's first frame
    values = engine.render_one(2.0).params  # halfway
    eased = smoothstep(0.5)
    assert values["look/seed"] == pytest.approx(7 + 5 * eased)  # the knob shows the way
    assert np.allclose(engine.state["z"], walks.slerp(seven, twelve, eased), atol=1e-6)
    assert not np.allclose(engine.state["z"], walks.seed(values["look/seed"], 16), atol=1e-3)
    engine.render_one(3.0)
    assert np.allclose(engine.state["z"], twelve) and fader.running() is None
    store.set("look/seed", 7.5)  # by hand: the neighbours' morph, as before
    engine.render_one(3.1)
    assert np.allclose(engine.state["z"], walks.seed(7.5, 16))


def test_osc_fires_a_trigger_without_arguments_and_the_patch_sees_each_fire(tmp_path, live_show):
    (tmp_path / "show.py").write_text(PATCH)
    live = live_show(tmp_path / "show.py")
    store, state = live.show.store, live.show.engine.state
    wait_for(lambda: "fx/flash" in store.names(), what="the patch")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        for packet in (msg("/fx/flash"), msg("/fx/flash", 0), msg("/fx/flash", 1.0)):
            sender.sendto(packet, ("127.0.0.1", live.osc_port))
            time.sleep(0.2)  # a few frames apart: one true frame each
    wait_for(lambda: store.target("fx/flash") == 2, what="two fires, the release ignored")
    wait_for(lambda: len(state.get("fired on", [])) == 2, what="the patch seeing both")
    assert state["ago"] < 1.0
