"""Audio to frame: a click played into the show's input, to the first frame that reacts.

    .venv/bin/python tools/bench_audio_latency.py [--clicks 60] [--fps 60] [--period 256]

A private JACK server on its dummy driver stands in for the sound card. A player process
writes a click into its output every 0.45 to 0.55 s and prints when (time.monotonic() as
its callback hands JACK the block with the click: JACK delivers a whole block at once, so
that is the earliest any of it can be heard); a show listening to that output
renders at `--fps` a patch that lights up on `ctx.hit()`. Latency is the first lit frame's
publication minus the click: JACK's buffering, the capture process and its pipe, the
analyser's hop, the wait for the next frame slot and the frame itself. Needs jackd and
PortAudio (see tools/setup.sh).
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent

PLAYER = """
import os, random, sys, time
import numpy as np
import sounddevice
state = {"next": 48000, "played": 0}
def play(out, frames, when, status):
    out[:] = 0.0
    start, now = state["played"], time.monotonic()
    while state["next"] < start + frames:
        at = state["next"] - start
        out[at:at + 96, 0] = np.random.uniform(-0.8, 0.8, min(96, frames - at))
        print(now, flush=True)
        state["next"] += int(random.uniform(0.45, 0.55) * 48000)
    state["played"] += frames
stream = sounddevice.OutputStream(samplerate=48000, channels=2, dtype="float32", callback=play)
stream.start()
sys.stdin.read()
stream.close()
sounddevice._terminate()
os._exit(0)
"""

FLASH = """\
import numpy as np


def frame(ctx):
    return np.full((ctx.height, ctx.width, 3), 1.0 if ctx.hit() else 0.0, np.float32)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clicks", type=int, default=60)
    parser.add_argument("--fps", type=float, default=60.0)
    parser.add_argument("--period", type=int, default=256, help="JACK frames a cycle")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "tests"))
    from jack import jack_server

    from perform.audio.listen import AudioConfig
    from perform.audio.sources import list_devices
    from perform.core.frames import Frame, Mailbox
    from perform.show import Show, ShowConfig, wait_ready

    class Lit(Mailbox):
        """When each lit frame was published."""

        def __init__(self) -> None:
            super().__init__("lit")
            self.times: list[float] = []

        def put(self, frame: Frame) -> None:
            if frame.image[0, 0, 0] > 128:
                self.times.append(frame.rendered_at)

    with jack_server(audio=2, period=args.period), tempfile.TemporaryDirectory() as folder:
        player = subprocess.Popen([sys.executable, "-c", PLAYER], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)
        clicks: list[float] = []
        threading.Thread(target=lambda: clicks.extend(float(line) for line in player.stdout),
                         daemon=True).start()
        time.sleep(0.5)
        name = next(label.split(": ", 1)[1].split(" (")[0] for label in list_devices()
                    if "system" not in label)
        patch = Path(folder) / "flash.py"
        patch.write_text(FLASH)
        show = Show(ShowConfig(patch=patch, width=64, height=48, fps=args.fps, osc_port=0,
                               http_port=0, zeroconf=False, midi=None,
                               audio=AudioConfig(device=name, channels=(1,))))
        lit = Lit()
        show.engine.outputs.append(lit)
        server = threading.Thread(target=asyncio.run, args=(show.serve(),), daemon=True)
        server.start()
        wait_ready(show)
        started = time.monotonic()
        while len([c for c in clicks if c > started + 1.0]) < args.clicks:
            time.sleep(0.1)
        time.sleep(0.2)
        heard_by_show = show.listening.status() if show.listening else {}
        show.stop.set()
        server.join(timeout=10)
        player.stdin.close()
        player.wait(timeout=5)
    heard = [c for c in clicks if c > started + 1.0][:args.clicks]
    lit_times = np.array(lit.times)
    latencies = []
    for click in heard:
        after = lit_times[lit_times > click]
        if len(after) and after[0] - click < 0.2:
            latencies.append(after[0] - click)
    ms = np.array(latencies) * 1000
    print(f"JACK period {args.period} at 48 kHz ({args.period / 48:.1f} ms), {args.fps:g} fps: "
          f"{len(latencies)}/{len(heard)} clicks lit a frame within 200 ms")
    print(f"the input: {heard_by_show.get('blocks')} blocks, "
          f"{heard_by_show.get('overflows')} overflows (blocks JACK or the pipe dropped)")
    print(f"click to first lit frame: median {np.median(ms):.1f} ms, p99 "
          f"{np.percentile(ms, 99):.1f} ms, min {ms.min():.1f} ms, max {ms.max():.1f} ms")


if __name__ == "__main__":
    main()
