"""Frames per second of the embedded CPPN model at several sizes (and of a morph).

On a GPU each frame includes the copy back to the host, where every output takes it.

    .venv/bin/python tools/bench_cppn.py [--device cuda] [--frames 60]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from perform import walks
from perform.models.host import ModelHost


def time_frames(render, frames: int, sync) -> np.ndarray:
    for i in range(5):
        render(i)
    sync()
    took = []
    for i in range(frames):
        start = time.perf_counter()
        render(i)
        sync()
        took.append(time.perf_counter() - start)
    return np.array(took) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--sizes", default="256,512,1024")
    args = parser.parse_args()
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'case':<22}{'median ms':>10}{'p99 ms':>10}{'fps':>8}")
    for side in map(int, args.sizes.split(",")):
        host = ModelHost(side, side, device)
        cases = {f"cppn {side}x{side}": host.get("cppn:seed=7")}
        if side == 512:
            cases[f"morph {side}x{side}"] = host.morph("cppn:seed=7", "cppn:seed=21")
        for name, model in cases.items():
            def render(i: int, model=model, name=name) -> None:
                z = walks.noise_loop(i / 120, dim=model.z_dim, radius=1.2)
                # the morph's fader moves every frame, so its weights are blended every frame
                morphing = name.startswith("morph")
                image = model(z, mix=(i % 50) / 50) if morphing else model(z)
                image.cpu()

            ms = time_frames(render, args.frames, sync)
            median = float(np.median(ms))
            print(f"{name:<22}{median:>10.2f}{np.percentile(ms, 99):>10.2f}"
                  f"{1000 / median:>8.1f}")


if __name__ == "__main__":
    main()
