"""The control page's WebSocket fan-out: what N pages cost the render, and the round trip.

    .venv/bin/python tools/bench_control.py [--clients 20] [--seconds 5] [--size 64x48]

A show renders the default patch (patches/spacewalk.py, with an unsmoothed `bench/mark`
param added) at 60 fps while `walk/speed` is changed 60 times a second. It reports the
render's frame time p99 without pages and with N pages reading /api/live, then the round
trip from one page's `{"set": ...}` to the first frame published with that value.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import threading
import time
from pathlib import Path

import aiohttp
import numpy as np

from perform.core.frames import Frame, Mailbox
from perform.core.stats import FrameStats
from perform.show import Show, ShowConfig, wait_ready

DEFAULT = Path(__file__).resolve().parent.parent / "patches" / "spacewalk.py"


class Marks(Mailbox):
    """When each frame was published, and the bench/mark it was drawn with."""

    def __init__(self) -> None:
        super().__init__("marks")
        self.entries: list[tuple[float, float]] = []

    def put(self, frame: Frame) -> None:
        self.entries.append((frame.rendered_at, float(frame.params.get("bench/mark", -1.0))))


def p(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values) * 1000, q))


async def change_speed(show: Show, stop: asyncio.Event) -> None:
    """walk/speed, 60 times a second, from the show's own loop (as OSC would)."""
    assert show._loop is not None
    i = 0
    while not stop.is_set():
        show._loop.call_soon_threadsafe(show.store.set, "walk/speed", (i % 100) / 200)
        i += 1
        await asyncio.sleep(1 / 60)


async def reader(session: aiohttp.ClientSession, url: str, counts: list[int]) -> None:
    async with session.ws_connect(url) as ws:
        async for _ in ws:
            counts[0] += 1


async def frame_p99(show: Show, seconds: float) -> tuple[float, float, int]:
    """The render's own frame times over the next `seconds` (counted afresh)."""
    show.stats = show.engine.stats = FrameStats()
    await asyncio.sleep(seconds)
    summary = show.stats.summary()
    return summary["frame_ms_p50"], summary["frame_ms_p99"], summary["frames"]


async def round_trip(url: str, marks: Marks, samples: int, base: float) -> list[float]:
    """`base` keeps each run's marks apart from the last's."""
    trips = []
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        await ws.receive()  # the full list
        for i in range(1, samples + 1):
            value = base + i / (samples + 1)
            sent = time.monotonic()
            await ws.send_json({"set": {"bench/mark": value}})
            while True:
                published = next((at for at, mark in reversed(marks.entries[-10:])
                                  if mark == value), None)
                if published is not None:
                    break
                await asyncio.sleep(0.0005)
            first = next(at for at, mark in marks.entries if mark == value)
            trips.append(first - sent)
            await asyncio.sleep(random.uniform(0.02, 0.05))  # not in step with the frames
    return trips


async def bench(show: Show, marks: Marks, url: str, clients: int, seconds: float) -> None:
    stop = asyncio.Event()
    changer = asyncio.create_task(change_speed(show, stop))
    await asyncio.sleep(1.0)
    p50, p99, n = await frame_p99(show, seconds)
    print(f"render frame time, no pages:        p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  (n={n})")
    counts = [0]
    async with aiohttp.ClientSession() as session:
        readers = [asyncio.create_task(reader(session, url, counts)) for _ in range(clients)]
        await asyncio.sleep(1.0)
        start = counts[0]
        p50, p99, n = await frame_p99(show, seconds)
        rate = (counts[0] - start) / seconds / clients
        print(f"render frame time, {clients} pages:       p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  "
              f"(n={n}; {rate:.1f} messages/s per page)")
        trips = await round_trip(url, marks, 100, 1.0)
        print(f"set -> first frame with it ({clients} pages open): p50 {p(trips, 50):6.2f} ms  "
              f"p99 {p(trips, 99):6.2f} ms  (n={len(trips)})")
        for task in readers:
            task.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
    trips = await round_trip(url, marks, 100, 2.0)
    print(f"set -> first frame with it (1 page):  p50 {p(trips, 50):6.2f} ms  "
          f"p99 {p(trips, 99):6.2f} ms  (n={len(trips)})")
    stop.set()
    await changer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--size", default="64x48")
    parser.add_argument("--fps", type=float, default=60.0)
    args = parser.parse_args()
    width, height = map(int, args.size.split("x"))
    with tempfile.TemporaryDirectory() as folder:
        patch = Path(folder) / "spacewalk.py"
        patch.write_text(DEFAULT.read_text() + '\nmark = param("bench/mark", 0.0)\n')
        show = Show(ShowConfig(patch=patch, width=width, height=height, fps=args.fps,
                               osc_port=0, http_port=0, zeroconf=False, midi=None))
        marks = Marks()
        show.engine.outputs.append(marks)
        thread = threading.Thread(target=asyncio.run, args=(show.serve(),), daemon=True)
        thread.start()
        wait_ready(show)
        url = "ws://{}:{}/api/live".format(*show.http_address)
        print(f"{width}x{height} at {args.fps:g} fps on {show.device}, walk/speed set 60/s")
        try:
            asyncio.run(bench(show, marks, url, args.clients, args.seconds))
        finally:
            show.stop.set()
            thread.join(timeout=10)


if __name__ == "__main__":
    main()
