"""Where frames go: `--output KIND[:option=value,...]`, every one at once, each on its own
thread (see `base.py`). The window and the browser preview are always-on kinds of their own;
the rest are listed here, imported when asked for, so a package one of them needs is
needed by that one alone.
"""

from __future__ import annotations

import importlib

from perform.outputs.base import Output, OutputSpec

KINDS = {  # kind -> (module, class)
    "record": ("perform.outputs.recorder", "Recorder"),
    "ndi": ("perform.outputs.ndi", "NdiOutput"),
    "virtualcam": ("perform.outputs.virtualcam", "VirtualCamera"),
    "spout": ("perform.outputs.spout", "SpoutOutput"),
    "syphon": ("perform.outputs.syphon", "SyphonOutput"),
}


def make_output(spec: OutputSpec, width: int, height: int, fps: float) -> Output:
    """The output `spec` asks for, its options checked (ValueError says what is wrong)."""
    if spec.kind not in KINDS:
        raise ValueError(f"no output kind {spec.kind!r}; there are window, preview, "
                         + ", ".join(KINDS))
    module, name = KINDS[spec.kind]
    kind: type[Output] = getattr(importlib.import_module(module), name)
    return kind(spec, width, height, fps)
