#!/usr/bin/env bash
# Sets up .venv with perform and what it needs; installs system packages where it can.
# Sourced by tools/show and tools/test. EXTRA=test adds the test tools.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [ "$(uname -s)" = Linux ] && command -v apt-get >/dev/null; then
    # Xvfb + Mesa: real windows for the tests; Chromium: the preview page in a real browser;
    # iproute2: private network namespaces for the mDNS and Link tests; libasound2: MIDI;
    # libportaudio2: live audio input (sounddevice); jackd2: a JACK server on its dummy
    # driver gives the MIDI and audio tests real ports
    packages="xvfb xauth libgl1 libglx-mesa0 libgl1-mesa-dri libegl1 libegl-mesa0 libasound2"
    packages="$packages libportaudio2"
    [ "${EXTRA:-}" = test ] && packages="$packages chromium iproute2 jackd2"
    missing=$(for p in $packages; do dpkg -s "$p" >/dev/null 2>&1 || echo "$p"; done)
    if [ -n "$missing" ]; then
        if [ "$(id -u)" = 0 ]; then
            # not fatal: without them the window and browser tests skip and say why
            { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
                --no-install-recommends $missing >/dev/null; } ||
                echo "perform: could not install $missing" >&2
        else
            echo "perform: for the window tests, run: sudo apt-get install $missing" >&2
        fi
    fi
fi

python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
# torch first and pinned: a range left to pip may pull a multi-GB CUDA build on Linux
.venv/bin/python -c "import torch" 2>/dev/null || .venv/bin/pip install -q "torch==2.13.0"
want="$(cat pyproject.toml)${EXTRA:-}"
if [ "$(cat .venv/.perform-installed 2>/dev/null)" != "$want" ]; then
    .venv/bin/pip install -q -e ".${EXTRA:+[$EXTRA]}"
    printf '%s' "$want" > .venv/.perform-installed
fi
