"""MIDI learn: which messages count as a touch, and what lands in the performer's mapping file.

No ports: mido messages are built by hand and the mapping files live in a temporary folder.
"""

from __future__ import annotations

import datetime
from pathlib import Path

import mido
import pytest

from perform.core.params import ParamSpec
from perform.midi.learn import LearnError, add_binding, learnable, moved, table_for
from perform.midi.mapping import Mapping

PORT = "nanoKONTROL2 nanoKONTROL2 _ CTRL"
GLOW = ParamSpec("glow", 0.5, 0.0, 1.0)

TWO_FADERS = """\
# My nanoKONTROL2: faders on the walk.
name = "nano"

[[bind]]
cc = 0          # fader 1
param = "walk/speed"

[[bind]]
cc = 1          # fader 2
param = "walk/size"
curve = "exp"
"""


def cc(control: int, channel: int = 0, value: int = 64) -> mido.Message:
    return mido.Message("control_change", channel=channel, control=control, value=value)


def learn(path: Path, message: mido.Message, spec: ParamSpec = GLOW,
          port: str = PORT) -> tuple[Mapping, list[str]]:
    return add_binding(path, table_for(message, spec), port)


def appended(path: Path, before: str) -> str:
    """What learning added after the file's original text."""
    text = path.read_text(encoding="utf-8")
    assert text.startswith(before.rstrip("\n"))
    return text[len(before.rstrip("\n")):]


def hearing(mapping: Mapping, control: int) -> list[str]:
    """The params of the bindings on CC `control`."""
    return [b.param for b in mapping.bindings if b.source == "cc" and b.number == control]


# moved


@pytest.mark.parametrize("message", [
    cc(7, value=0),
    mido.Message("note_on", note=36, velocity=1),
    mido.Message("pitchwheel", pitch=-300),
    mido.Message("aftertouch", value=40),
    mido.Message("polytouch", note=60, value=40),
    mido.Message("program_change", program=3),
], ids=lambda message: message.type)
def test_touching_a_control_counts_as_moving_it(message: mido.Message) -> None:
    assert moved(message)


@pytest.mark.parametrize("message", [
    mido.Message("note_on", note=36, velocity=0),
    mido.Message("note_off", note=36, velocity=64),
    mido.Message("clock"),
    mido.Message("start"),
    mido.Message("stop"),
    mido.Message("sysex", data=[0x7E, 0x00, 0x06, 0x01]),
    mido.Message("songpos", pos=16),
], ids=["note_on velocity 0", "note_off", "clock", "start", "stop", "sysex", "songpos"])
def test_releases_clock_and_sysex_are_not_a_control_moving(message: mido.Message) -> None:
    assert not moved(message)


# learnable


def test_learning_a_param_the_patch_lacks_says_so() -> None:
    with pytest.raises(LearnError, match="no param 'walk/sped'"):
        learnable(None, "walk/sped")


@pytest.mark.parametrize(("spec", "kind"), [
    (ParamSpec("pad/xy", (0.5, 0.5), 0.0, 1.0), "vector"),
    (ParamSpec("title", "hello"), "str"),
])
def test_vector_and_text_params_cannot_be_learned(spec: ParamSpec, kind: str) -> None:
    with pytest.raises(LearnError) as caught:
        learnable(spec, spec.name)
    message = str(caught.value)
    assert repr(spec.name) in message
    assert kind in message
    assert "numbers and switches" in message


@pytest.mark.parametrize("spec", [
    ParamSpec("glow", 0.5, 0.0, 1.0),
    ParamSpec("steps", 3, 1, 8),
    ParamSpec("strobe", False),
], ids=["float", "int", "bool"])
def test_numbers_and_switches_can_be_learned(spec: ParamSpec) -> None:
    assert learnable(spec, spec.name) is spec


# table_for


def test_a_cc_becomes_a_cc_binding_on_its_channel_counted_from_one() -> None:
    assert table_for(cc(7), GLOW) == {"cc": 7, "param": "glow", "channel": 1}
    assert table_for(cc(7, channel=15), GLOW)["channel"] == 16


def test_a_pad_on_a_number_param_is_momentary() -> None:
    message = mido.Message("note_on", channel=9, note=36, velocity=100)
    assert table_for(message, GLOW) == {"note": 36, "param": "glow", "channel": 10}


@pytest.mark.parametrize("message", [
    mido.Message("note_on", note=36, velocity=100),
    cc(41, value=127),
], ids=["note", "cc"])
def test_a_button_on_a_switch_toggles_it(message: mido.Message) -> None:
    table = table_for(message, ParamSpec("strobe", False))
    assert table["mode"] == "toggle"
    assert table["param"] == "strobe"


@pytest.mark.parametrize(("message", "control"), [
    (mido.Message("polytouch", channel=1, note=60, value=30), {"aftertouch": 60}),
    (mido.Message("aftertouch", channel=1, value=30), {"aftertouch": True}),
    (mido.Message("pitchwheel", channel=1, pitch=4000), {"pitchbend": True}),
    (mido.Message("program_change", channel=1, program=5), {"program": True}),
], ids=["polytouch", "aftertouch", "pitchwheel", "program_change"])
def test_other_controls_become_their_own_binding(message: mido.Message,
                                                 control: dict[str, object]) -> None:
    assert table_for(message, GLOW) == {**control, "param": "glow", "channel": 2}


@pytest.mark.parametrize("message", [
    cc(7, channel=4),
    mido.Message("note_on", channel=4, note=36, velocity=100),
    mido.Message("polytouch", channel=4, note=60, value=30),
    mido.Message("aftertouch", channel=4, value=30),
    mido.Message("pitchwheel", channel=4, pitch=4000),
    mido.Message("program_change", channel=4, program=5),
], ids=lambda message: message.type)
@pytest.mark.parametrize("spec", [GLOW, ParamSpec("steps", 3, 1, 8), ParamSpec("strobe", False)],
                         ids=["float", "int", "bool"])
def test_every_learned_control_loads_and_hears_the_message_that_taught_it(
        tmp_path: Path, message: mido.Message, spec: ParamSpec) -> None:
    path = tmp_path / "learned.toml"
    learn(path, message, spec)
    [binding] = Mapping.load(path).bindings
    assert binding.param == spec.name
    assert binding.listens(message.channel)
    assert not binding.listens(message.channel + 1)
    number = getattr(message, "control", getattr(message, "note", None))
    assert binding.number == number


# add_binding: new files


def test_learning_into_a_missing_file_creates_a_loadable_mapping(tmp_path: Path) -> None:
    path = tmp_path / "learned.toml"
    mapping, replaced = learn(path, cc(7))
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# ")  # a header saying what the file is
    assert replaced == []
    loaded = Mapping.load(path)
    assert loaded == mapping
    [binding] = loaded.bindings
    assert (binding.param, binding.source, binding.number, binding.channel) == ("glow", "cc", 7, 0)


def test_learning_into_a_missing_folder_creates_it(tmp_path: Path) -> None:
    path = tmp_path / "mappings" / "midi" / "learned.toml"
    learn(path, cc(7))
    assert hearing(Mapping.load(path), 7) == ["glow"]


def test_the_learned_control_line_says_when_and_from_which_port(tmp_path: Path) -> None:
    path = tmp_path / "learned.toml"
    days = {datetime.date.today().isoformat()}
    learn(path, cc(7))
    days.add(datetime.date.today().isoformat())  # in case midnight passed meanwhile
    control = next(line for line in path.read_text(encoding="utf-8").splitlines()
                   if line.startswith("cc ="))
    assert control.split("#")[0].strip() == "cc = 7"
    assert any(control.endswith(f"# learned {day} from {PORT}") for day in days)


# add_binding: existing files


def test_learning_keeps_the_file_as_written_and_appends_one_binding(tmp_path: Path) -> None:
    path = tmp_path / "nano.toml"
    path.write_text(TWO_FADERS, encoding="utf-8")
    mapping, replaced = learn(path, cc(16))
    added = appended(path, TWO_FADERS)
    assert added.count("[[bind]]") == 1
    assert replaced == []
    assert [b.param for b in Mapping.load(path).bindings] == ["walk/speed", "walk/size", "glow"]
    assert mapping.bindings[-1].number == 16


def test_learning_into_a_file_without_a_final_newline_keeps_its_text(tmp_path: Path) -> None:
    path = tmp_path / "nano.toml"
    before = TWO_FADERS.rstrip("\n")
    path.write_text(before, encoding="utf-8")
    learn(path, cc(16))
    assert appended(path, before).count("[[bind]]") == 1
    assert len(Mapping.load(path).bindings) == 3


def test_learning_a_control_the_file_already_binds_replaces_it(tmp_path: Path) -> None:
    path = tmp_path / "nano.toml"
    path.write_text(TWO_FADERS, encoding="utf-8")
    mapping, replaced = learn(path, cc(0))
    assert replaced == ["walk/speed"]
    loaded = Mapping.load(path)
    assert loaded == mapping
    assert hearing(loaded, 0) == ["glow"]
    assert hearing(loaded, 1) == ["walk/size"]
    assert loaded.bindings[0].curve == "exp"  # the other binding keeps its keys
    assert "# My nanoKONTROL2" in path.read_text(encoding="utf-8")


def test_learning_the_lsb_of_a_14_bit_fader_replaces_the_pair(tmp_path: Path) -> None:
    path = tmp_path / "nano.toml"
    path.write_text('[[bind]]\ncc14 = [0, 32]\nparam = "zoom"\n\n'
                    '[[bind]]\ncc = 1\nparam = "walk/size"\n', encoding="utf-8")
    _, replaced = learn(path, cc(32))
    assert replaced == ["zoom"]
    assert [b.source for b in Mapping.load(path).bindings] == ["cc", "cc"]


def test_the_same_control_on_another_channel_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "nano.toml"
    text = TWO_FADERS + '\n[[bind]]\ncc = 7\nchannel = 2\nparam = "other"\n'
    path.write_text(text, encoding="utf-8")
    _, replaced = learn(path, cc(7, channel=0))
    assert replaced == []
    loaded = Mapping.load(path)
    assert sorted(hearing(loaded, 7)) == ["glow", "other"]
    assert {b.param: b.channel for b in loaded.bindings if b.number == 7} == {"other": 1,
                                                                               "glow": 0}
    assert appended(path, text).count("[[bind]]") == 1


def test_a_binding_on_every_channel_is_replaced_by_the_control_learned_on_one(
        tmp_path: Path) -> None:
    path = tmp_path / "nano.toml"
    path.write_text(TWO_FADERS + '\n[[bind]]\ncc = 7\nchannel = "all"\nparam = "other"\n',
                    encoding="utf-8")
    _, replaced = learn(path, cc(7, channel=5))
    assert replaced == ["other"]
    assert hearing(Mapping.load(path), 7) == ["glow"]


def test_relearning_the_identical_binding_leaves_exactly_one(tmp_path: Path) -> None:
    path = tmp_path / "nano.toml"
    path.write_text(TWO_FADERS, encoding="utf-8")
    learn(path, cc(7))
    _, replaced = learn(path, cc(7))
    assert replaced == []  # it still drives glow: nothing stopped
    loaded = Mapping.load(path)
    assert hearing(loaded, 7) == ["glow"]
    assert [b.param for b in loaded.bindings] == ["walk/speed", "walk/size", "glow"]


def test_relearning_the_only_binding_of_a_file_replaces_it(tmp_path: Path) -> None:
    path = tmp_path / "learned.toml"
    learn(path, cc(7))
    _, replaced = learn(path, cc(7), ParamSpec("zoom", 1.0, 0.0, 4.0))
    assert replaced == ["glow"]
    assert hearing(Mapping.load(path), 7) == ["zoom"]


def test_replacing_a_binding_keeps_the_comments_of_the_others(tmp_path: Path) -> None:
    path = tmp_path / "nano.toml"
    path.write_text('# faders\n[[bind]]\ncc = 0\nparam = "walk/speed"\n\n'
                    '# knobs\n[[bind]]\ncc = 16\nparam = "walk/size"\n', encoding="utf-8")
    learn(path, cc(0))
    text = path.read_text(encoding="utf-8")
    assert "# knobs\n[[bind]]\ncc = 16\n" in text


# add_binding: the file's channel and port


@pytest.mark.parametrize(("file_channel", "moved_on", "written", "hears"), [
    ("9", 8, None, 8),  # the file's channel: no key needed
    ("9", 0, "channel = 1", 0),  # off the file's channel: written, as printed on hardware
    ('"all"', 3, None, None),  # a file for every channel keeps hearing every channel
])
def test_the_channel_key_is_written_only_where_the_file_does_not_say_it(
        tmp_path: Path, file_channel: str, moved_on: int, written: str | None,
        hears: int | None) -> None:
    path = tmp_path / "xl.toml"
    before = f'name = "xl"\nchannel = {file_channel}\n'
    path.write_text(before, encoding="utf-8")
    learn(path, cc(77, channel=moved_on))
    added = appended(path, before)
    assert (written in added) if written else ("channel" not in added)
    [binding] = Mapping.load(path).bindings
    assert binding.channel == hears


def test_no_channel_key_on_channel_one_when_the_file_names_none(tmp_path: Path) -> None:
    path = tmp_path / "learned.toml"
    learn(path, cc(7, channel=0))
    assert "channel" not in path.read_text(encoding="utf-8")


def test_a_file_for_one_controller_refuses_a_control_from_another(tmp_path: Path) -> None:
    path = tmp_path / "nano.toml"
    text = 'port = "nanoKONTROL2"\n' + TWO_FADERS
    path.write_text(text, encoding="utf-8")
    with pytest.raises(LearnError) as caught:
        learn(path, cc(7), port="Launch Control XL")
    assert "'nanoKONTROL2'" in str(caught.value)
    assert "'Launch Control XL'" in str(caught.value)
    assert path.read_text(encoding="utf-8") == text


def test_a_file_port_matches_any_port_name_containing_it(tmp_path: Path) -> None:
    path = tmp_path / "nano.toml"
    path.write_text('port = "nanoKONTROL2"\n' + TWO_FADERS, encoding="utf-8")
    learn(path, cc(7), port="NANOKONTROL2 MIDI 1")
    assert hearing(Mapping.load(path), 7) == ["glow"]


# add_binding: files it must not touch


@pytest.mark.parametrize("text", [
    'name = "nano\n[[bind]]\ncc = 0\nparam = "walk/speed"\n',
    'name = "nano"\ncolour = "red"\n',
    '[[bind]]\ncc = 0\nparam = "walk/speed"\nspeed = 2\n',
    '[[bind]]\ncc = 200\nparam = "walk/speed"\n',
    '# two on one\n[[bind]]\ncc = 0\nparam = "a"\n\n[[bind]]\ncc = 0\nparam = "a"\n',
], ids=["bad toml", "bad top key", "bad bind key", "bad cc", "duplicate"])
def test_a_broken_mapping_file_is_refused_and_left_untouched(tmp_path: Path, text: str) -> None:
    path = tmp_path / "nano.toml"
    path.write_text(text, encoding="utf-8")
    before = path.read_bytes()
    with pytest.raises(LearnError, match="fix the mapping file first"):
        learn(path, cc(7))
    assert path.read_bytes() == before
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left beside it


def test_an_unwritable_target_is_a_learn_error_not_an_os_error(tmp_path: Path) -> None:
    blocker = tmp_path / "mappings"
    blocker.write_text("a file where a folder should be\n", encoding="utf-8")
    with pytest.raises(LearnError, match="cannot write") as caught:
        learn(blocker / "learned.toml", cc(7))
    assert not isinstance(caught.value, OSError)
    assert blocker.read_text(encoding="utf-8") == "a file where a folder should be\n"


def test_a_folder_in_place_of_the_file_is_a_learn_error(tmp_path: Path) -> None:
    path = tmp_path / "learned.toml"
    path.mkdir()
    with pytest.raises(LearnError, match="cannot read"):
        learn(path, cc(7))
    assert path.is_dir()


def test_a_file_that_is_not_utf8_is_a_learn_error_and_untouched(tmp_path: Path) -> None:
    path = tmp_path / "nano.toml"
    path.write_bytes(b'name = "caf\xe9"\n')
    with pytest.raises(LearnError, match="cannot read"):
        learn(path, cc(7))
    assert path.read_bytes() == b'name = "caf\xe9"\n'
