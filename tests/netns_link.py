"""A live show in an Ableton Link session with a peer in another process; run only in a
private network namespace (test_link.py). The peer starts at 140 BPM, the show at 100; when
they meet, Link merges them into one session (either tempo may win), so the show must agree
with the peer on tempo and beat, then follow the peer to 90 when the peer changes it.
Exits 0 on success; otherwise says what failed.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from perform.show import Show, ShowConfig, wait_ready

PATCH = Path(__file__).resolve().parent.parent / "patches" / "spacewalk.py"
PEER = """\
import asyncio, sys, time, aalink
async def main():
    link = aalink.Link(140.0)
    link.enabled = True
    for line in sys.stdin:  # "state": print our clock, the beat and tempo; "90": set it
        if line.strip() == "state":
            print(time.monotonic(), link.beat, link.tempo, flush=True)
        else:
            link.tempo = float(line)
asyncio.run(main())
"""


async def until(check: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def main() -> None:
    peer = subprocess.Popen([sys.executable, "-c", PEER], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    show = Show(ShowConfig(patch=PATCH, width=32, height=24, fps=30.0, osc_port=0, http_port=0,
                           zeroconf=False, link=True, bpm=100.0, midi=None))
    thread = threading.Thread(target=asyncio.run, args=(show.serve(),), daemon=True)
    thread.start()
    try:
        await asyncio.to_thread(wait_ready, show)
        await check(show, peer)
    finally:
        show.stop.set()
        peer.kill()
        await asyncio.to_thread(thread.join, 10)


def ask(peer: subprocess.Popen[str], line: str) -> list[float]:
    assert peer.stdin is not None and peer.stdout is not None
    peer.stdin.write(line + "\n")
    peer.stdin.flush()
    return [float(word) for word in peer.stdout.readline().split()] if line == "state" else []


async def check(show: Show, peer: subprocess.Popen[str]) -> None:
    def tempo() -> dict:
        return show.state()["tempo"]

    await until(lambda: tempo()["peers"] == 1 and tempo()["bpm"] == round(ask(peer, "state")[2], 3),
                "the show and the peer to share one session")
    gaps = []
    for _ in range(10):  # the show's beat and the peer's, read at the same moment
        at, beat, bpm = ask(peer, "state")
        mine = show.engine.tempo.reading(0.0).beat
        gaps.append(abs(mine - beat - (time.monotonic() - at) * bpm / 60))
    median = sorted(gaps)[5]
    if median > 0.05:
        raise SystemExit(f"the show's beat is {median:.3f} beats from the peer's")
    ask(peer, "90")
    await until(lambda: tempo()["bpm"] == 90.0, "the show to follow the peer to 90 BPM")
    print(f"joined: one session, followed the peer to 90 BPM, beat within {median:.5f} beats")


asyncio.run(main())
