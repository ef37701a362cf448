"""Check perform draws your checkpoint as NVlabs' own code does, against an image you made.

    .venv/bin/python tools/check_reference.py CHECKPOINT REF.png --seed 42 [--psi 1] [--class N]

Make REFERENCE.png with the tools you trained with, e.g. NVlabs' `gen_images.py --seeds 42
--trunc 1 --noise-mode const` (z drawn by numpy's RandomState(seed).randn, constant noise,
no camera move). This draws the same seed the same way and compares: a match means
perform's clean-room generator reproduces your model; a mismatch is worth an issue with
the PSNR printed here. Exit status 0 when they match, 1 when they differ.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch
from PIL import Image

from perform.models.stylegan.checkpoints import CheckpointError, read_checkpoint
from perform.models.stylegan.sg2 import Noise

MATCH_PSNR = 35.0  # dB: above it the two differ only by arithmetic (fp16 on a GPU, say)


def draw(path: str, seed: int, psi: float, label: int | None) -> np.ndarray:
    """The image NVlabs' generator script would write for this seed, as uint8 HxWx3."""
    generator = read_checkpoint(path).build()
    config = generator.config
    z = torch.from_numpy(np.random.RandomState(seed).randn(1, config.z_dim)).float()
    c = None
    if config.c_dim:
        c = torch.zeros(1, config.c_dim)
        c[0, label or 0] = 1.0
    with torch.inference_mode():
        w = generator.mapping(z, c)
        w = generator.mapping.w_avg.lerp(w, psi)
        image = generator.synthesis(w[:, None].expand(-1, generator.num_ws, -1), Noise("const"))
    image = (image[0].permute(1, 2, 0) * 127.5 + 128).clamp(0, 255).to(torch.uint8)
    return image.numpy()


def compare(ours: np.ndarray, theirs: np.ndarray) -> tuple[float, float, int]:
    """(PSNR in dB, mean and max absolute difference in levels of 255)."""
    difference = ours.astype(np.float64) - theirs.astype(np.float64)
    mse = float(np.mean(difference ** 2))
    psnr = float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)
    return psnr, float(np.abs(difference).mean()), int(np.abs(difference).max())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("reference")
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--psi", type=float, default=1.0, help="truncation (default 1)")
    parser.add_argument("--class", dest="label", type=int, help="for a conditional model")
    args = parser.parse_args(argv)
    try:
        ours = draw(args.checkpoint, args.seed, args.psi, args.label)
        theirs = np.asarray(Image.open(args.reference).convert("RGB"))
    except (CheckpointError, OSError) as exc:
        print(f"check_reference: {exc}", file=sys.stderr)
        return 2
    if ours.shape != theirs.shape:
        print(f"different sizes: perform draws {ours.shape[1]}x{ours.shape[0]}, the reference "
              f"is {theirs.shape[1]}x{theirs.shape[0]}")
        return 1
    psnr, mean, worst = compare(ours, theirs)
    verdict = "match" if psnr >= MATCH_PSNR else "DIFFER"
    print(f"{verdict}: PSNR {psnr:.1f} dB, mean difference {mean:.2f} and at most {worst} "
          f"levels of 255 (seed {args.seed}, psi {args.psi:g})")
    return 0 if psnr >= MATCH_PSNR else 1


if __name__ == "__main__":
    sys.exit(main())
