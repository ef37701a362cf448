"""Small random StyleGAN2 generators, and pickles in NVlabs' layout written without NVlabs
code, for the tests.

NVlabs' `persistent_class` pickles each network as a call to
`torch_utils.persistence._reconstruct_persistent_obj(meta)`; these helpers write the same
calls, naming throwaway `torch_utils` and `dnnlib` modules that exist only while a file is
written. `save_nvlabs` files one of our StyleGAN2 generators as a training snapshot would.
"""

from __future__ import annotations

import contextlib
import dataclasses
import pickle
import sys
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from perform.models.stylegan import sg2, sg3

MODULE_SRC = 'raise SystemExit("module_src must never run")\n\nclass Generator:\n    pass\n'
FAKE_MODULES = ("torch_utils", "torch_utils.persistence", "dnnlib", "dnnlib.util")
PROTOCOLS = (2, 3, 4, 5)


@contextlib.contextmanager
def nvlabs_names() -> Iterator[type[dict]]:
    """Lets pickle name NVlabs' globals while a test writes a file, and yields `EasyDict`.

    The modules are removed again afterwards, so a loader that tried to use them would fail.
    """

    def reconstruct(meta: dict[str, Any]) -> Any:
        raise AssertionError("the loader must never call NVlabs' reconstructor")

    reconstruct.__module__ = "torch_utils.persistence"
    reconstruct.__name__ = reconstruct.__qualname__ = "_reconstruct_persistent_obj"
    easy_dict = type("EasyDict", (dict,), {"__module__": "dnnlib.util"})
    modules = {name: types.ModuleType(name) for name in FAKE_MODULES}
    modules["torch_utils.persistence"]._reconstruct_persistent_obj = reconstruct
    modules["torch_utils"].persistence = modules["torch_utils.persistence"]
    modules["dnnlib.util"].EasyDict = easy_dict
    modules["dnnlib"].util = modules["dnnlib.util"]
    sys.modules.update(modules)
    try:
        yield easy_dict
    finally:
        for name in FAKE_MODULES:
            sys.modules.pop(name, None)


def persistent_call(class_name: str, state: dict[str, Any]) -> Call:
    """What NVlabs' `persistent_class` turns an object into when it is pickled."""
    meta = dict(type="class", version=6, module_src=MODULE_SRC, class_name=class_name,
                state=state)
    return Call(sys.modules["torch_utils.persistence"]._reconstruct_persistent_obj, meta)


class Call:
    """Pickles as `function(*args)`, then `BUILD state` if given: what any pickle is made of."""

    def __init__(self, function: Callable[..., Any], *args: Any, state: Any = None) -> None:
        self.function, self.args, self.state = function, args, state

    def __reduce__(self) -> tuple[Any, ...]:
        if self.state is None:
            return self.function, self.args
        return self.function, self.args, self.state


NVLABS_CLASS = {sg2.SG2Generator: "Generator", sg2.Mapping: "MappingNetwork",
                sg2.Synthesis: "SynthesisNetwork", sg2.SynthesisBlock: "SynthesisBlock",
                sg2.SynthesisLayer: "SynthesisLayer", sg2.ToRGB: "ToRGBLayer",
                sg2.FullyConnected: "FullyConnectedLayer", sg2.Skip: "Conv2dLayer",
                sg3.SG3Generator: "Generator", sg3.Synthesis: "SynthesisNetwork",
                sg3.SynthesisInput: "SynthesisInput", sg3.SynthesisLayer: "SynthesisLayer"}


def pair(size: int) -> np.ndarray:
    """A [width, height] int64 array as NVlabs stores sizes (a stride-0 broadcast)."""
    return np.broadcast_to(np.asarray(size, dtype=np.int64), [2])


def sg3_attributes(module: torch.nn.Module) -> dict[str, Any]:
    """The plain attributes NVlabs keeps on StyleGAN3 objects, numpy types where theirs are."""
    if isinstance(module, sg3.SynthesisLayer):
        spec = dataclasses.asdict(module.spec)
        spec.pop("idx")
        floats = ("in_cutoff", "out_cutoff", "in_half_width", "out_half_width")
        return {**spec, **{k: np.float64(spec[k]) for k in floats},
                "in_size": pair(spec["in_size"]), "out_size": pair(spec["out_size"]),
                "padding": list(spec["padding"]), "use_fp16": np.bool_(spec["use_fp16"])}
    if isinstance(module, sg3.SynthesisInput):
        return {"size": pair(module.size), "sampling_rate": np.float64(module.sampling_rate),
                "bandwidth": np.float64(module.bandwidth), "channels": module.weight.shape[0]}
    if isinstance(module, sg3.Synthesis):
        c = module.config
        return {"layer_names": c.layer_names, "img_resolution": c.img_resolution,
                "img_channels": c.img_channels, "num_critical": c.num_critical,
                "margin_size": c.margin_size, "output_scale": c.output_scale}
    return {}


def as_persistent(module: torch.nn.Module, easy_dict: type[dict]) -> Call:
    """One of our modules as NVlabs would have pickled its counterpart."""
    config: sg2.SG2Config = module.config if hasattr(module, "config") else None  # type: ignore[assignment]
    state: dict[str, Any] = {
        "training": False, "_parameters": dict(module._parameters),
        "_buffers": dict(module._buffers),
        "_non_persistent_buffers_set": set(module._non_persistent_buffers_set),
        "_modules": {name: as_persistent(child, easy_dict)
                     for name, child in module._modules.items() if child is not None}}
    state.update(sg3_attributes(module))
    if isinstance(module, sg3.SG3Generator):
        c3 = module.config
        state["_init_args"] = ()
        state["_init_kwargs"] = easy_dict(  # StyleGAN3 flattens the synthesis arguments
            z_dim=c3.z_dim, w_dim=c3.w_dim, mapping_kwargs=easy_dict(num_layers=c3.mapping_layers),
            channel_base=c3.channel_base, channel_max=c3.channel_max, c_dim=c3.c_dim,
            img_resolution=c3.img_resolution, img_channels=c3.img_channels)
    if isinstance(module, sg2.SynthesisBlock):
        state.update(architecture=module.architecture, resolution=module.resolution,
                     use_fp16=module.use_half)
    if isinstance(module, sg2.SynthesisLayer):
        state.update(conv_clamp=module.clamp, resolution=module.resolution)
    if isinstance(module, sg2.SG2Generator):
        c = config
        base = max(r * n for r, n in c.channels.items())
        state["_init_args"] = ()
        state["_init_kwargs"] = easy_dict(
            z_dim=c.z_dim, w_dim=c.w_dim,
            mapping_kwargs=easy_dict(num_layers=c.mapping_layers),
            synthesis_kwargs=easy_dict(channel_base=base, channel_max=max(c.channels.values()),
                                       architecture=c.architecture, conv_clamp=c.conv_clamp),
            c_dim=c.c_dim, img_resolution=c.img_resolution, img_channels=c.img_channels)
    return persistent_call(NVLABS_CLASS[type(module)], state)


def save_nvlabs(generator: sg2.SG2Generator | sg3.SG3Generator, path: Path,
                protocol: int = 4) -> Path:
    """A `network-snapshot-*.pkl` holding `generator` as G and G_ema."""
    with nvlabs_names() as easy_dict:
        network = as_persistent(generator, easy_dict)
        snapshot = {"G": network, "D": None, "G_ema": network, "augment_pipe": None,
                    "training_set_kwargs": {"resolution": generator.config.img_resolution,
                                            "use_labels": bool(generator.config.c_dim)}}
        path.write_bytes(pickle.dumps(snapshot, protocol=protocol))
    return path


def tiny(architecture: str = "skip", c_dim: int = 0, resolution: int = 32,
         seed: int = 0, conv_clamp: float | None = None, num_fp16_res: int = 0,
         mapping_layers: int = 2) -> sg2.SG2Generator:
    """A random StyleGAN2 small enough for a test; noise strengths and w_avg made non-zero,
    as training leaves them, so every part of the network shows in the image."""
    torch.manual_seed(seed)
    config = sg2.SG2Config(z_dim=24, w_dim=32, c_dim=c_dim, img_resolution=resolution,
                       mapping_layers=mapping_layers, mapping_features=32,
                       channels=sg2.SG2Config.channels_for(resolution, 512, 48),
                       architecture=architecture, conv_clamp=conv_clamp,
                       num_fp16_res=num_fp16_res)
    generator = sg2.SG2Generator(config).eval().requires_grad_(False)
    with torch.no_grad():
        for name, tensor in generator.named_parameters():
            if name.endswith("noise_strength"):
                tensor.fill_(0.3)
            elif name.endswith(".bias"):
                tensor.normal_(0.0, 0.1)
        generator.mapping.w_avg.normal_(0.0, 0.5)
    return generator


def tiny3(config: str = "t", img_resolution: int = 32, seed: int = 0) -> sg3.SG3Generator:
    """A small random StyleGAN3: z/w 32, at most 32 feature maps."""
    torch.manual_seed(seed)
    spec = sg3.design(32, 32, img_resolution, config, channel_base=16 * img_resolution,
                  channel_max=32)
    return sg3.SG3Generator(spec).eval()
