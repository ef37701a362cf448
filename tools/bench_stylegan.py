"""StyleGAN2 milliseconds per frame at batch 1: random weights of real checkpoints' sizes.

    .venv/bin/python tools/bench_stylegan.py [--device cpu|cuda] [--frames 10] [--sizes 256 512]

256x256 uses channel_base 16384 (ADA's default below 512); 512 and 1024 use config-f's
channel counts (channel_base 32768, at most 512 maps). Each frame maps a fresh z and
synthesises with constant noise, through the same `StyleGAN` a patch plays (truncation,
resize, 0..1 output), and the image reaches the host as the engine reads it back.

On CUDA every precision runs twice, eagerly and through recorded CUDA graphs (what perform
does), and the last line per size is the fast path's speed-up over eager fp32.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from perform.core.memory import keep_freed_memory
from perform.core.readback import Readback
from perform.models.graphs import SETTLE
from perform.models.stylegan.checkpoints import convert, read_checkpoint
from perform.models.stylegan.directions import factorise
from perform.models.stylegan.model import PRECISIONS, StyleGAN
from perform.models.stylegan.morph import Morph
from perform.models.stylegan.sg2 import SG2Config, SG2Generator
from perform.models.stylegan.sg3 import SG3Generator, design

CHANNEL_BASE = {256: 16384, 512: 32768, 1024: 32768}


def stylegan3(size: int, config: str, device: torch.device) -> SG3Generator:
    return SG3Generator(design(512, 512, size, config)).eval().requires_grad_(False).to(device)


def generator(size: int, device: torch.device) -> SG2Generator:
    config = SG2Config(img_resolution=size, channels=SG2Config.channels_for(
        size, CHANNEL_BASE[size], 512), conv_clamp=256.0, num_fp16_res=4)  # ADA's defaults
    g = SG2Generator(config).eval().requires_grad_(False).to(device)
    return g.channels_last() if device.type in ("cpu", "cuda") else g  # as perform runs it


def frame_times(g: SG2Generator | SG3Generator, frames: int, warmup: int,
                precision: str, graphs: bool) -> np.ndarray:
    """Milliseconds per frame as a patch gets it: `model(z, psi=0.7)` through `StyleGAN` at
    this precision, the image read back to the host as the engine does it."""
    device = g.mapping.w_avg.device
    size = g.config.img_resolution
    model = StyleGAN(g, "bench", size, size, device, precision, graphs)
    readback = Readback()
    skip = max(warmup, SETTLE + 1) if graphs else warmup  # graphs record on the SETTLE-th
    times = []
    for i in range(skip + frames):
        z = torch.randn(g.config.z_dim, device=device)
        started = time.perf_counter()
        readback.rgb8(model(z, psi=0.7), size, size)  # what every output needs
        if i >= skip:
            times.append(time.perf_counter() - started)
    return np.array(times) * 1e3


def load_times(size: int, folder: Path, repeats: int = 3) -> None:
    """Seconds from file to a generator ready to draw: an NVlabs pickle against its
    conversion. The pickle is written in NVlabs' layout by the tests' own writer."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from small_gans import save_nvlabs

    pickled = save_nvlabs(generator(size, torch.device("cpu")), folder / "snapshot.pkl")
    converted = folder / "snapshot.safetensors"
    convert(pickled, converted)
    for path in (pickled, converted):
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            read_checkpoint(path).build()
            times.append(time.perf_counter() - started)
        print(f"load {path.name} ({path.stat().st_size / 1e6:.0f} MB, {size}px): median "
              f"{np.median(times) * 1e3:.0f} ms")


def morph_and_directions(size: int, repeats: int = 5) -> None:
    """What a fader on a morph costs the render thread, and SeFa at load."""
    a, b = generator(size, torch.device("cpu")), generator(size, torch.device("cpu"))
    pair = Morph(a, b)
    times = []
    for i in range(repeats):
        started = time.perf_counter()
        pair.set(0.1 + 0.8 * i / repeats, "coarse-a")
        times.append(time.perf_counter() - started)
    print(f"morph set() at {size}px, every tensor moving: median "
          f"{np.median(times) * 1e3:.1f} ms, p99 {np.percentile(times, 99) * 1e3:.1f} ms")
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        factorise(a, "all", 16)
        times.append(time.perf_counter() - started)
    print(f"SeFa directions at {size}px, all layers, k=16: median {np.median(times) * 1e3:.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=PRECISIONS,
                        help="see --precision of perform run; on a GPU try fp32 mixed fp16")
    parser.add_argument("--default-malloc", action="store_true",
                        help="leave glibc's malloc as it is (perform tunes it at start)")
    parser.add_argument("--stylegan3", choices=("t", "r"),
                        help="a StyleGAN3 of that configuration (NVlabs' channel counts)")
    parser.add_argument("--morph", action="store_true",
                        help="time a morph fader move and SeFa instead")
    parser.add_argument("--load", action="store_true",
                        help="time loading a pickle against its conversion instead")
    args = parser.parse_args()
    if args.morph:
        keep_freed_memory()
        morph_and_directions(args.sizes[0])
        return
    if args.load:
        with tempfile.TemporaryDirectory() as folder:
            load_times(args.sizes[0], Path(folder))
        return
    if not args.default_malloc:
        keep_freed_memory()
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, {device}, {torch.get_num_threads()} threads")
    for size in args.sizes:
        g = stylegan3(size, args.stylegan3, device) if args.stylegan3 else generator(size, device)
        what = (f"StyleGAN3-{args.stylegan3.upper()}" if args.stylegan3
                else f"channel_base {CHANNEL_BASE[size]}")
        params = sum(p.numel() for p in g.parameters()) / 1e6
        medians = {}
        for graphs in (False, True) if device.type == "cuda" else (False,):
            for precision in args.precisions:
                ms = frame_times(g, args.frames, args.warmup, precision, graphs)
                medians[precision, graphs] = np.median(ms)
                print(f"{size}x{size} ({what}, {params:.1f} M params) {precision}"
                      f"{' graphed' if graphs else ''}: median {np.median(ms):.2f} ms, "
                      f"p99 {np.percentile(ms, 99):.2f} ms ({1000 / np.median(ms):.1f} fps)")
        if ("fp32", False) in medians and len(medians) > 1:
            (precision, graphs), best = min(medians.items(), key=lambda item: item[1])
            print(f"{size}x{size}: {precision}{' graphed' if graphs else ''} is "
                  f"{medians['fp32', False] / best:.2f}x eager fp32")


if __name__ == "__main__":
    main()
