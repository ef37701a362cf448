"""Sustained OSC messages per second applied with no loss while the default patch renders.

    .venv/bin/python tools/bench_osc.py [--size 256] [--rates 10000,20000,30000] [--seconds 5]
        [--modes udp,bundle,tcp] [--torch-threads 1] [--no-reference] [--json]

A real show renders patches/spacewalk.py at 30 fps in this process; a sender in another
process sends `/walk/speed <float>` at a fixed rate, paced in batches every millisecond,
either one message per UDP datagram (udp), 16 messages per UDP bundle (bundle), or one
message per SLIP frame on TCP (tcp; about 2 percent of the floats contain a byte SLIP must
escape). Lost = messages sent - the router's `received` count after the sender stops and
the count settles; the kernel's drop counter for the UDP socket says where they went. TCP
cannot lose: it pushes back, so there the sent rate shows whether the server kept up.

Frame times are the engine's own per-frame work times (what FrameStats keeps), taken over
exactly the sending window by swapping a fresh `FrameTap` into `engine.stats` (the show's
own stats still get every frame). The baseline is the same show with no OSC load, measured
the same way before and after all runs: p99 of 150 frames moves by itself, and the two
idle windows show how much. A rate "holds" when nothing is lost and the sender reached 98
percent of it. The sender shares this machine's CPUs, so on 2 cores compare
`--torch-threads 1`: torch's default of a thread per core leaves the sender and the event
loop nowhere to run but between its OpenMP workers.

For reference, python-osc's stock AsyncIOOSCUDPServer with a Dispatcher (a handler that
stores the value) runs in its own process with nothing else running, at the same rates.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any, TextIO

import torch

from perform.core.stats import FrameStats
from perform.show import Show, ShowConfig, wait_ready

PATCH = Path(__file__).resolve().parent.parent / "patches" / "spacewalk.py"
SETTLE = 5.0  # seconds at most to wait for the receive count to stop moving
HOLD = 0.98  # a rate holds if nothing is lost and the sender reached this share of it

SENDER = """\
import json, random, socket, struct, sys, time
mode, port, rate, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
random.seed(1)
messages = [b"/walk/speed\\0,f\\0\\0" + struct.pack(">f", random.random()) for _ in range(4096)]
per = 1
if mode == "bundle":
    per = 16
    packets = [b"#bundle\\0" + struct.pack(">II", 0, 1) + b"".join(
        struct.pack(">i", len(m)) + m for m in messages[i:i + per])
        for i in range(0, len(messages), per)]
elif mode == "tcp":
    packets = [b"\\xc0" + m.replace(b"\\xdb", b"\\xdb\\xdd").replace(b"\\xc0", b"\\xdb\\xdc")
               + b"\\xc0" for m in messages]
else:
    packets = messages
if mode == "tcp":
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    send = lambda batch: sock.sendall(b"".join(batch))
else:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect(("127.0.0.1", port))
    def send(batch):
        for packet in batch:
            sock.send(packet)
total, count, sent = int(rate * seconds / per), len(packets), 0
print("go", flush=True)
start = time.perf_counter()
while sent < total:
    due = min(int((time.perf_counter() - start) * rate / per), total)
    if due > sent:
        send([packets[i % count] for i in range(sent, due)])
        sent = due
    time.sleep(0.001)
took = time.perf_counter() - start
print(json.dumps({"sent": sent * per, "seconds": took}), flush=True)
"""

REFERENCE = """\
import asyncio, os, sys, threading
from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_server import AsyncIOOSCUDPServer
received, value = 0, None
def store(address, *args):
    global received, value
    received, value = received + 1, args[0]
def answer(done):
    for _ in sys.stdin:
        print(received, flush=True)
    done()
async def main():
    dispatcher = Dispatcher()
    dispatcher.map("/walk/speed", store)
    loop = asyncio.get_running_loop()
    transport, _ = await AsyncIOOSCUDPServer(("127.0.0.1", 0), dispatcher,
                                             loop).create_serve_endpoint()
    sock = transport.get_extra_info("socket")
    print(sock.getsockname()[1], os.fstat(sock.fileno()).st_ino, flush=True)
    done = asyncio.Event()
    threading.Thread(target=answer, args=(lambda: loop.call_soon_threadsafe(done.set),),
                     daemon=True).start()
    await done.wait()
asyncio.run(main())
"""


class FrameTap(FrameStats):
    """Every frame of one measured window, passed on to the show's own stats as well.

    The engine records into whatever `engine.stats` is at that moment, so swapping a tap in
    and out gives exactly the frames of the window, unlike the show's rolling 600 frames.
    """

    def __init__(self, show_stats: FrameStats) -> None:
        super().__init__(window=1 << 20)
        self.show_stats = show_stats

    def record(self, work: float, patch: float, published_at: float) -> None:
        super().record(work, patch, published_at)
        self.show_stats.record(work, patch, published_at)

    def add_dropped(self, count: int) -> None:
        super().add_dropped(count)
        self.show_stats.add_dropped(count)

    def add_held(self) -> None:
        super().add_held()
        self.show_stats.add_held()


class Target:
    """A server under test: where to send, and its received and kernel-dropped counts."""

    def __init__(self, port: int, received: Callable[[], int],
                 drops: Callable[[], int | None]) -> None:
        self.port, self.received, self.drops = port, received, drops


def udp_drops(inode: int) -> int | None:
    """The kernel's drop count for the UDP socket with this inode (Linux), else None."""
    try:
        with open("/proc/net/udp") as table:
            for line in table:
                fields = line.split()
                if len(fields) > 12 and fields[9] == str(inode):
                    return int(fields[-1])
    except OSError:
        pass
    return None


def send(target: Target, mode: str, rate: float, seconds: float,
         window: Callable[[], AbstractContextManager[Any]] = nullcontext) -> dict[str, Any]:
    """One paced run of the sender process; `window()` is entered for its sending time only."""
    received, drops = target.received(), target.drops()
    sender = subprocess.Popen([sys.executable, "-c", SENDER, mode, str(target.port), str(rate),
                               str(seconds)], stdout=subprocess.PIPE, text=True)
    assert sender.stdout is not None
    if sender.stdout.readline().strip() != "go":
        raise RuntimeError("the sender did not start")
    with window():
        report = json.loads(sender.stdout.readline())
    if sender.wait() != 0:
        raise RuntimeError("the sender failed")
    deadline, last = time.monotonic() + SETTLE, -1
    while time.monotonic() < deadline:  # let the server read what is still buffered
        got = target.received() - received
        if got >= report["sent"] or got == last:
            break
        last = got
        time.sleep(0.2)
    got = target.received() - received
    after = target.drops()
    dropped = None if drops is None or after is None else after - drops
    return {"mode": mode, "rate": rate, "sent_rate": round(report["sent"] / report["seconds"]),
            "sent": report["sent"], "received": got, "lost": report["sent"] - got,
            "kernel_drops": dropped,
            "holds": got == report["sent"] and report["sent"] / report["seconds"] >= HOLD * rate}


@contextmanager
def reference_server() -> Iterator[Target]:
    """python-osc's stock asyncio UDP server and Dispatcher, alone in its own process."""
    server = subprocess.Popen([sys.executable, "-c", REFERENCE], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert server.stdin is not None and server.stdout is not None
    stdin, stdout = server.stdin, server.stdout
    port, inode = map(int, stdout.readline().split())

    def received() -> int:
        stdin.write("\n")
        stdin.flush()
        return int(stdout.readline())

    try:
        yield Target(port, received, lambda: udp_drops(inode))
    finally:
        stdin.close()
        server.wait(timeout=10)


@contextmanager
def live_show(size: int) -> Iterator[Show]:
    """The default patch at 30 fps, warmed up for two seconds."""
    show = Show(ShowConfig(patch=PATCH, width=size, height=size, fps=30, osc_port=0,
                           http_port=0, zeroconf=False, midi=None))
    thread = threading.Thread(target=asyncio.run, args=(show.serve(),), daemon=True)
    thread.start()
    wait_ready(show)
    time.sleep(2.0)
    try:
        yield show
    finally:
        show.stop.set()
        thread.join(timeout=10)


@contextmanager
def tapped(show: Show, tap: FrameTap) -> Iterator[None]:
    """Frames rendered inside the block go to `tap` (and on to the show's own stats)."""
    show.engine.stats = tap
    try:
        yield
    finally:
        show.engine.stats = show.stats


def frame_times(tap: FrameTap) -> dict[str, Any]:
    """What the issue's frame-time criterion needs from one window."""
    summary = tap.summary()
    return {"fps": summary["fps"], "frame_ms_p50": summary["frame_ms_p50"],
            "frame_ms_p99": summary["frame_ms_p99"], "dropped_frames": summary["dropped"]}


def bench_show(show: Show, modes: list[str], rates: list[float],
               seconds: float) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every mode at every rate on one running show, between two windows with no OSC load.

    The two idle windows, as long as each run, show how much p99 moves by itself; ratios
    are to their mean.
    """
    assert show.osc_address is not None
    target = Target(show.osc_address[1], lambda: show.osc_stats.received,
                    lambda: show.osc.kernel_drops())

    def idle() -> dict[str, Any]:
        tap = FrameTap(show.stats)
        with tapped(show, tap):
            time.sleep(seconds)
        return frame_times(tap)

    baselines, runs = [idle()], []
    for mode in modes:
        for rate in rates:
            tap = FrameTap(show.stats)
            runs.append(send(target, mode, rate, seconds, lambda t=tap: tapped(show, t))
                        | frame_times(tap))
            print(f"{mode} {rate:.0f}/s: lost {runs[-1]['lost']}", file=sys.stderr, flush=True)
    baselines.append(idle())
    p99 = sum(baseline["frame_ms_p99"] for baseline in baselines) / len(baselines)
    for run in runs:
        run["p99_ratio"] = round(run["frame_ms_p99"] / p99, 3)
    return baselines, runs


class Table:
    """The readable report; on stderr when stdout carries JSON."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def line(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def heading(self, with_frames: bool) -> None:
        self.line(f"{'mode':<7} {'asked/s':>7} {'sent/s':>7} {'received':>8} {'lost':>7} "
                  f"{'k.drops':>7} {'holds':>5}"
                  + ("  frame p50     p99  ratio    fps  drop" if with_frames else ""))

    def row(self, run: dict[str, Any]) -> None:
        frame = ""
        if "fps" in run:
            frame = (f"  {run['frame_ms_p50']:>9.2f} {run['frame_ms_p99']:>7.2f} "
                     f"{run['p99_ratio']:>6.2f} {run['fps']:>6.2f} {run['dropped_frames']:>5}")
        drops = "-" if run["kernel_drops"] is None else run["kernel_drops"]
        self.line(f"{run['mode']:<7} {run['rate']:>7.0f} {run['sent_rate']:>7} "
                  f"{run['received']:>8} {run['lost']:>7} {drops:>7} "
                  f"{'yes' if run['holds'] else 'no':>5}{frame}")

    def conclude(self, server: str, runs: list[dict[str, Any]], modes: list[str]) -> None:
        """The highest rate each mode held, and whether frame p99 stayed within 10 percent."""
        for mode in modes:
            held = [run for run in runs if run["mode"] == mode and run["holds"]]
            best = max(held, key=lambda run: run["rate"], default=None)
            if best is None:
                text = "none of the rates tried"
            else:
                text = f"{best['rate']:.0f} msg/s (sent {best['sent_rate']}/s)"
                if "p99_ratio" in best:
                    text += f", frame p99 x{best['p99_ratio']:.2f} of the baseline"
                    steady = [run["rate"] for run in held if run["p99_ratio"] <= 1.1]
                    text += (f"; with p99 within 10 percent: {max(steady):.0f} msg/s" if steady
                             else "; p99 within 10 percent at none")
            self.line(f"{server}, {mode}: highest rate with no loss: {text}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--rates", default="10000,20000,30000,40000,50000,60000")
    parser.add_argument("--seconds", type=float, default=5.0, help="sending time per rate")
    parser.add_argument("--modes", default="udp,bundle,tcp")
    parser.add_argument("--torch-threads", type=int, help="torch.set_num_threads in the show")
    parser.add_argument("--no-reference", action="store_true",
                        help="skip python-osc's stock server")
    parser.add_argument("--json", action="store_true",
                        help="results as JSON on stdout; the table goes to stderr")
    args = parser.parse_args()
    rates = [float(rate) for rate in args.rates.split(",")]
    modes = args.modes.split(",")
    table = Table(sys.stderr if args.json else sys.stdout)
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    results: dict[str, Any] = {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                               "size": args.size, "fps": 30, "seconds": args.seconds}
    table.line(f"{results['cpus']} CPUs, torch threads {results['torch_threads']}, "
               f"{args.seconds:g} s per rate")
    if not args.no_reference:
        table.line("\npython-osc AsyncIOOSCUDPServer + Dispatcher, alone in its process")
        table.heading(with_frames=False)
        with reference_server() as target:
            results["reference"] = []
            for rate in rates:
                results["reference"].append(send(target, "udp", rate, args.seconds))
                table.row(results["reference"][-1])
        table.conclude("python-osc", results["reference"], ["udp"])
    with live_show(args.size) as show:
        results["baselines"], results["runs"] = bench_show(show, modes, rates, args.seconds)
    table.line(f"\nperform, {PATCH.name} {args.size}x{args.size} at 30 fps")
    for when, baseline in zip(("before", "after"), results["baselines"], strict=True):
        table.line(f"no OSC, {when}: frame p50 {baseline['frame_ms_p50']:.2f} ms, p99 "
                   f"{baseline['frame_ms_p99']:.2f} ms, {baseline['fps']} fps, "
                   f"{baseline['dropped_frames']} dropped")
    table.heading(with_frames=True)
    for run in results["runs"]:
        table.row(run)
    table.conclude("perform", results["runs"], modes)
    if args.json:
        print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
