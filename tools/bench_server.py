"""What the server itself costs: per-frame overhead, OSC-to-frame latency, reload latency.

    .venv/bin/python tools/bench_server.py [--size 512] [--fps 60] [--messages 200]

Latencies use time.monotonic(), which Linux shares between processes, so the OSC sender
can be a separate process that writes its send time into the message itself.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from perform.core.frames import Frame, Mailbox
from perform.core.loader import load_patch
from perform.core.params import ParamStore
from perform.engine import Engine
from perform.models.host import ModelHost
from perform.show import Show, ShowConfig, wait_ready

PATCH = """\
from perform import models, param, walks

mark = param("bench/mark", 0.0)
model = models.load("cppn:seed=7")
VERSION = {version}


def frame(ctx):
    return model(walks.noise_loop(ctx.t * 0.05, dim=model.z_dim, radius=1.2))
"""

SENDER = """\
import random, sys, time
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.udp_client import UDPClient
client = UDPClient("127.0.0.1", int(sys.argv[1]))
for _ in range(int(sys.argv[2])):
    time.sleep(random.uniform(0.05, 0.15))
    message = OscMessageBuilder("/bench/mark")
    message.add_arg(time.monotonic(), "d")
    client.send(message.build())
"""


class Timeline(Mailbox):
    """Notes when each frame was published and with which mark and patch version."""

    def __init__(self) -> None:
        super().__init__("timeline")
        self.entries: list[tuple[float, float, int]] = []

    def put(self, frame: Frame) -> None:
        self.entries.append((frame.rendered_at, float(frame.params.get("bench/mark", 0.0)),
                             frame.patch_version))


def summary(name: str, ms: np.ndarray) -> None:
    print(f"{name:<44} p50 {np.median(ms):7.3f} ms   p99 {np.percentile(ms, 99):7.3f} ms"
          f"   (n={len(ms)})")


def overhead(size: int, frames: int, folder: Path) -> None:
    """Everything a frame costs except the patch's own frame(ctx)."""
    patch = folder / "still.py"
    patch.write_text(textwrap.dedent(f"""\
        import torch
        from perform import param
        speed = param("walk/speed", 0.1, 0.0, 1.0, smooth=0.2)
        size = param("walk/size", 1.0, 0.0, 4.0)
        image = torch.zeros({size}, {size}, 3, dtype=torch.uint8)
        def frame(ctx):
            return image
        """))
    models = ModelHost(size, size, torch.device("cpu"))
    engine = Engine(ParamStore(), models, width=size, height=size, fps=60,
                    outputs=[Mailbox("a"), Mailbox("b")])
    engine.offer(load_patch(patch, 1, models))
    work = []
    for i in range(frames):
        start = time.perf_counter()
        engine.render_one(i / 60)
        work.append(time.perf_counter() - start)
    summary(f"server overhead per frame, {size}x{size}", np.array(work[100:]) * 1000)


@contextlib.contextmanager
def live(folder: Path, size: int, fps: float) -> Iterator[tuple[Show, Path, Timeline]]:
    """A running show on the bench patch, warmed up for a second."""
    patch = folder / f"bench_{size}_{fps:g}.py"
    patch.write_text(PATCH.format(version=0))
    show, timeline = Show(ShowConfig(patch=patch, width=size, height=size, fps=fps,
                                     osc_port=0, http_port=0, midi=None)), Timeline()
    show.engine.outputs.append(timeline)
    thread = threading.Thread(target=asyncio.run, args=(show.serve(),), daemon=True)
    thread.start()
    wait_ready(show)
    time.sleep(1.0)
    try:
        yield show, patch, timeline
    finally:
        show.stop.set()
        thread.join()


def osc_latency(size: int, fps: float, messages: int, folder: Path) -> None:
    with live(folder, size, fps) as (show, _, timeline):
        assert show.osc_address is not None
        subprocess.run([sys.executable, "-c", SENDER, str(show.osc_address[1]),
                        str(messages)], check=True)
        time.sleep(0.5)
    latencies, last = [], 0.0
    for published, mark, _ in timeline.entries:
        if mark != last:
            latencies.append(published - mark)
            last = mark
    stats = show.stats.summary()
    summary(f"OSC -> frame latency, {size}x{size} @ {fps:g} fps", np.array(latencies) * 1000)
    print(f"{'':<44} frame p50 {stats['frame_ms_p50']} ms, interval {1000 / fps:.2f} ms, "
          f"{stats['fps']} fps")


def reload_latency(size: int, fps: float, saves: int, folder: Path) -> None:
    with live(folder, size, fps) as (show, patch, timeline):
        dropped_before = show.stats.dropped
        latencies = []
        for version in range(1, saves + 1):
            time.sleep(0.3)
            newest = timeline.entries[-1][2]
            patch.write_text(PATCH.format(version=version))
            saved = time.monotonic()
            while timeline.entries[-1][2] == newest:
                time.sleep(0.001)
            latencies.append(next(p for p, _, v in timeline.entries if v > newest) - saved)
        dropped = show.stats.dropped - dropped_before
    summary(f"save -> first new frame, {size}x{size} @ {fps:g} fps", np.array(latencies) * 1000)
    print(f"{'':<44} dropped frames during {saves} reloads: {dropped}, held: {show.stats.held}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--saves", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        overhead(512, 2000, folder)
        for size, fps in ((64, 60), (256, 60), (512, 30), (512, 60)):
            osc_latency(size, fps, args.messages, folder)
        for size, fps in ((256, 60), (512, 30)):
            reload_latency(size, fps, args.saves, folder)


if __name__ == "__main__":
    main()
