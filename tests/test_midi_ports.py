"""MIDI ports end to end on a real JACK server (dummy driver, no sound card): controllers matched
by name, our own virtual ports, unplugging and replugging, garbage, closing mid-stream.

The "controllers" and "synths" here are virtual ports the test opens through mido, as a USB
controller or a DAW would appear; `raw` ports send bytes mido would refuse to build.

JACK makes a new connection live at one of its next cycles, later still on a busy machine, and
what is sent before then is lost: each test pings a fresh link until a ping gets through.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import mido
import pytest
import rtmidi
from conftest import wait_for

from perform.midi import ports
from perform.midi.ports import (
    MidiInputs,
    MidiOutputs,
    MidiUnavailable,
    decode,
    list_ports,
    pick_api,
)

JACK = mido.Backend("mido.backends.rtmidi/UNIX_JACK")


def cc(value: int, control: int = 7) -> mido.Message:
    return mido.Message("control_change", control=control, value=value)


PING = cc(0, control=119)


def is_ping(message: mido.Message) -> bool:
    return message.type == "control_change" and message.control == PING.control


def make_live(send: Callable[[mido.Message], Any], heard: Callable[[], Any]) -> None:
    """Ping until a ping gets through, then let the pings in flight land."""
    wait_for(lambda: heard() or send(PING), what="the connection to go live")
    time.sleep(0.15)  # several 21 ms cycles


def receive(port: mido.ports.BaseInput, count: int) -> list[mido.Message]:
    """`count` messages, pings left out, from a test's own input, waiting for them."""
    got: list[mido.Message] = []
    wait_for(lambda: got.extend(m for m in port.iter_pending() if not is_ping(m))
             or len(got) >= count, what=f"{count} messages")
    return got


def pinged(port: mido.ports.BaseInput) -> bool:
    return any(is_ping(m) for m in port.iter_pending())


class Heard:
    """An `on_message` that keeps what it is given, pings counted apart; thread-safe enough
    (list.append, and only the reader thread counts)."""

    def __init__(self) -> None:
        self.got: list[tuple[str, mido.Message]] = []
        self.pings = 0

    def __call__(self, port: str, message: mido.Message) -> None:
        if is_ping(message):
            self.pings += 1
        else:
            self.got.append((port, message))

    def values(self, port: str) -> list[int]:
        return [m.value for p, m in self.got if p == port and m.type == "control_change"]


# -- without a MIDI system ----------------------------------------------------------------


def test_decode_follows_running_status_and_real_time_does_not_cancel_it() -> None:
    message, running = decode([0x91, 60, 100], 0, 0.25)
    assert (message.type, message.channel, message.note, message.time) == ("note_on", 1, 60, 0.25)
    message, running = decode([61, 101], running)  # status byte left out: still note on, ch 2
    assert (message.type, message.channel, message.note, message.velocity) == ("note_on", 1, 61,
                                                                               101)
    message, running = decode([0xF8], running)  # a clock tick in between
    assert message.type == "clock"
    assert decode([62, 0], running)[0].note == 62
    _, running = decode([0xF0, 1, 2, 0xF7], running)  # system common ends running status
    with pytest.raises(ValueError):
        decode([63, 0], running)


@pytest.mark.parametrize("garbage", [[], [0xF4], [0x40, 0x7F], [0x90, 60], [0xF0, 1, 2],
                                     [0xF0, 1, 0x90, 0xF7], [0xB0, 7, 200]])
def test_decode_refuses_garbage_with_value_error(garbage: list[int]) -> None:
    with pytest.raises(ValueError):
        decode(garbage, 0)


def test_an_unknown_midi_system_is_refused_by_name() -> None:
    with pytest.raises(MidiUnavailable, match="'bogus' is not available here"):
        pick_api("bogus")


@pytest.fixture
def no_midi_system(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Linux with neither an ALSA sequencer nor a JACK server, as on CI."""
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setattr(ports, "ALSA_SEQ", tmp_path / "no-seq")
    monkeypatch.setenv("JACK_DEFAULT_SERVER", "perform-no-such-server")
    monkeypatch.delenv("PERFORM_MIDI_API", raising=False)


@pytest.mark.usefixtures("no_midi_system")
def test_no_midi_system_is_a_message_not_a_crash(caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(MidiUnavailable, match=r"no MIDI system.*jackd"):
        list_ports()
    inputs, outputs = MidiInputs(["nano"], Heard()), MidiOutputs(["all"])
    inputs.rescan()
    outputs.rescan()
    outputs.send(cc(1))
    for side in inputs, outputs:
        assert side.stats() == {"api": None, "wanted": side.wanted, "virtual": None,
                                "error": side.error, "ports": {}}
        assert "no MIDI system" in (side.error or "")
        side.close()
    assert "MIDI in: no MIDI system" in caplog.text


def test_without_libasound_midi_is_off_and_the_show_goes_on(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """python-rtmidi's Linux wheel needs the system's libasound.so.2 to import."""
    monkeypatch.setattr(ports, "rtmidi", None)
    monkeypatch.setattr(ports, "NO_RTMIDI", "python-rtmidi will not load (libasound.so.2)",
                        raising=False)
    with pytest.raises(MidiUnavailable, match="libasound"):
        list_ports()
    inputs, outputs = MidiInputs(["all"], Heard()), MidiOutputs([])
    outputs.send(cc(1))
    inputs.rescan()
    assert "libasound" in inputs.stats()["error"]
    inputs.close()
    outputs.close()


# -- on a JACK server -----------------------------------------------------------------------


class Rig:
    """Opens ports on the test's JACK server and closes every one after the test."""

    def __init__(self) -> None:
        self.opened: list[Any] = []

    def keep(self, thing: Any) -> Any:
        self.opened.append(thing)
        return thing

    def controller(self, name: str) -> mido.ports.BaseOutput:
        return self.keep(JACK.open_output(name, virtual=True, client_name=name))

    def synth(self, name: str) -> mido.ports.BaseInput:
        return self.keep(JACK.open_input(name, virtual=True, client_name=name))

    def raw(self, name: str) -> rtmidi.MidiOut:
        port = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name)
        port.open_virtual_port(name)
        self.keep(port)
        return port

    def inputs(self, wanted: list[str], on_message: Callable[[str, mido.Message], Any],
               **options: Any) -> MidiInputs:
        inputs = self.keep(MidiInputs(wanted, on_message, api="jack", **options))
        inputs.rescan()
        return inputs

    def outputs(self, wanted: list[str], **options: Any) -> MidiOutputs:
        outputs = self.keep(MidiOutputs(wanted, api="jack", **options))
        outputs.rescan()
        return outputs

    def close(self) -> None:
        for thing in reversed(self.opened):
            if isinstance(thing, rtmidi.MidiOut):
                thing.delete()
            elif not getattr(thing, "closed", False):
                thing.close()


@pytest.fixture
def rig(jack: str) -> Iterator[Rig]:
    rig = Rig()
    yield rig
    rig.close()


def test_list_finds_jack_by_itself_and_hides_our_own_ports(rig: Rig,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ports, "ALSA_SEQ", Path("/nonexistent/seq"))  # as on CI: JACK only
    monkeypatch.delenv("PERFORM_MIDI_API", raising=False)
    rig.controller("nanoKONTROL2")
    rig.synth("Synth")
    rig.inputs([], Heard())
    rig.outputs([])
    assert "perform:perform" in JACK.get_output_names()  # our virtual input, for a DAW
    assert "perform-01:perform" in JACK.get_input_names()  # and our virtual output
    assert list_ports() == (["nanoKONTROL2:nanoKONTROL2"], ["Synth:Synth"])


def test_a_controller_matched_by_substring_reaches_the_handler(rig: Rig) -> None:
    nano, other = rig.controller("nanoKONTROL2"), rig.controller("Launchpad")
    heard = Heard()
    inputs = rig.inputs(["kontrol"], heard)
    inputs.rescan()  # a port already open is not opened twice
    make_live(nano.send, lambda: heard.pings)
    for value in range(10):
        nano.send(cc(value))
        other.send(cc(value))
    wait_for(lambda: len(heard.got) >= 10, what="10 CCs")
    time.sleep(0.05)  # nothing doubled, nothing from the Launchpad
    assert heard.values("nanoKONTROL2:nanoKONTROL2") == list(range(10))
    assert len(heard.got) == 10
    assert inputs.stats()["ports"] == {
        "perform": {"connected": True, "messages": 0, "errors": 0, "disconnects": 0},
        "nanoKONTROL2:nanoKONTROL2": {"connected": True, "messages": 10 + heard.pings,
                                      "errors": 0, "disconnects": 0}}


def test_all_opens_every_input_but_our_own(rig: Rig) -> None:
    rig.controller("nanoKONTROL2")
    rig.controller("Launchpad")
    rig.outputs([])  # our virtual output must not feed our input
    inputs = rig.inputs(["ALL"], Heard())
    assert sorted(inputs.stats()["ports"]) == ["Launchpad:Launchpad",
                                               "nanoKONTROL2:nanoKONTROL2", "perform"]


def test_our_virtual_input_hears_a_daw(rig: Rig) -> None:
    heard = Heard()
    rig.inputs([], heard)
    daw = rig.keep(JACK.open_output("perform:perform"))
    make_live(daw.send, lambda: heard.pings)
    daw.send(mido.Message("note_on", note=60, velocity=90))
    wait_for(lambda: heard.got, what="the note")
    assert [(p, m.type, m.note) for p, m in heard.got] == [("perform", "note_on", 60)]


def test_outputs_reach_a_synth_and_a_daw_on_our_virtual_output(rig: Rig) -> None:
    synth = rig.synth("Synth")
    outputs = rig.outputs(["synth"])
    daw = rig.keep(JACK.open_input("perform:perform"))
    make_live(outputs.send, lambda: pinged(synth))
    make_live(outputs.send, lambda: pinged(daw))
    before = {name: s["messages"] for name, s in outputs.stats()["ports"].items()}
    for value in range(5):
        outputs.send(cc(value))
    for port in synth, daw:
        assert [m.value for m in receive(port, 5)] == list(range(5))
    after = {name: s["messages"] for name, s in outputs.stats()["ports"].items()}
    assert {name: after[name] - before[name] for name in after} == {"perform": 5,
                                                                     "Synth:Synth": 5}


def test_an_unplugged_controller_comes_back_without_a_restart(
        rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="perform")
    name = "nanoKONTROL2:nanoKONTROL2"
    nano = rig.controller("nanoKONTROL2")
    heard = Heard()
    inputs = rig.inputs(["nano"], heard)
    make_live(nano.send, lambda: heard.pings)
    nano.send(cc(1))
    wait_for(lambda: heard.values(name) == [1], what="the first CC")

    nano.close()  # unplugged mid-show
    inputs.rescan()
    inputs.rescan()  # told once
    assert caplog.text.count(f"MIDI in: {name} disconnected; waiting for it to come back") == 1
    assert inputs.stats()["ports"][name] == {"connected": False, "messages": 1 + heard.pings,
                                             "errors": 0, "disconnects": 1}

    nano = rig.controller("nanoKONTROL2")  # plugged back in
    inputs.rescan()
    assert caplog.text.count(f"MIDI in: {name} connected") == 2
    pings = heard.pings
    make_live(nano.send, lambda: heard.pings > pings)
    nano.send(cc(2))
    wait_for(lambda: heard.values(name) == [1, 2], what="the CC after the replug")
    assert inputs.stats()["ports"][name]["connected"]


def test_a_synth_that_vanishes_is_followed_and_sending_never_raises(rig: Rig) -> None:
    synth = rig.synth("Synth")
    outputs = rig.outputs(["synth"])
    synth.close()
    outputs.send(cc(1))  # to a port nobody listens to any more
    outputs.rescan()
    outputs.send(cc(2))
    assert outputs.stats()["ports"]["Synth:Synth"]["disconnects"] == 1
    synth = rig.synth("Synth")
    outputs.rescan()
    make_live(outputs.send, lambda: pinged(synth))
    outputs.send(cc(3))
    assert [m.value for m in receive(synth, 1)] == [3]
    outputs.close()
    outputs.send(cc(4))  # after close: nowhere to go, still no exception


def test_garbage_is_counted_and_the_port_keeps_working(rig: Rig) -> None:
    raw = rig.raw("raw")
    heard = Heard()
    inputs = rig.inputs(["raw"], heard)
    make_live(lambda message: raw.send_message(message.bytes()), lambda: heard.pings)
    sent = [[0x90, 60, 100], [61, 101],  # running status: a second note on
            [0xF4], [0xF5, 1],  # undefined status bytes
            [0xB0, 7], [0x80],  # cut short
            [0xF0, *range(100), 0xF7]]  # a good sysex
    for data in sent:
        raw.send_message(data)
    for i in range(300):  # a flood of large sysex
        raw.send_message([0xF0, 0x7D, *[i % 128] * 500, 0xF7])
    raw.send_message([0xB0, 7, 42])
    wait_for(lambda: heard.values("raw:raw") == [42], timeout=20, what="the CC after the flood")
    types = [m.type for _, m in heard.got]
    assert types[:3] == ["note_on", "note_on", "sysex"]
    assert [m.note for _, m in heard.got[:2]] == [60, 61]
    assert types.count("sysex") == 301
    assert inputs.stats()["ports"]["raw:raw"]["errors"] == 4


def test_a_failing_handler_is_counted_and_logged_once(
        rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    nano = rig.controller("nano")

    pings = []

    def broken(port: str, message: mido.Message) -> None:
        if is_ping(message):
            pings.append(message)
            return
        raise RuntimeError("a bug in the mapping")

    inputs = rig.inputs(["nano"], broken)
    make_live(nano.send, lambda: pings)
    for value in range(3):
        nano.send(cc(value))
    wait_for(lambda: inputs.stats()["ports"]["nano:nano"]["errors"] == 3, what="3 errors")
    assert caplog.text.count("the message handler failed") == 1


def test_closing_inputs_while_messages_stream_never_hangs(rig: Rig) -> None:
    """Ports closed while messages pour in and another thread holds the GIL, as the render
    thread does. Tried with python-rtmidi's callbacks instead of polling (1.3 ms cycles,
    200 rounds), closing hung the process (delete) or crashed it (close_port)."""
    raw = rig.raw("clock")
    stop = threading.Event()

    def stream() -> None:
        while not stop.is_set():
            raw.send_message([0xF8])
            time.sleep(0.0002)

    def busy() -> None:
        while not stop.is_set():
            sum(range(10_000))

    def churn() -> None:
        for _ in range(10):
            heard = Heard()
            inputs = MidiInputs(["clock"], heard, api="jack")
            inputs.rescan()
            wait_for(lambda heard=heard: len(heard.got) > 20, what="clock ticks")
            inputs.close()

    for work in stream, busy:
        threading.Thread(target=work, daemon=True).start()
    worker = threading.Thread(target=churn, daemon=True)
    worker.start()
    worker.join(timeout=60)
    stop.set()
    assert not worker.is_alive(), "closing a MIDI input while messages streamed hung"


def test_perform_midi_list_names_the_controllers(rig: Rig) -> None:
    rig.controller("nanoKONTROL2")
    env = {**os.environ, "PERFORM_MIDI_API": "jack"}
    done = subprocess.run([sys.executable, "-m", "perform", "midi", "list"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[:2] == ["MIDI inputs:", "  nanoKONTROL2:nanoKONTROL2"]


def test_perform_midi_list_without_a_midi_system_says_so() -> None:
    env = {**os.environ, "PERFORM_MIDI_API": "carrier-pigeon"}
    done = subprocess.run([sys.executable, "-m", "perform", "midi", "list"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and done.stderr.startswith("perform: ")
    assert "Traceback" not in done.stderr
