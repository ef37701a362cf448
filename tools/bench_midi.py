"""MIDI through a live show on a JACK server: latency to the frame, clock following, CC rate.

    tools/midi_jack.sh .venv/bin/python tools/bench_midi.py [latency] [clock] [throughput] [ports]

`tools/midi_jack.sh` starts a throwaway JACK server on its dummy driver (JACK_PERIOD frames
at 48 kHz, default 64) and points this script at it. The controller is a virtual rtmidi port
of this process; the show runs in a thread, as `perform run` would with `--midi-in bench`.
Times are time.monotonic(), the engine's clock, so a send and a frame compare directly.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import rtmidi

from perform.core.frames import Frame, Mailbox
from perform.midi.ports import MidiInputs, MidiOutputs
from perform.midi.rig import MidiConfig
from perform.show import Show, ShowConfig, wait_ready

JACK = rtmidi.API_UNIX_JACK
CHEAP = """\
import numpy as np
from perform import param

x = param("x", 0.0, 0.0, 1.0)


def frame(ctx):
    return np.full((ctx.height, ctx.width, 3), float(x), np.float32)
"""
SPACEWALK = """\
from perform import models, param, walks

x = param("x", 0.0, 0.0, 1.0)
model = models.load("cppn:seed=7")


def frame(ctx):
    return model(walks.noise_loop(ctx.t * 0.05, dim=model.z_dim, radius=1.2))
"""
MAPPING = '[[bind]]\ncc = 1\nparam = "x"\ntakeover = "jump"\n'


class Frames(Mailbox):
    """Keeps (published, t, beat, x) of every frame."""

    def __init__(self) -> None:
        super().__init__("bench")
        self.seen: list[tuple[float, float, float, float]] = []

    def put(self, frame: Frame) -> None:
        self.seen.append((frame.rendered_at, frame.t, frame.beat, float(frame.params["x"])))


def percentiles(values: list[float], scale: float = 1e3, unit: str = "ms") -> str:
    a = np.asarray(values) * scale
    return (f"median {np.median(a):.2f} {unit}, p99 {np.percentile(a, 99):.2f} {unit}, "
            f"max {a.max():.2f} {unit} (n={len(a)})")


def virtual_out(name: str) -> rtmidi.MidiOut:
    port = rtmidi.MidiOut(JACK, name)
    port.open_virtual_port(name)
    return port


@contextmanager
def show(patch: str, size: int = 64, fps: float = 60.0, **midi: object) -> Iterator[Show]:
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "bench.py").write_text(patch)
        (Path(folder) / "bench.toml").write_text(MAPPING)
        config = MidiConfig(inputs=("bench",), maps=(Path(folder) / "bench.toml",), api="jack",
                            virtual=False, **midi)  # type: ignore[arg-type]
        live = Show(ShowConfig(patch=Path(folder) / "bench.py", width=size, height=size,
                               fps=fps, osc_port=0, http_port=0, zeroconf=False, midi=config))
        thread = threading.Thread(target=asyncio.run, args=(live.serve(),), daemon=True)
        thread.start()
        try:
            wait_ready(live)
            yield live
        finally:
            live.stop.set()
            thread.join(timeout=10)


def connected(live: Show) -> None:
    assert live.midi is not None
    deadline = time.monotonic() + 10
    while not any(name.startswith("bench") for name in live.midi.stats()["in"]["ports"]):
        if time.monotonic() > deadline:
            sys.exit("the show never connected to the bench port")
        time.sleep(0.05)
    time.sleep(0.3)  # JACK makes the connection live at one of its next cycles


def until(check: Callable[[], bool], timeout: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.0002)
    return True


def latency(trials: int) -> None:
    """A CC at a random moment to the param's change, and to the first frame that shows it."""
    controller = virtual_out("bench")
    frames = Frames()
    with show(CHEAP) as live:
        live.engine.outputs.append(frames)
        connected(live)
        to_param, to_frame, lost = [], [], 0
        for i in range(trials):
            value = (i % 2) * 127
            target = value / 127
            time.sleep(random.uniform(0.02, 0.06))
            begin = len(frames.seen)
            sent = time.monotonic()
            controller.send_message([0xB0, 1, value])
            if not until(lambda t=target: live.store.target("x") == t):
                lost += 1
                continue
            to_param.append(time.monotonic() - sent)
            until(lambda t=target, b=begin: any(f[3] == t for f in frames.seen[b:]))
            shown = next(f for f in frames.seen[begin:] if f[3] == target)
            to_frame.append(shown[0] - sent)
    controller.delete()
    print(f"MIDI CC -> param (JACK, reader thread, event loop): {percentiles(to_param)}")
    print(f"MIDI CC -> first frame published with it, 60 fps: {percentiles(to_frame)}; "
          f"lost {lost}")


def clock(seconds: float) -> None:
    """The show follows a MIDI clock sent with good timing; its beat against the true beat."""
    controller = virtual_out("bench")
    for bpm in (90.0, 128.0, 174.0):
        frames = Frames()
        with show(CHEAP, clock_in=True) as live:
            live.engine.outputs.append(frames)
            connected(live)
            period = 60.0 / (bpm * 24)
            controller.send_message([0xFA])
            first = time.monotonic() + 0.01
            for k in range(int(seconds / period)):
                time.sleep(max(first + k * period - time.monotonic(), 0.0))
                controller.send_message([0xF8])
            epoch = live.engine.epoch
            sent = k + 2  # Start and the ticks
            time.sleep(0.1)  # the last ones are still on their way
            heard = sum(p["messages"] for n, p in live.midi.stats()["in"]["ports"].items())
        settled = [f for f in frames.seen if f[0] > first + 8 * 60 / bpm]  # after two bars
        truth = np.array([(epoch + t - first) / (60 / bpm) for _, t, _, _ in settled])
        error = np.array([beat for _, _, beat, _ in settled]) - truth
        delay = float(np.median(error)) * 60 / bpm
        jitter = np.abs(error - np.median(error))
        read = live.engine.tempo.reading(0.0).bpm  # the follower's tempo at the end
        print(f"clock {bpm:g} BPM over {seconds:g} s ({heard}/{sent} messages arrived): read "
              f"{read:.3f} BPM (error {read - bpm:+.3f}); beat offset {delay * 1e3:+.2f} ms "
              f"(median; negative: late), "
              f"phase jitter p50 {np.median(jitter) * 1e3:.2f} p99 "
              f"{np.percentile(jitter, 99) * 1e3:.2f} millibeats")
    controller.delete()


def throughput(rates: list[int], seconds: float, size: int) -> None:
    """CCs at a steady rate while the default CPPN renders: all arrive, none wait in a queue,
    and frames keep their pace (frame intervals in a quiet stretch and during the flood)."""
    controller = virtual_out("bench")
    frames = Frames()
    with show(SPACEWALK, size=size, fps=30.0) as live:
        live.engine.outputs.append(frames)
        connected(live)
        assert live.midi is not None
        port = next(n for n in live.midi.stats()["in"]["ports"] if n.startswith("bench"))
        for rate in rates:
            quiet = len(frames.seen)
            time.sleep(seconds)
            before = live.midi.stats()["in"]["ports"][port]["messages"]
            busy = len(frames.seen)
            count = int(rate * seconds)
            begin = time.monotonic()
            for k in range(count):
                time.sleep(max(begin + k / rate - time.monotonic(), 0.0))
                controller.send_message([0xB0, 1, k % 127])
            controller.send_message([0xB0, 1, 127])
            sent = time.monotonic()
            caught_up = until(lambda: live.store.target("x") == 1.0, timeout=10)
            lag = time.monotonic() - sent
            got = live.midi.stats()["in"]["ports"][port]["messages"] - before
            calm, flood = (np.diff([f[0] for f in frames.seen[a:b]]) * 1e3
                           for a, b in ((quiet, busy), (busy, len(frames.seen))))
            print(f"{rate:6d} CC/s for {seconds:g} s: received {got}/{count + 1}, the last "
                  f"applied {lag * 1e3:.1f} ms after it was sent"
                  f"{'' if caught_up else ' (never)'}; frame interval p99 "
                  f"{np.percentile(flood, 99):.1f} ms (quiet: {np.percentile(calm, 99):.1f} ms)")
            live.store.set("x", 0.0)
    controller.delete()


def ports(count: int) -> None:
    """A CC through perform's ports and back out, as LED feedback travels: no show around it."""
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    controller = virtual_out("bench")
    led = rtmidi.MidiIn(JACK, "led")
    led.open_virtual_port("led")
    arrived = threading.Event()
    stamps: list[float] = []
    led.set_callback(lambda event, _: (stamps.append(time.monotonic()), arrived.set()))
    outputs = MidiOutputs(["led"], api="jack", virtual=False)
    inputs = MidiInputs(["bench"], lambda port, message: loop.call_soon_threadsafe(
        outputs.send, message), api="jack", virtual=False)
    inputs.rescan()
    outputs.rescan()
    time.sleep(0.3)
    trips, lost = [], 0
    for i in range(count):
        arrived.clear()
        sent = time.monotonic()
        controller.send_message([0xB0, 1, i % 128])
        if arrived.wait(0.5):
            trips.append(stamps[-1] - sent)
        else:
            lost += 1
        time.sleep(random.uniform(0.003, 0.008))  # land anywhere in JACK's cycle
    print(f"round trip controller -> perform in -> event loop -> perform out -> LED: "
          f"{percentiles(trips)}; lost {lost}")
    inputs.close()
    outputs.close()
    for port in controller, led:
        port.delete()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("parts", nargs="*", default=["latency", "clock", "throughput", "ports"])
    parser.add_argument("--trials", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=12.0, help="per clock tempo")
    parser.add_argument("--rates", type=int, nargs="+", default=[1000, 3000, 10000, 30000])
    parser.add_argument("--size", type=int, default=256, help="frame size for throughput")
    args = parser.parse_args()
    if "JACK_DEFAULT_SERVER" not in os.environ:
        sys.exit("run me through tools/midi_jack.sh, which starts a JACK server")
    frames = int(os.environ.get("JACK_PERIOD", 64))
    print(f"JACK dummy driver {os.environ.get('JACK_MODE', '--no-realtime')}, 48 kHz, "
          f"{frames} frames a cycle ({frames / 48:.2f} ms); {os.cpu_count()} cores")
    for part in args.parts:
        if part == "latency":
            latency(args.trials)
        elif part == "clock":
            clock(args.seconds)
        elif part == "throughput":
            throughput(args.rates, 2.0, args.size)
        elif part == "ports":
            ports(args.trials)


if __name__ == "__main__":
    main()
