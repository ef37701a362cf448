"""The steady-state frame on CUDA as a recorded graph, replayed with one launch.

At batch 1 a generator's low-resolution layers are tiny kernels, and launching a few hundred
of them from Python costs more than running them. A CUDA graph records the kernels of one
call, with its inputs in tensors that stay put, and replays them each frame after the new
inputs are copied in. Weights changed in place (a morph's fader, a StyleGAN3's camera) are
read by the replay as they are then; what changes the kernels themselves (another noise
mode, another input shape) records a graph of its own.

A call is recorded once it has been seen `SETTLE` times, so a one-off costs no recording.
Recording that fails (an op that waits for the host, one CUDA cannot capture) is logged
once and that call keeps running eagerly: the show goes on, a little slower.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

import torch

log = logging.getLogger("perform.models")

SETTLE = 3  # calls of one kind before it is recorded

# fn(key, tensors, scalars): `scalars` are floats when run eagerly, 0-d device tensors when
# recorded, so a graph reads their values at replay time
Drawing = Callable[[Hashable, Sequence[torch.Tensor], Sequence[float | torch.Tensor]],
                   torch.Tensor]


@dataclass
class _Recording:
    graph: torch.cuda.CUDAGraph
    tensors: list[torch.Tensor]  # where each replay reads its inputs
    scalars: list[torch.Tensor]
    out: torch.Tensor  # where each replay writes its result


class Graphed:
    """`fn` run through CUDA graphs when `enabled` (on a CUDA device), else called as it is.

    `fn` must only launch work on the device: no `.item()`, no copies from the host, no
    shapes that depend on values. The result is a fresh tensor each call (a patch may keep
    last frame's image), at the cost of one copy on the device.
    """

    def __init__(self, fn: Drawing, name: str, enabled: bool) -> None:
        self.fn, self.name, self.enabled = fn, name, enabled
        self._seen: dict[Hashable, int] = {}
        self._recordings: dict[Hashable, _Recording | None] = {}  # None: recording failed
        self.replays = 0

    def __call__(self, key: Hashable, tensors: Sequence[torch.Tensor],
                 scalars: Sequence[float] = ()) -> torch.Tensor:
        if not self.enabled:
            return self.fn(key, tensors, scalars)
        kind = (key, tuple((t.shape, t.dtype, t.stride(), t.device) for t in tensors))
        if kind not in self._recordings:
            self._seen[kind] = seen = self._seen.get(kind, 0) + 1
            if seen < SETTLE:
                return self.fn(key, tensors, scalars)
            self._recordings[kind] = self._record(key, tensors, scalars)
        recording = self._recordings[kind]
        if recording is None:
            return self.fn(key, tensors, scalars)
        for static, tensor in zip(recording.tensors, tensors, strict=True):
            static.copy_(tensor, non_blocking=True)
        for static, value in zip(recording.scalars, scalars, strict=True):
            static.fill_(value)
        recording.graph.replay()
        self.replays += 1
        return recording.out.clone()

    def _record(self, key: Hashable, tensors: Sequence[torch.Tensor],
                scalars: Sequence[float]) -> _Recording | None:
        device = tensors[0].device
        static = [t.clone() for t in tensors]
        values = [torch.full((), float(v), device=device) for v in scalars]
        try:
            # run once on a side stream first: lazy set-up and cuDNN's algorithm choices
            # must happen outside the recording
            side = torch.cuda.Stream(device)
            side.wait_stream(torch.cuda.current_stream(device))
            with torch.cuda.stream(side):
                self.fn(key, static, values)
            torch.cuda.current_stream(device).wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            # thread_local: a model loading on another thread may use CUDA meanwhile
            with torch.cuda.graph(graph, capture_error_mode="thread_local"):
                out = self.fn(key, static, values)
        except Exception as exc:  # any failure here only costs speed
            log.warning("%s: no CUDA graph for %s (%s); drawing without one",
                        self.name, key, exc)
            return None
        log.info("%s: recorded a CUDA graph for %s", self.name, key)
        return _Recording(graph, static, values, out)
