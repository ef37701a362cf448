"""MIDI mappings: what a performer sees when a fader, knob, pad or pedal plays a param.

No ports here: mido messages go straight into the mapper,
with a small stand-in for the param store.
"""

from __future__ import annotations

import math
from itertools import pairwise
from pathlib import Path

import mido
import pytest

from perform.core.params import ParamSpec
from perform.midi.curves import CURVES
from perform.midi.mapper import MidiMapper
from perform.midi.mapping import Mapping, MappingError

SHIPPED = Path(__file__).resolve().parent.parent / "mappings" / "midi"


class Show:
    """A stand-in for the param store: declared specs and their current targets."""

    def __init__(self, *specs: ParamSpec) -> None:
        self.specs = {spec.name: spec for spec in specs}
        self.values: dict[str, object] = {spec.name: spec.default for spec in specs}

    def spec(self, name: str) -> ParamSpec | None:
        return self.specs.get(name)

    def current(self, name: str) -> object:
        return self.values.get(name)

    def declare(self, spec: ParamSpec) -> None:
        self.specs[spec.name] = spec
        self.values[spec.name] = spec.default

    def play(self, mapper: MidiMapper, *messages: mido.Message) -> dict[str, object]:
        """Feed messages as the port layer would, applying updates as the store would."""
        for message in messages:
            for name, value in mapper.handle(message, self.current):
                self.values[name] = self.specs[name].coerce(value)
        return self.values


def mapper_for(text: str, *specs: ParamSpec) -> tuple[MidiMapper, Show]:
    show = Show(*specs)
    return MidiMapper(Mapping.parse(text), show.spec), show


def cc(control: int, value: int, channel: int = 0) -> mido.Message:
    return mido.Message("control_change", channel=channel, control=control, value=value)


def note(number: int, velocity: int = 127, channel: int = 0) -> mido.Message:
    return mido.Message("note_on", channel=channel, note=number, velocity=velocity)


def release(number: int, channel: int = 0) -> mido.Message:
    return mido.Message("note_off", channel=channel, note=number, velocity=64)


LEVEL = ParamSpec("level", 0.0, 0.0, 1.0)
FADER = """
[[bind]]
cc = 7
param = "level"
takeover = "jump"
"""


# Curves, range, invert


@pytest.mark.parametrize("name", list(CURVES))
def test_each_curve_spans_the_whole_range_and_only_rises(name: str) -> None:
    curve = CURVES[name]
    points = [curve.forward(i / 127) for i in range(128)]
    assert points[0] == pytest.approx(0.0, abs=1e-12)
    assert points[-1] == pytest.approx(1.0)
    assert all(a < b for a, b in pairwise(points))
    assert all(curve.inverse(y) == pytest.approx(i / 127, abs=1e-9)
               for i, y in enumerate(points))


def test_curves_put_the_fine_control_where_their_names_say() -> None:
    half = {name: curve.forward(0.5) for name, curve in CURVES.items()}
    assert half["exp"] < 0.2 < half["linear"] == 0.5 < 0.8 < half["log"]
    s = CURVES["s"].forward
    assert s(0.5) == pytest.approx(0.5)
    assert s(0.1) - s(0.0) < 0.1 < s(0.55) - s(0.45)  # slow at the ends, quick in the middle


def test_a_fader_sweeps_the_params_own_range() -> None:
    mapper, show = mapper_for(FADER, ParamSpec("level", 2.0, -1.0, 3.0))
    assert show.play(mapper, cc(7, 0))["level"] == -1.0
    assert show.play(mapper, cc(7, 127))["level"] == 3.0
    assert show.play(mapper, cc(7, 64))["level"] == pytest.approx(-1 + 4 * 64 / 127)


def test_a_range_in_the_file_narrows_the_fader_and_the_param_still_clamps() -> None:
    mapper, show = mapper_for(FADER + "range = [0.25, 0.5]\n", ParamSpec("level", 0.3, 0, 10))
    assert show.play(mapper, cc(7, 0))["level"] == 0.25
    assert show.play(mapper, cc(7, 127))["level"] == 0.5
    mapper, show = mapper_for(FADER + "range = [0, 100]\n", LEVEL)
    assert mapper.handle(cc(7, 127), show.current) == [("level", 1.0)]  # within the patch's max


def test_inverted_fader_runs_top_to_bottom() -> None:
    mapper, show = mapper_for(FADER + "invert = true\n", LEVEL)
    assert show.play(mapper, cc(7, 0))["level"] == 1.0
    assert show.play(mapper, cc(7, 127))["level"] == 0.0


def test_exp_curve_gives_the_fader_fine_control_at_the_bottom() -> None:
    mapper, show = mapper_for(FADER + 'curve = "exp"\n', LEVEL)
    assert show.play(mapper, cc(7, 64))["level"] < 0.15
    assert show.play(mapper, cc(7, 127))["level"] == 1.0


def test_int_params_round_and_bool_params_switch_at_64() -> None:
    text = FADER + '\n[[bind]]\ncc = 8\nparam = "on"\ntakeover = "jump"\n'
    mapper, show = mapper_for(text, ParamSpec("level", 0, 0, 10), ParamSpec("on", False))
    assert show.play(mapper, cc(7, 70))["level"] == 6
    assert isinstance(show.values["level"], int)
    assert show.play(mapper, cc(8, 64))["on"] is True
    assert show.play(mapper, cc(8, 63))["on"] is False


# High resolution: 14-bit CC pairs and pitch bend


def test_14_bit_pair_msb_sets_coarse_then_lsb_refines() -> None:
    text = '[[bind]]\ncc14 = [1, 33]\nparam = "level"\ntakeover = "jump"\n'
    mapper, show = mapper_for(text, LEVEL)
    assert mapper.handle(cc(33, 100), show.current) == []  # an LSB before any MSB means nothing
    assert show.play(mapper, cc(1, 64))["level"] == pytest.approx(64 * 128 / 16383)
    assert show.play(mapper, cc(33, 127))["level"] == pytest.approx((64 * 128 + 127) / 16383)
    assert show.play(mapper, cc(33, 5))["level"] == pytest.approx((64 * 128 + 5) / 16383)
    assert show.play(mapper, cc(1, 127), cc(33, 127))["level"] == 1.0
    assert show.play(mapper, cc(1, 0))["level"] == 0.0  # a new MSB resets the LSB


def test_pitch_bend_covers_the_full_range() -> None:
    mapper, show = mapper_for('[[bind]]\npitchbend = true\nparam = "zoom"\n',
                              ParamSpec("zoom", 1.0, 0.5, 2.0))
    bend = mido.Message
    assert show.play(mapper, bend("pitchwheel", pitch=-8192))["zoom"] == 0.5
    assert show.play(mapper, bend("pitchwheel", pitch=8191))["zoom"] == 2.0
    assert show.play(mapper, bend("pitchwheel", pitch=0))["zoom"] == pytest.approx(1.25, abs=1e-4)


def test_aftertouch_and_program_change_drive_params() -> None:
    text = """
[[bind]]
aftertouch = true
param = "glow"

[[bind]]
aftertouch = 60
param = "key"

[[bind]]
program = true
param = "scene"
range = [0, 127]
"""
    mapper, show = mapper_for(text, ParamSpec("glow", 0.0, 0, 1), ParamSpec("key", 0.0, 0, 1),
                              ParamSpec("scene", 0, 0, 7))
    show.play(mapper, mido.Message("aftertouch", value=127),
              mido.Message("polytouch", note=60, value=0),
              mido.Message("program_change", program=5))
    assert show.values == {"glow": 1.0, "key": 0.0, "scene": 5}
    assert mapper.handle(mido.Message("polytouch", note=61, value=99), show.current) == []


# Relative encoders


@pytest.mark.parametrize(("relative", "up", "down"),
                         [("twos", 1, 127), ("offset", 65, 63), ("sign", 1, 65)])
def test_relative_encoders_accumulate_and_clamp(relative: str, up: int, down: int) -> None:
    text = f'[[bind]]\ncc = 16\nparam = "level"\nrelative = "{relative}"\nstep = 0.1\n'
    mapper, show = mapper_for(text, ParamSpec("level", 0.5, 0.0, 1.0))
    assert show.play(mapper, cc(16, up), cc(16, up))["level"] == pytest.approx(0.7)
    assert show.play(mapper, cc(16, down))["level"] == pytest.approx(0.6)
    assert show.play(mapper, *[cc(16, up)] * 10)["level"] == 1.0
    assert show.play(mapper, *[cc(16, down)] * 30)["level"] == 0.0


def test_relative_encoder_counts_fast_turns_and_ignores_zero() -> None:
    text = '[[bind]]\ncc = 16\nparam = "level"\nrelative = "twos"\nstep = 0.01\n'
    mapper, show = mapper_for(text, ParamSpec("level", 0.5, 0.0, 1.0))
    assert show.play(mapper, cc(16, 5))["level"] == pytest.approx(0.55)  # 5 ticks at once
    assert show.play(mapper, cc(16, 128 - 20))["level"] == pytest.approx(0.35)
    assert mapper.handle(cc(16, 0), show.current) == []


def test_relative_encoder_moves_an_int_param_a_whole_step_per_tick() -> None:
    text = '[[bind]]\ncc = 16\nparam = "seed"\nrelative = "offset"\n'
    mapper, show = mapper_for(text, ParamSpec("seed", 7, 0, 1000))
    assert show.play(mapper, cc(16, 65))["seed"] == 15  # 1/127 of the range: about 8
    mapper, show = mapper_for(text, ParamSpec("seed", 7, 0, 20))
    assert show.play(mapper, cc(16, 65), cc(16, 65), cc(16, 63))["seed"] == 8


# Soft takeover


def test_pickup_holds_the_param_until_the_fader_reaches_it() -> None:
    text = '[[bind]]\ncc = 7\nparam = "level"\n'  # pickup is the default for a fader
    mapper, show = mapper_for(text, ParamSpec("level", 0.5, 0.0, 1.0))
    assert mapper.handle(cc(7, 0), show.current) == []
    assert mapper.handle(cc(7, 20), show.current) == []
    assert show.values["level"] == 0.5
    assert show.play(mapper, cc(7, 64))["level"] == pytest.approx(64 / 127)  # within a step
    assert show.play(mapper, cc(7, 10))["level"] == pytest.approx(10 / 127)  # now it follows


def test_pickup_catches_a_fader_that_jumps_over_the_value() -> None:
    mapper, show = mapper_for('[[bind]]\ncc = 7\nparam = "level"\n',
                              ParamSpec("level", 0.5, 0.0, 1.0))
    assert mapper.handle(cc(7, 30), show.current) == []
    assert show.play(mapper, cc(7, 100))["level"] == pytest.approx(100 / 127)


def test_pickup_lets_go_when_something_else_moves_the_param() -> None:
    mapper, show = mapper_for('[[bind]]\ncc = 7\nparam = "level"\n',
                              ParamSpec("level", 0.0, 0.0, 1.0))
    show.play(mapper, cc(7, 0), cc(7, 40))
    assert show.values["level"] == pytest.approx(40 / 127)
    show.values["level"] = 0.9  # OSC or a preset moved it
    assert mapper.handle(cc(7, 41), show.current) == []
    assert show.play(mapper, cc(7, 120))["level"] == pytest.approx(120 / 127)


def test_jump_takeover_moves_the_param_at_once() -> None:
    mapper, show = mapper_for(FADER, ParamSpec("level", 0.5, 0.0, 1.0))
    assert show.play(mapper, cc(7, 0))["level"] == 0.0


def test_reloading_the_mapping_keeps_a_picked_up_fader_picked_up() -> None:
    text = '[[bind]]\ncc = 7\nparam = "level"\n'
    mapper, show = mapper_for(text, ParamSpec("level", 0.0, 0.0, 1.0))
    show.play(mapper, cc(7, 0), cc(7, 50))
    mapper.reload(Mapping.parse("# a comment moves the binding down a line\n" + text))
    assert show.play(mapper, cc(7, 52))["level"] == pytest.approx(52 / 127)
    mapper.reload(Mapping.parse(text + 'curve = "exp"\n'))  # a changed binding starts over
    assert mapper.handle(cc(7, 53), show.current) == []


# Buttons and pads


def pad(mode: str, extra: str = "") -> str:
    return f'[[bind]]\nnote = 36\nparam = "flash"\nmode = "{mode}"\n{extra}'


def test_momentary_pad_is_on_while_held() -> None:
    mapper, show = mapper_for(pad("momentary"), ParamSpec("flash", False))
    assert show.play(mapper, note(36))["flash"] is True
    assert show.play(mapper, release(36))["flash"] is False


def test_note_on_with_velocity_zero_is_a_release() -> None:
    mapper, show = mapper_for(pad("momentary"), ParamSpec("flash", 0.0, 0.0, 2.0))
    assert show.play(mapper, note(36, 90))["flash"] == 2.0
    assert show.play(mapper, note(36, 0))["flash"] == 0.0


def test_toggle_flips_on_each_press_and_ignores_releases() -> None:
    mapper, show = mapper_for(pad("toggle"), ParamSpec("flash", False))
    assert show.play(mapper, note(36))["flash"] is True
    assert show.play(mapper, release(36))["flash"] is True
    assert show.play(mapper, note(36), note(36, 0))["flash"] is False
    assert show.play(mapper, note(36, 1), release(36))["flash"] is True


def test_toggle_reads_the_param_so_osc_changes_are_respected() -> None:
    mapper, show = mapper_for(pad("toggle"), ParamSpec("flash", 0.0, 0.0, 1.0))
    show.values["flash"] = 0.8  # nearer on than off: the next press turns it off
    assert show.play(mapper, note(36))["flash"] == 0.0


def scene_pads(count: int) -> str:
    """Radio buttons: pad n (note 36 + n) chooses scene n."""
    return "\n".join(f'[[bind]]\nnote = {36 + n}\nparam = "scene"\nmode = "trigger"\n'
                     f"value = {n}\nled_on = 1\n" for n in range(count))


def test_trigger_sets_its_value_on_press_only() -> None:
    mapper, show = mapper_for(scene_pads(3), ParamSpec("scene", 0, 0, 7))
    assert show.play(mapper, note(38))["scene"] == 2
    assert show.play(mapper, release(38), note(37, 0))["scene"] == 2
    assert show.play(mapper, note(37))["scene"] == 1


def test_velocity_pad_sets_the_value_from_how_hard_it_is_hit() -> None:
    mapper, show = mapper_for(pad("velocity"), ParamSpec("flash", 0.0, 0.0, 1.0))
    assert show.play(mapper, note(36, 127))["flash"] == 1.0
    assert show.play(mapper, note(36, 32))["flash"] == pytest.approx(32 / 127)
    assert show.play(mapper, release(36), note(36, 0))["flash"] == pytest.approx(32 / 127)


def test_cc_buttons_toggle_like_the_nanokontrol2() -> None:
    mapper, show = mapper_for('[[bind]]\ncc = 41\nparam = "play"\nmode = "toggle"\n',
                              ParamSpec("play", False))
    assert show.play(mapper, cc(41, 127), cc(41, 0))["play"] is True
    assert show.play(mapper, cc(41, 127), cc(41, 0))["play"] is False


# Channels and bad input


def test_a_binding_hears_only_its_channel_unless_it_listens_to_all() -> None:
    text = """channel = 2

[[bind]]
cc = 7
param = "level"
takeover = "jump"

[[bind]]
cc = 8
param = "other"
channel = "all"
takeover = "jump"
"""
    mapper, show = mapper_for(text, LEVEL, ParamSpec("other", 0.0, 0, 1))
    assert mapper.handle(cc(7, 127, channel=0), show.current) == []  # channel 1 on hardware
    assert show.play(mapper, cc(7, 127, channel=1))["level"] == 1.0
    assert show.play(mapper, cc(8, 127, channel=15))["other"] == 1.0


def test_messages_nobody_maps_are_ignored() -> None:
    mapper, show = mapper_for(FADER, LEVEL)
    for message in (mido.Message("clock"), mido.Message("sysex", data=[1, 2, 3]),
                    mido.Message("start"), note(7), cc(8, 127), mido.Message("pitchwheel")):
        assert mapper.handle(message, show.current) == []


def test_duplicate_binding_is_refused_at_the_second_ones_line() -> None:
    text = """name = "twice"

[[bind]]
cc = 7
param = "level"

[[bind]]
cc = 7
param = "other"

[[bind]]
cc14 = [39, 7]   # hears cc 7 too
param = "level"
"""
    with pytest.raises(MappingError) as caught:
        Mapping.parse(text, "set.toml")
    assert (caught.value.file, caught.value.line) == ("set.toml", 11)
    assert str(caught.value).startswith("set.toml:11: duplicate binding: cc14 39/7 on channel 1")
    assert "line 3" in str(caught.value)


def test_one_fader_may_drive_two_params_and_two_controls_one_param() -> None:
    text = '[[bind]]\ncc = 7\nparam = "a"\n\n[[bind]]\ncc = 7\nparam = "b"\n\n' \
           '[[bind]]\ncc = 8\nparam = "a"\n\n[[bind]]\ncc = 7\nchannel = 2\nparam = "a"\n'
    assert len(Mapping.parse(text).bindings) == 4


def test_a_missing_file_is_refused_with_its_name(tmp_path: Path) -> None:
    with pytest.raises(MappingError) as caught:
        Mapping.load(tmp_path / "gone.toml")
    assert (caught.value.file, caught.value.line) == (str(tmp_path / "gone.toml"), None)
    assert str(caught.value).startswith(f"{tmp_path / 'gone.toml'}: cannot read the file")


def test_bad_toml_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text('name = "x"\n\n[[bind]]\ncc = 7\nparam = walk/speed\n')
    with pytest.raises(MappingError) as caught:
        Mapping.load(path)
    assert caught.value.file == str(path)
    assert caught.value.line == 5
    assert str(caught.value).startswith(f"{path}:5: not valid TOML")


@pytest.mark.parametrize(("body", "bad", "says"), [
    ('cc = 7\nparam = "level"\ncurve = "expo"', 6, "curve is one of linear, exp, log, s"),
    ('param = "level"\ncc = 128', 5, "cc is a whole number from 0 to 127"),
    ('cc = 7\nparam = "level"\nchannel = 17', 6, "channel is 1 to 16"),
    ('cc = 7\nparam = "level"\nrnage = [0, 1]', 6, "unknown key 'rnage'"),
    ('cc = 7\nparam = "level"\nrange = [1, 0]', 6, "use invert = true"),
    ('pitchbend = true\nparam = "level"\nmode = "toggle"', 6, "mode only applies to cc and"),
    ('note = 1\nparam = "level"\ntakeover = "pickup"', 6, "takeover only applies to faders"),
    ('cc = 7\nparam = "level"\nrelative = "twos"\nmode = "toggle"', 6, "cannot also be"),
    ('cc = 7\nnote = 3\nparam = "level"', 3, "exactly one control"),
    ('cc = 7\nparam = "level"\nstep = 0.1', 6, "step only applies to relative encoders"),
    ('cc = 7\nparam = "/level"', 5, "bad param name"),
    ("cc = 7", 3, "needs param"),
])
def test_a_mistake_in_a_binding_points_at_its_line(body: str, bad: int, says: str) -> None:
    text = f'name = "x"\n\n[[bind]]\n{body}\n'
    with pytest.raises(MappingError) as caught:
        Mapping.parse(text, "x.toml")
    assert caught.value.line == bad, str(caught.value)
    assert says in caught.value.message


def test_an_undeclared_param_is_kept_reported_and_played_once_declared() -> None:
    mapper, show = mapper_for(FADER.replace("level", "later") + FADER.replace("cc = 7", "cc = 8"),
                              LEVEL)
    assert mapper.unbound(show.specs) == ["later"]
    assert mapper.handle(cc(7, 127), show.current) == []
    show.declare(ParamSpec("later", 0.0, 0.0, 10.0))  # a save adds the param
    assert mapper.unbound(show.specs) == []
    assert show.play(mapper, cc(7, 127))["later"] == 10.0


# Smoothing


def test_smoothing_glides_to_the_fader_over_time() -> None:
    mapper, show = mapper_for(FADER + "smooth = 0.1\n", LEVEL)
    assert mapper.handle(cc(7, 127), show.current) == []  # nothing jumps
    values = []
    for _ in range(120):  # two seconds of frames: 20 time constants
        for name, value in mapper.advance(1 / 60):
            show.values[name] = value
            values.append(value)
    assert values[0] == pytest.approx(1 - math.exp(-1 / 6))  # one frame of a 0.1 s glide
    assert values[5] == pytest.approx(1 - math.exp(-1))  # 0.1 s in: 63 % of the way
    assert all(a < b for a, b in pairwise(values))
    assert values[-1] == 1.0
    assert mapper.advance(1 / 60) == []  # settled: nothing left to send


# Feedback: values back to the controller


@pytest.mark.parametrize("curve", list(CURVES))
@pytest.mark.parametrize("invert", [False, True])
def test_cc_feedback_round_trips_within_one_step(curve: str, invert: bool) -> None:
    text = f'{FADER}curve = "{curve}"\ninvert = {str(invert).lower()}\n'
    mapper, show = mapper_for(text, ParamSpec("level", 0.0, -2.0, 5.0))
    for raw in range(128):
        show.play(mapper, cc(7, raw))
        (message,) = mapper.feedback("level", show.values["level"])
        assert message.control == 7
        assert abs(message.value - raw) <= 1
        assert mapper.handle(message, show.current) == [("level", show.values["level"])]


def test_toggle_feedback_lights_the_pad_with_its_colours() -> None:
    mapper, show = mapper_for(pad("toggle", "led_on = 60\nled_off = 12\n"),
                              ParamSpec("flash", False))
    assert mapper.feedback("flash", False) == [note(36, 12)]
    show.play(mapper, note(36))
    (lit,) = mapper.feedback("flash", show.values["flash"])
    assert lit == note(36, 60)
    show.play(mapper, note(36), release(36))
    assert mapper.feedback("flash", show.values["flash"]) == [note(36, 12)]


def test_trigger_feedback_lights_only_the_chosen_scene() -> None:
    mapper, _ = mapper_for(scene_pads(3), ParamSpec("scene", 0, 0, 7))
    assert mapper.feedback("scene", 1) == [note(36, 0), note(37, 1), note(38, 0)]


def test_pitch_bend_and_14_bit_feedback_round_trip() -> None:
    text = ('[[bind]]\npitchbend = true\nparam = "zoom"\n\n'
            '[[bind]]\ncc14 = [0, 32]\nparam = "zoom"\ntakeover = "jump"\n')
    mapper, show = mapper_for(text, ParamSpec("zoom", 1.0, 0.5, 2.0))
    for pitch in (-8192, -1, 0, 1234, 8191):
        show.play(mapper, mido.Message("pitchwheel", pitch=pitch))
        bend, msb, lsb = mapper.feedback("zoom", show.values["zoom"])
        assert bend.pitch == pitch
        assert (msb.control, lsb.control) == (0, 32)
        assert msb.value << 7 | lsb.value == pitch + 8192


def test_binding_feedback_works_without_a_spec() -> None:
    (binding,) = Mapping.parse(FADER + "range = [0, 10]\n").bindings
    assert binding.feedback(5.0) == [cc(7, 64)]
    assert Mapping.parse(pad("momentary")).bindings[0].feedback(True) == [note(36, 127)]


# The shipped mappings


@pytest.mark.parametrize("path", sorted(SHIPPED.glob("*.toml")), ids=lambda p: p.name)
def test_every_shipped_mapping_loads(path: Path) -> None:
    mapping = Mapping.load(path)
    assert mapping.bindings
    assert mapping.name


def test_shipped_mappings_are_all_there() -> None:
    assert {p.name for p in SHIPPED.glob("*.toml")} == {
        "nanokontrol2.toml", "apc_mini.toml", "launch_control_xl.toml", "generic.toml"}


def test_nanokontrol2_plays_the_default_show_out_of_the_box() -> None:
    show = Show(ParamSpec("walk/speed", 0.05, 0.0, 1.0, smooth=0.5),
                ParamSpec("walk/size", 1.2, 0.0, 4.0, smooth=0.5))
    mapper = MidiMapper(Mapping.load(SHIPPED / "nanokontrol2.toml"), show.spec)
    assert "walk/speed" not in mapper.unbound(show.specs)
    show.play(mapper, *[cc(0, v) for v in range(0, 128, 8)],
              *[cc(1, v) for v in range(127, -1, -8)])
    assert show.values["walk/speed"] == pytest.approx(CURVES["exp"].forward(120 / 127))
    assert show.values["walk/size"] == pytest.approx(4 * 7 / 127)


def test_apc_mini_grid_counts_rows_from_the_top() -> None:
    mapping = Mapping.load(SHIPPED / "apc_mini.toml")
    notes = {b.param: b.number for b in mapping.bindings if b.source == "note"}
    assert (notes["grid/1/1"], notes["grid/8/1"], notes["grid/8/8"]) == (56, 0, 7)
