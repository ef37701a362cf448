"""MIDI in a live show, end to end on a real JACK server (dummy driver, no sound card): a
controller plays params and its LEDs follow, it is unplugged and comes back, its mapping file
is edited live, MIDI learn writes a binding, and the show follows or sends a MIDI clock.

The controller is a pair of virtual JACK ports the test opens, as a USB controller appears:
"testctl" sends, "testctl-leds" receives. JACK makes a new connection live at one of its next
cycles, so each test first pings until the show hears it (see `live`).
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import mido
import pytest
import rtmidi
from conftest import Listener, LiveShow, msg, wait_for

from perform.midi.rig import MidiConfig

JACK = mido.Backend("mido.backends.rtmidi/UNIX_JACK")

PATCH = """\
import numpy as np
from perform import param

glow = param("glow", 0.0, 0.0, 1.0)
strobe = param("strobe", False)


def frame(ctx):
    return np.full((ctx.height, ctx.width, 3), float(glow), np.float32)
"""

MAPPING = """\
# my controller: a fader and a pad
channel = 1

[[bind]]
cc = 7                # the fader
param = "glow"
takeover = "jump"

[[bind]]
note = 36             # the pad
param = "strobe"
mode = "toggle"

[[bind]]
cc = 9
param = "later"       # not in the patch yet
takeover = "jump"
"""


def cc(control: int, value: int, channel: int = 0) -> mido.Message:
    return mido.Message("control_change", control=control, value=value, channel=channel)


class Leds:
    """The controller's input, read by polling: mido's callback-driven inputs can deadlock
    when closed while the show still sends (rtmidi joins its thread holding the GIL)."""

    def __init__(self, name: str) -> None:
        self.port = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, name, queue_size_limit=8192)
        self.port.ignore_types(timing=False)
        self.port.open_virtual_port(name)
        self.clock = 0.0  # rtmidi's arrival time of the last message, summed from its deltas

    def iter_pending(self) -> Iterator[tuple[float, mido.Message]]:
        """(arrival in seconds on rtmidi's clock, message) for each message waiting."""
        while (got := self.port.get_message()) is not None:
            data, delta = got
            self.clock += delta
            yield self.clock, mido.Message.from_bytes(data)

    def close(self) -> None:
        self.port.delete()


class Rig:
    """A show with MIDI on, the test's controller ports, and a UDP socket to talk OSC."""

    def __init__(self, folder: Path, name: str) -> None:
        self.folder, self.name, self.port = folder, name, f"{name}:{name}"
        # the controller is there before the show starts, as when it is plugged in first
        self.ctl = JACK.open_output(name, virtual=True, client_name=name)
        self.leds = Leds(f"{name}-leds")
        self.osc = Listener()
        self.heard: list[mido.Message] = []

    def send_osc(self, address: str, *args: object) -> None:
        assert self.show.osc_address is not None
        self.osc.sock.sendto(msg(address, *args), self.show.osc_address)

    def messages_in(self) -> int:
        port = self.show.midi.stats()["in"]["ports"].get(self.port, {})
        return port.get("messages", 0) if port.get("connected") else 0

    def live_link(self) -> None:
        """Ping (an unbound CC) until the show hears the controller; wait for a rescan first."""
        wait_for(lambda: self.messages_in() or self.ctl.send(cc(119, 0)), timeout=15,
                 what="the show to hear the controller")

    def led(self, check: Callable[[mido.Message], bool], what: str) -> mido.Message:
        def find() -> mido.Message | None:
            self.heard.extend(message for _, message in self.leds.iter_pending())
            return next((m for m in self.heard if check(m)), None)
        return wait_for(find, what=what)

    def target(self, name: str) -> object:
        return self.show.store.target(name)

    def close(self) -> None:
        self.osc.close()
        self.leds.close()
        if not self.ctl.closed:
            self.ctl.close()


@pytest.fixture
def midi_show(tmp_path: Path, live_show: Callable[..., LiveShow],
              jack: str) -> Iterator[Callable[..., Rig]]:
    (tmp_path / "show.py").write_text(PATCH)
    (tmp_path / "controller.toml").write_text(MAPPING)
    rigs: list[Rig] = []

    def start(show: dict[str, Any] | None = None, name: str = "testctl", **midi: Any) -> Rig:
        rig = Rig(tmp_path, name)
        rigs.append(rig)
        options = dict(inputs=(name,), outputs=(name,), maps=(tmp_path / "controller.toml",),
                       api="jack")
        options.update(midi)
        rig.live = live_show(tmp_path / "show.py", midi=MidiConfig(**options), **(show or {}))
        rig.show = rig.live.show
        return rig

    yield start
    for rig in rigs:
        rig.close()


def test_a_controller_plays_params_and_its_leds_follow_every_change(midi_show) -> None:
    rig = midi_show()
    rig.led(lambda m: m.type == "control_change" and m.control == 7 and m.value == 0,
            "the fader's value as the show starts")
    rig.live_link()
    rig.ctl.send(cc(7, 127))
    wait_for(lambda: rig.target("glow") == 1.0, what="the fader to move glow")
    wait_for(lambda: rig.live.recorder.frames[-1].image.mean() > 250, what="a bright frame")

    # the pad toggles; a note-on with velocity 0 (a release, as many pads send) changes nothing
    rig.ctl.send(mido.Message("note_on", note=36, velocity=100))
    rig.ctl.send(mido.Message("note_on", note=36, velocity=0))
    wait_for(lambda: rig.target("strobe") is True, what="the pad to toggle strobe on")
    rig.led(lambda m: m.type == "note_on" and m.note == 36 and m.velocity == 127,
            "the pad's LED to light")

    # garbage and noise: a sysex flood, another channel; the fader still plays after them
    for _ in range(500):
        rig.ctl.send(mido.Message("sysex", data=[0x7D] + [1] * 60))
    rig.ctl.send(cc(7, 0, channel=5))
    rig.ctl.send(cc(7, 0))
    wait_for(lambda: rig.target("glow") == 0.0, what="the fader after a sysex flood")
    assert rig.target("strobe") is True

    # a change from OSC shows on the controller: the fader's ring or motor follows
    rig.heard.clear()
    rig.send_osc("/glow", 0.5)
    rig.led(lambda m: m.type == "control_change" and m.control == 7 and m.value == 64,
            "the fader's LED at half")
    # so does a preset load
    presets = rig.folder / "presets"
    presets.mkdir()
    (presets / "dark.json").write_text(json.dumps({"params": {"glow": 0.25, "strobe": False}}))
    rig.send_osc("/perform/preset/load", "dark")
    rig.led(lambda m: m.type == "control_change" and m.control == 7 and m.value == 32,
            "the fader's LED after the preset")
    rig.led(lambda m: m.type == "note_on" and m.note == 36 and m.velocity == 0,
            "the pad's LED off after the preset")
    state = rig.live.state()["midi"]
    assert state["in"]["ports"][rig.port]["connected"] is True
    assert state["mappings"][0]["unbound"] == ["later"]


def test_an_unplugged_controller_plays_again_when_it_comes_back(midi_show) -> None:
    rig = midi_show()
    rig.live_link()
    rig.ctl.close()  # pulled out mid-show: its input and output vanish
    rig.leds.close()
    leds = f"{rig.name}-leds:{rig.name}-leds"
    wait_for(lambda: not rig.show.midi.stats()["in"]["ports"][rig.port]["connected"]
             and not rig.show.midi.stats()["out"]["ports"][leds]["connected"],
             what="the show to notice")
    frames = len(rig.live.recorder.frames)
    wait_for(lambda: len(rig.live.recorder.frames) > frames + 5, what="the show to go on")
    rig.ctl = JACK.open_output(rig.name, virtual=True, client_name=rig.name)  # plugged back
    rig.leds = Leds(f"{rig.name}-leds")
    rig.heard.clear()
    rig.led(lambda m: m.type == "note_on" and m.note == 36, "the pad's LED set on replug")
    rig.live_link()
    rig.ctl.send(cc(7, 127))
    wait_for(lambda: rig.target("glow") == 1.0, what="the fader after the replug")
    assert rig.show.midi.stats()["in"]["ports"][rig.port]["disconnects"] == 1


def test_a_mapping_saved_with_a_mistake_keeps_the_last_good_one_and_says_where(
        midi_show) -> None:
    rig = midi_show()
    rig.live_link()
    mapping = rig.folder / "controller.toml"
    mapping.write_text(MAPPING.replace('takeover = "jump"\n', 'curve = "expo"\n', 1))
    error = wait_for(lambda: rig.live.state()["midi"]["mappings"][0]["error"],
                     what="the mistake to be reported")
    assert error["file"] == str(mapping) and error["line"] == 7
    assert "curve is one of" in error["message"]
    rig.ctl.send(cc(7, 127))  # the last good mapping plays on
    wait_for(lambda: rig.target("glow") == 1.0, what="the old binding")

    mapping.write_text(MAPPING.replace("cc = 7 ", "cc = 8 "))  # fixed, and moved to CC 8
    wait_for(lambda: rig.live.state()["midi"]["mappings"][0]["error"] is None,
             what="the fixed file to load")
    rig.ctl.send(cc(8, 0))
    wait_for(lambda: rig.target("glow") == 0.0, what="the new binding")


def test_a_binding_to_a_missing_param_plays_once_a_save_declares_it(midi_show) -> None:
    rig = midi_show()
    rig.live_link()
    rig.ctl.send(cc(9, 127))  # bound to "later", which the patch lacks: nothing happens
    time.sleep(0.2)
    assert rig.target("later") is None
    (rig.folder / "show.py").write_text(PATCH + 'later = param("later", 0.0, 0.0, 1.0)\n')
    wait_for(lambda: rig.target("later") is not None, what="the reload")
    rig.ctl.send(cc(9, 127))
    wait_for(lambda: rig.target("later") == 1.0, what="the waiting binding to play")
    wait_for(lambda: rig.live.state()["midi"]["mappings"][0]["unbound"] == [],
             what="unbound to clear")


def test_midi_learn_over_osc_binds_the_next_control_and_keeps_the_comments(midi_show) -> None:
    rig = midi_show()
    rig.live_link()
    rig.send_osc("/perform/midi/learn", "nosuch")
    refused = wait_for(lambda: rig.osc.values("/perform/refused"), what="a refusal")
    assert refused[0] == ["/perform/midi/learn", "the patch has no param 'nosuch'"]

    rig.send_osc("/perform/midi/learn", "glow")
    wait_for(lambda: rig.show.midi.stats()["learning"] == "glow", what="learn to be armed")
    rig.ctl.send(mido.Message("note_off", note=50))  # a release is not a move
    rig.ctl.send(cc(21, 40))
    learned = wait_for(lambda: rig.osc.values("/perform/midi/learned"), what="the answer")
    mapping = rig.folder / "controller.toml"
    assert learned[0] == ["glow", "cc 21 on channel 1", rig.port, str(mapping)]
    text = mapping.read_text()
    assert text.startswith(MAPPING)  # comments and layout as they were
    assert "[[bind]]\ncc = 21  # learned " in text and 'param = "glow"' in text
    rig.led(lambda m: m.type == "control_change" and m.control == 21, "the new LED")

    rig.ctl.send(cc(21, 0))  # pick up the param where it is (0), then move it
    rig.ctl.send(cc(21, 127))
    wait_for(lambda: rig.target("glow") == 1.0, what="the learned control to play")
    rig.ctl.send(cc(7, 0))  # the fader bound before still plays too
    wait_for(lambda: rig.target("glow") == 0.0, what="the old fader")


def test_without_a_mapping_a_known_controller_plays_as_shipped_and_learn_writes_by_the_patch(
        midi_show) -> None:
    rig = midi_show(name="nanoKONTROL2", maps=())
    (rig.folder / "show.py").write_text(PATCH + 'speed = param("walk/speed", 0.1, 0.0, 1.0)\n')
    wait_for(lambda: rig.target("walk/speed") is not None, what="the patch with walk/speed")
    rig.live_link()
    rig.ctl.send(cc(0, 0))  # fader 1 of the shipped nanoKONTROL2 mapping: picks up, then plays
    rig.ctl.send(cc(0, 127))
    wait_for(lambda: rig.target("walk/speed") == 1.0, what="fader 1 to play walk/speed")
    names = [Path(m["file"]).name for m in rig.live.state()["midi"]["mappings"]]
    assert names[0] == "midi.toml" and "nanokontrol2.toml" in names
    assert "generic.toml" not in names  # written for no controller in particular

    rig.send_osc("/perform/midi/learn", "glow")
    wait_for(lambda: rig.show.midi.stats()["learning"] == "glow", what="learn to be armed")
    rig.ctl.send(cc(16, 1))  # knob 1
    wait_for(lambda: rig.osc.values("/perform/midi/learned"), what="the answer")
    assert "cc = 16  # learned" in (rig.folder / "midi.toml").read_text()


def test_midi_learn_over_http_needs_the_token_and_answers_once_a_pad_is_hit(
        midi_show) -> None:
    rig = midi_show(show={"token": "s3cret"})
    rig.live_link()
    url = rig.live.url + "/api/midi/learn"

    def post(token: str | None) -> tuple[int, dict[str, Any]]:
        request = urllib.request.Request(url, data=json.dumps({"param": "strobe"}).encode(),
                                         headers={"Content-Type": "application/json"})
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=20) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as exc:
            return exc.code, json.load(exc)

    assert post(None)[0] == 401
    assert post("wrong")[0] == 401
    answer: list[tuple[int, dict[str, Any]]] = []
    asking = threading.Thread(target=lambda: answer.append(post("s3cret")))
    asking.start()
    wait_for(lambda: rig.show.midi.stats()["learning"] == "strobe", what="learn to be armed")
    rig.ctl.send(mido.Message("note_on", note=40, velocity=90, channel=2))
    asking.join(timeout=10)
    status, body = answer[0]
    assert status == 200
    assert body["param"] == "strobe" and body["control"] == "note 40 on channel 3"
    assert 'mode = "toggle"' in (rig.folder / "controller.toml").read_text()
    rig.ctl.send(mido.Message("note_on", note=40, velocity=90, channel=2))
    wait_for(lambda: rig.target("strobe") is True, what="the learned pad to toggle")


def test_the_show_follows_a_midi_clock_start_stop_continue_and_song_position(
        midi_show) -> None:
    rig = midi_show(clock_in=True)
    rig.live_link()
    engine = rig.show.engine

    def play(ticks: int, bpm: float) -> None:
        period, due = 60.0 / (bpm * 24), time.monotonic()
        for _ in range(ticks):
            due += period
            time.sleep(max(due - time.monotonic(), 0.0))
            rig.ctl.send(mido.Message("clock"))

    rig.ctl.send(mido.Message("start"))
    play(24 * 6, 120.0)  # six beats at 120 BPM: three seconds
    reading = engine.last_tempo
    assert reading.running and abs(reading.bpm - 120.0) < 2.0, reading
    assert abs(reading.beat - 6.0) < 0.35, reading
    assert rig.live.state()["tempo"]["source"] == "midi clock"

    rig.ctl.send(mido.Message("stop"))
    wait_for(lambda: not engine.last_tempo.running, what="the beat to stop")
    held = engine.last_tempo.beat
    time.sleep(0.3)
    assert engine.last_tempo.beat == held  # stopped: ctx.beat holds

    rig.ctl.send(mido.Message("songpos", pos=32))  # bar 3: 32 sixteenths = beat 8
    rig.ctl.send(mido.Message("continue"))
    play(24 * 2, 120.0)
    reading = engine.last_tempo
    assert reading.running and abs(reading.beat - 10.0) < 0.35, reading


def test_the_show_sends_midi_clock_at_its_tempo_starting_on_a_bar(midi_show) -> None:
    rig = midi_show(clock_out=True, show={"bpm": 150.0})
    arrivals: list[tuple[float, float, str]] = []  # (rtmidi's time, ours, type)

    def enough() -> bool:
        arrivals.extend((at, time.monotonic(), m.type) for at, m in rig.leds.iter_pending())
        return sum(kind == "clock" for *_, kind in arrivals) >= 24 * 6

    wait_for(enough, timeout=15, what="six beats of clock")
    kinds = [kind for *_, kind in arrivals if kind in ("start", "clock")]
    assert kinds[0] == "start" and set(kinds[1:]) == {"clock"}
    ticks = [at for at, _, kind in arrivals if kind == "clock"]
    bpm = 60.0 * (len(ticks) - 1) / 24 / (ticks[-1] - ticks[0])
    assert abs(bpm - 150.0) < 2.0, bpm
    assert rig.show.midi.stats()["clock_out_ticks"] >= len(ticks)
    # Start arrived on a bar line of the show's own beat (4 beats a bar), late by the poll
    # and a JACK cycle or two (21 ms each: 0.05 beat at 150 BPM)
    start = next(ours for _, ours, kind in arrivals if kind == "start")
    beat = rig.show.engine.tempo.reading(start - rig.show.engine.epoch).beat
    assert 0.0 <= beat % 4.0 < 0.25 or beat % 4.0 > 3.95, beat
