#!/usr/bin/env bash
# MIDI without a sound card or ALSA sequencer: a throwaway JACK server on its dummy driver.
#   tools/midi_jack.sh                          measure round trip and clock through perform
#   tools/midi_jack.sh .venv/bin/perform ...    run any command with JACK_DEFAULT_SERVER set
# Needs jackd (apt-get install jackd2); the server stops when the command ends.
# JACK_PERIOD (frames at 48 kHz, default 64) and JACK_MODE (--no-realtime, or --realtime where
# allowed: no late cycles, no lost messages) shape the server.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

name="perform-$$"
JACK_NO_AUDIO_RESERVATION=1 jackd "${JACK_MODE:---no-realtime}" --name "$name" --port-max 64 \
    -d dummy --rate 48000 --period "${JACK_PERIOD:-64}" --capture 0 --playback 0 >/dev/null 2>&1 &
jack=$!
trap 'kill "$jack" 2>/dev/null; wait "$jack" 2>/dev/null || true' EXIT
export JACK_DEFAULT_SERVER="$name"
for _ in $(seq 200); do
    [ -S "/dev/shm/jack_${name}_$(id -u)_0" ] && break
    kill -0 "$jack" 2>/dev/null || { echo "jackd would not start" >&2; exit 1; }
    sleep 0.05
done

if [ $# -gt 0 ]; then
    "$@"
    exit
fi

.venv/bin/python - <<'EOF'
"""A controller's CC through perform and back out as LED feedback, as the show wires it:
rtmidi -> MidiInputs -> event loop -> MidiOutputs -> rtmidi. Then a 120 BPM MIDI clock."""
import asyncio
import os
import statistics
import threading
import time

import rtmidi

from perform.midi.ports import MidiInputs, MidiOutputs

JACK = rtmidi.API_UNIX_JACK


def virtual(kind, name):
    port = kind(JACK, name)
    port.open_virtual_port(name)
    return port


def ms(values):
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * len(ordered)))]
    return (f"median {statistics.median(ordered) * 1e3:.2f} ms, p99 {p99 * 1e3:.2f} ms, "
            f"max {ordered[-1] * 1e3:.2f} ms")


loop = asyncio.new_event_loop()
threading.Thread(target=loop.run_forever, daemon=True).start()
controller, led = virtual(rtmidi.MidiOut, "bench-controller"), virtual(rtmidi.MidiIn, "bench-led")
direct = rtmidi.MidiIn(JACK, "bench-direct")  # the same CC straight from the controller
direct.open_port(direct.get_ports().index("bench-controller:bench-controller"))
arrived = {"led": threading.Event(), "direct": threading.Event()}
stamps = {}


def heard(where):
    def callback(event, _):
        stamps[where] = time.perf_counter()
        arrived[where].set()
    return callback


led.set_callback(heard("led"))
direct.set_callback(heard("direct"))
outputs = MidiOutputs(["bench-led"], api="jack", virtual=False)
clock = []
inputs = MidiInputs(["bench-controller"], lambda port, message: (
    clock.append((time.perf_counter(), message.time)) if message.type == "clock"
    else loop.call_soon_threadsafe(outputs.send, message)), api="jack", virtual=False)
inputs.rescan()
outputs.rescan()

trips, hops, lost = [], [], 0
for i in range(1000):
    for event in arrived.values():
        event.clear()
    sent = time.perf_counter()
    controller.send_message([0xB0, 1, i % 128])
    if arrived["led"].wait(0.5) and arrived["direct"].wait(0.5):
        trips.append(stamps["led"] - sent)
        hops.append(stamps["direct"] - sent)
    else:
        lost += 1
    time.sleep(0.003 + (i % 7) * 0.0007)  # land anywhere in JACK's cycle
frames = int(os.environ.get("JACK_PERIOD", 64))
print(f"1000 CCs, JACK dummy {os.environ.get('JACK_MODE', '--no-realtime')}, 48 kHz / {frames} "
      f"frames ({frames / 48:.2f} ms cycle); lost on the way: {lost}")
print(f"  one hop, rtmidi callback to rtmidi callback: {ms(hops)}")
print(f"  round trip controller -> perform in -> event loop -> perform out -> LED: {ms(trips)}")

period, start = 60 / 120 / 24, time.perf_counter() + 0.05
for tick in range(24 * 2 * 10):  # 10 s of 120 BPM
    time.sleep(max(0.0, start + tick * period - time.perf_counter()))
    controller.send_message([0xF8])
time.sleep(0.1)
arrivals = [t for t, _ in clock]
by_arrival = [b - a for a, b in zip(arrivals, arrivals[1:])]
by_rtmidi = [delta for _, delta in clock[1:]]
for what, intervals in (("arrival at on_message", by_arrival), ("rtmidi's message.time", by_rtmidi)):
    bpm = 60 / (24 * statistics.mean(intervals))
    print(f"  120 BPM clock, {len(clock)} ticks, by {what}: {bpm:.2f} BPM, "
          f"interval jitter (stdev) {statistics.stdev(intervals) * 1e3:.2f} ms")
inputs.close()
outputs.close()
for port in controller, led, direct:
    port.delete()
EOF
