"""What the outputs cost the render: the default show with no outputs, then with the window,
a browser watching the preview, NDI and a recording all at once.

    .venv/bin/python tools/bench_outputs.py [--size 512] [--fps 60] [--seconds 15]

It runs itself inside a private network namespace (NDI announces itself by multicast and
listens on every interface: never on the machine's real network) and opens the window on a
private Xvfb. Frame times are the engine's own (work per frame, over the last frames of
each run); per output: frames sent a second, frames it never took (dropped), and the time
from a frame's publication to the output having handed it on (latency).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
NETNS_SETUP = ("ip link set lo up && ip link set lo multicast on && "
               "ip route add 224.0.0.0/4 dev lo")


def inside_namespace() -> None:
    """Run this script again in a new network namespace, with loopback multicast."""
    command = f"{NETNS_SETUP} && exec {sys.executable} {Path(__file__)} --inside " + " ".join(
        sys.argv[1:])
    sys.exit(subprocess.run(["unshare", "-n", "sh", "-c", command], cwd=ROOT).returncode)


def watch_preview(url: str, stop: threading.Event, seen: list[float]) -> None:
    """A browser's worth of MJPEG viewing: read the stream, note when each JPEG arrives."""
    with urllib.request.urlopen(url + "/stream.mjpg", timeout=10) as stream:
        while not stop.is_set():
            line = stream.readline()
            if line.startswith(b"Content-Length:"):
                stream.readline()
                stream.read(int(line.split(b":")[1]))
                seen.append(time.monotonic())


def run(args: argparse.Namespace, window: bool, preview: bool,
        outputs: tuple[str, ...]) -> dict[str, Any]:
    from perform.core.stats import FrameStats
    from perform.outputs.base import OutputSpec
    from perform.show import Show, ShowConfig, wait_ready

    show = Show(ShowConfig(patch=ROOT / "patches" / "spacewalk.py", width=args.size,
                           height=args.size, fps=args.fps, osc_port=0, http_port=0,
                           zeroconf=False, midi=None,
                           window=OutputSpec("window", {"vsync": "off"}) if window else None,
                           outputs=tuple(OutputSpec.parse(o) for o in outputs)))
    result: dict[str, Any] = {}
    preview_seen: list[float] = []

    def measure() -> None:
        wait_ready(show)
        time.sleep(args.warmup)  # the patch loaded, the model warm, every output open
        show.stats = show.engine.stats = FrameStats()  # count from here
        stop_viewing = threading.Event()
        if preview:
            url = "http://{}:{}".format(*show.http_address)
            threading.Thread(target=watch_preview, args=(url, stop_viewing, preview_seen),
                             daemon=True).start()
        time.sleep(args.seconds)
        result.update(show.state())
        stop_viewing.set()
        show.stop.set()

    threading.Thread(target=measure, daemon=True).start()
    show.run()
    if len(preview_seen) > 10:
        recent = preview_seen[len(preview_seen) // 2:]
        result["preview_fps"] = (len(recent) - 1) / (recent[-1] - recent[0])
    return result


def report(name: str, state: dict[str, Any]) -> float:
    f = state["frames"]
    print(f"{name}: {f['fps']} fps, frame p50 {f['frame_ms_p50']} ms, p99 {f['frame_ms_p99']} ms, "
          f"dropped slots {f['dropped']}")
    for o in state.get("outputs", []):
        print(f"  {o['output']}: {o['status']}, {o['fps']} fps, dropped {o['dropped']}, "
              f"latency p50 {o.get('latency_ms_p50')} ms p99 {o.get('latency_ms_p99')} ms"
              + (f", error {o['last_error']}" if o.get("last_error") else ""))
    if "preview_fps" in state:
        print(f"  preview (one MJPEG viewer): {state['preview_fps']:.1f} fps")
    return f["frame_ms_p99"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--fps", type=float, default=60.0)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--torch-threads", type=int, help="as perform run's option")
    parser.add_argument("--each", action="store_true", help="also each output on its own")
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not args.inside:
        if shutil.which("unshare") is None:
            sys.exit("needs unshare (util-linux) and ip (iproute2)")
        inside_namespace()
    sys.path.insert(0, str(ROOT / "tests"))
    from display import xvfb

    from perform.core.memory import keep_freed_memory

    keep_freed_memory()
    if args.torch_threads:
        import torch

        torch.set_num_threads(args.torch_threads)
    with tempfile.TemporaryDirectory() as folder, xvfb("1280x1024x24"):
        os.environ.pop("WAYLAND_DISPLAY", None)
        import torch

        print(f"{args.size}x{args.size} at {args.fps:g} fps, {args.seconds:g} s a run, "
              f"default patch (CPPN), {torch.get_num_threads()} torch threads, "
              f"{os.cpu_count()} cores")
        ndi, record = "ndi:name=bench", f"record:path={folder}/bench.mp4"
        alone = report("no outputs", run(args, False, False, ()))
        if args.each:
            for name, window, preview, outputs in (("window", True, False, ()),
                                                   ("preview", False, True, ()),
                                                   ("NDI", False, False, (ndi,)),
                                                   ("recording", False, False, (record,))):
                p99 = report(f"{name} alone", run(args, window, preview, outputs))
                print(f"  frame-time p99 / without: {p99 / alone:.3f}")
        everything = report("window + preview + NDI + recording",
                            run(args, True, True, (ndi, record)))
        print(f"frame-time p99 with every output / without: {everything / alone:.3f}")


if __name__ == "__main__":
    main()
