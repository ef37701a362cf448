#!/usr/bin/env bash
# MIDI without a sound card or ALSA sequencer: a throwaway JACK server on its dummy driver.
#   tools/midi_jack.sh                          tools/bench_midi.py: latency, clock, throughput
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

[ $# -gt 0 ] || set -- .venv/bin/python tools/bench_midi.py
"$@"
