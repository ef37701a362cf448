"""The checkpoints artists bring, in three layouts, to one StyleGAN2 generator.

- NVlabs network pickles (`network-snapshot-*.pkl` from stylegan2-ada-pytorch, or the
  StyleGAN2 of the stylegan3 repository), read by `nvlabs_pickle` without running them;
- rosinality stylegan2-pytorch `.pt` files, read with torch's weights-only loader and renamed
  to NVlabs' keys;
- ours (`perform convert`): safetensors, the config as JSON in its header. Nothing to
  unpickle or rename, so it loads fastest, and the config cannot get separated from it.

Every layout ends as a state dict under NVlabs' names plus a config: `SG2Config`, its
architecture read from the tensors' names and shapes, or `SG3Config` (StyleGAN3, NVlabs
pickles and our own files only), its layers' sizes, rates and paddings read from the
attributes NVlabs stores on each layer.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from perform.models.stylegan.nvlabs_pickle import (
    CheckpointError,
    Persistent,
    generator_of,
    load_nvlabs_pickle,
)
from perform.models.stylegan.sg2 import SG2Config, SG2Generator, separable
from perform.models.stylegan.sg3 import SG3Config, SG3Generator, SG3LayerSpec

HEADER_KEY = "perform"  # the safetensors metadata entry holding our config
AVERAGE_SAMPLES = 4096  # z drawn to estimate w_avg where a checkpoint lacks it
LEGACY_TORCH = pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2)[:12]  # torch.save before 1.6


@dataclass
class Checkpoint:
    """A generator's weights under NVlabs' names, and what it takes to run them."""

    config: SG2Config | SG3Config
    state: dict[str, torch.Tensor]
    source: str  # "nvlabs", "rosinality" or "perform"
    path: Path

    @property
    def kind(self) -> str:
        return "stylegan3" if isinstance(self.config, SG3Config) else "stylegan2"

    def build(self, device: torch.device | str = "cpu") -> SG2Generator | SG3Generator:
        """The generator, weights loaded, in eval mode on `device`."""
        if isinstance(self.config, SG3Config):
            generator3 = SG3Generator(self.config)
            try:
                generator3.load_state_dict(self.state, strict=True)
            except RuntimeError as exc:
                raise CheckpointError(f"{self.path.name}: does not match a StyleGAN3 of its "
                                      f"own shape: {str(exc)[:300]}") from None
            return generator3.eval().requires_grad_(False).to(device)
        generator = SG2Generator(self.config)
        state = dict(self.state)
        for name, tensor in generator.state_dict().items():  # filters older files leave out
            if name.endswith("resample_filter") and name not in state:
                state[name] = tensor
            elif name.endswith("resample_filter") and not separable(state[name].float()):
                raise CheckpointError(f"{self.path.name}: {name} is not a separable filter; "
                                      "perform runs the standard binomial ones")
        try:
            missing, unexpected = generator.load_state_dict(state, strict=False)
        except RuntimeError as exc:  # a tensor of another shape: a fork's layout, say
            raise CheckpointError(f"{self.path.name}: does not match a StyleGAN2 of its own "
                                  f"shape: {str(exc)[:300]}") from None
        if missing or unexpected:
            raise CheckpointError(f"{self.path.name}: does not match a StyleGAN2 of its own "
                                  f"shape (missing {missing[:4]}, unexpected {unexpected[:4]})")
        return generator.eval().requires_grad_(False).to(device)


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Any of the three layouts, recognised by content rather than by name."""
    path = Path(path)
    try:
        with path.open("rb") as file:
            head = file.read(16)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such file. Put a checkpoint you trained there (an "
                              "NVlabs .pkl, a rosinality .pt or a .safetensors from `perform "
                              "convert`), or give the patch its path") from None
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read it: {exc.strerror or exc}") from None
    if len(head) >= 9 and head[8:9] == b"{":  # safetensors: header length, then its JSON
        return _ours(path)
    if head[:2] == b"PK" or head.startswith(LEGACY_TORCH):  # torch.save, new or old
        return _rosinality(path)
    if head[:1] == b"\x80":  # a pickle, protocol 2 or later
        return _nvlabs(path)
    raise CheckpointError(f"{path.name}: not a checkpoint perform knows (an NVlabs .pkl, a "
                          "rosinality .pt or a file made by `perform convert`)")


def convert(source: str | Path, target: str | Path) -> Checkpoint:
    """Write `source` as our safetensors file: the quickest to load, nothing to unpickle."""
    from safetensors.torch import save_file

    checkpoint = read_checkpoint(source)
    header = {HEADER_KEY: json.dumps({"kind": checkpoint.kind, "source": checkpoint.source,
                                      "config": _config_json(checkpoint.config)})}
    tensors = {name: tensor.contiguous() for name, tensor in checkpoint.state.items()}
    target = Path(target)
    temporary = target.with_name(f".{target.name}.tmp")
    save_file(tensors, str(temporary), metadata=header)
    temporary.replace(target)
    return checkpoint


# -- NVlabs -------------------------------------------------------------------------------


def _nvlabs(path: Path) -> Checkpoint:
    generator = generator_of(load_nvlabs_pickle(path), str(path))
    state = generator.state_dict()
    kwargs = generator.init_kwargs
    mapping = kwargs.get("mapping_kwargs") or {}
    if "synthesis.input.freqs" in state:
        return Checkpoint(_sg3_config(generator, state, float(mapping.get("lr_multiplier",
                                                                          0.01)), path),
                          state, "nvlabs", path)
    synthesis = generator.child("synthesis")
    first = synthesis.child("b4").child("conv1")
    blocks = [child for name, child in synthesis.children().items() if name.startswith("b")]
    hints = {"lr_mul": float(mapping.get("lr_multiplier", 0.01)),
             "conv_clamp": first.attribute("conv_clamp"),
             "architecture": synthesis.child("b4").attribute("architecture"),
             "num_fp16_res": sum(bool(block.attribute("use_fp16")) for block in blocks)}
    return Checkpoint(infer_config(state, hints, path), state, "nvlabs", path)


# -- rosinality -----------------------------------------------------------------------------


def _rosinality(path: Path) -> Checkpoint:
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # weights-only refusals, truncation, zip errors
        raise CheckpointError(f"{path.name}: cannot read it as a torch checkpoint: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("g_ema"), dict):
        raise CheckpointError(f"{path.name}: a torch file without a 'g_ema' generator "
                              "(rosinality stylegan2-pytorch saves one)")
    args = data.get("args")
    lr_mul = float(getattr(args, "lr_mlp", 0.01)) if args is not None else 0.01
    state = _from_rosinality(data["g_ema"], path)
    config = infer_config(state, {"lr_mul": lr_mul, "architecture": "skip"}, path)
    average = data.get("latent_avg")
    if isinstance(average, torch.Tensor):
        state["mapping.w_avg"] = average.reshape(-1).float()
    else:  # training checkpoints lack it: the mean style of many z, as the truncation centre
        generator = Checkpoint(config, {**state, "mapping.w_avg": torch.zeros(config.w_dim)},
                               "rosinality", path).build()
        with torch.no_grad():
            seeded = torch.Generator().manual_seed(0)
            z = torch.randn(AVERAGE_SAMPLES, config.z_dim, generator=seeded)
            state["mapping.w_avg"] = generator.mapping(z).mean(dim=0)
    return Checkpoint(config, state, "rosinality", path)


# rosinality's name inside a layer -> (NVlabs' name, how the tensor is reshaped)
_ROSINALITY_LAYER = {
    "conv.weight": ("weight", lambda t: t[0] if t.dim() == 5 else t),
    "conv.modulation.weight": ("affine.weight", lambda t: t),
    "conv.modulation.bias": ("affine.bias", lambda t: t),
    "noise.weight": ("noise_strength", lambda t: t.reshape(())),
    "activate.bias": ("bias", lambda t: t),
    "bias": ("bias", lambda t: t.reshape(-1)),
}


def _from_rosinality(g: dict[str, Any], path: Path) -> dict[str, torch.Tensor]:
    """rosinality's names and shapes to NVlabs': the same numbers, filed differently."""
    state: dict[str, torch.Tensor] = {}
    layers = {"conv1": "synthesis.b4.conv1", "to_rgb1": "synthesis.b4.torgb"}
    for name in g:
        if match := re.fullmatch(r"convs\.(\d+)\..*", name):
            index = int(match.group(1))
            layers[f"convs.{index}"] = f"synthesis.b{8 << index // 2}.conv{index % 2}"
        elif match := re.fullmatch(r"to_rgbs\.(\d+)\..*", name):
            layers[f"to_rgbs.{match.group(1)}"] = f"synthesis.b{8 << int(match.group(1))}.torgb"
    for name, tensor in g.items():
        if not isinstance(tensor, torch.Tensor):
            continue
        tensor = tensor.float()
        if match := re.fullmatch(r"style\.(\d+)\.(weight|bias)", name):
            state[f"mapping.fc{int(match.group(1)) - 1}.{match.group(2)}"] = tensor
        elif name == "input.input":
            state["synthesis.b4.const"] = tensor[0]
        elif match := re.fullmatch(r"noises\.noise_(\d+)", name):
            index = int(match.group(1))
            where = ("synthesis.b4.conv1" if index == 0 else
                     f"synthesis.b{8 << (index - 1) // 2}.conv{(index - 1) % 2}")
            state[f"{where}.noise_const"] = tensor[0, 0]
        elif match := re.fullmatch(r"(conv1|to_rgb1|convs\.\d+|to_rgbs\.\d+)\.(.+)", name):
            target, rest = layers[match.group(1)], match.group(2)
            renamed = _ROSINALITY_LAYER.get(rest)
            if renamed is not None:
                state[f"{target}.{renamed[0]}"] = renamed[1](tensor)
            elif not rest.endswith(("blur.kernel", "upsample.kernel")):  # our filters instead
                raise CheckpointError(f"{path.name}: unexpected tensor {name!r} in g_ema")
        else:
            raise CheckpointError(f"{path.name}: unexpected tensor {name!r} in g_ema")
    return state


# -- ours -------------------------------------------------------------------------------------


def _ours(path: Path) -> Checkpoint:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as file:
            header = json.loads((file.metadata() or {})[HEADER_KEY])
            state = {name: file.get_tensor(name) for name in file.keys()}  # noqa: SIM118
        saved, kind = header["config"], header.get("kind")
        if kind == "stylegan3":
            layers = tuple(SG3LayerSpec(**{**layer, "padding": tuple(layer["padding"])})
                           for layer in saved["layers"])
            return Checkpoint(SG3Config(**{**saved, "layers": layers}), state, "perform", path)
        if kind != "stylegan2":
            raise CheckpointError(f"{path.name}: holds a {kind!r}, not a StyleGAN generator")
        channels = {int(k): v for k, v in saved["channels"].items()}
        return Checkpoint(SG2Config(**{**saved, "channels": channels}), state, "perform", path)
    except CheckpointError:
        raise
    except (SafetensorError, KeyError, ValueError, TypeError, OSError) as exc:
        raise CheckpointError(f"{path.name}: not a file made by `perform convert`: {exc}") from None


def _config_json(config: SG2Config | SG3Config) -> dict[str, Any]:
    data = dataclasses.asdict(config)
    if isinstance(config, SG2Config):
        data["channels"] = {str(k): v for k, v in config.channels.items()}
    return data


def _sg3_config(generator: Persistent, state: dict[str, torch.Tensor], lr_mul: float,
                path: Path) -> SG3Config:
    """A StyleGAN3's shape from the attributes NVlabs keeps on each layer object: sizes,
    rates, cutoffs and paddings are read, never re-derived, so the file's own design runs."""
    try:
        synthesis = generator.child("synthesis")
        source = synthesis.child("input")
        names = synthesis.attribute("layer_names")
        layers = tuple(_sg3_layer(synthesis.child(name), index, path)
                       for index, name in enumerate(names))
        mapping = infer_mapping(state)
        kwargs = generator.init_kwargs
        return SG3Config(
            **mapping, img_resolution=int(synthesis.attribute("img_resolution")),
            img_channels=int(synthesis.attribute("img_channels")), lr_mul=lr_mul,
            channel_base=int(kwargs.get("channel_base", 32768)),
            channel_max=int(kwargs.get("channel_max", 512)), num_layers=len(layers) - 1,
            num_critical=int(synthesis.attribute("num_critical", 2)),
            margin_size=int(synthesis.attribute("margin_size", 10)),
            output_scale=float(synthesis.attribute("output_scale", 0.25)),
            conv_kernel=layers[0].conv_kernel,
            use_radial_filters=any(layer.down_radial for layer in layers),
            input_size=_square(source.attribute("size"), "input size", path),
            input_sampling_rate=float(source.attribute("sampling_rate")),
            input_bandwidth=float(source.attribute("bandwidth")), layers=layers)
    except CheckpointError:
        raise
    except KeyError as exc:
        raise CheckpointError(f"{path.name}: a StyleGAN3 without {exc}") from None
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path.name}: a StyleGAN3 whose layers perform cannot read: "
                              f"{exc}") from None


def _sg3_layer(layer: Persistent, index: int, path: Path) -> SG3LayerSpec:
    def read(name: str) -> Any:
        value = layer.attribute(name)
        if value is None and name != "conv_clamp":
            raise KeyError(f"{name} on its layer {index}")
        return value

    clamp = read("conv_clamp")
    return SG3LayerSpec(
        idx=index, in_channels=int(read("in_channels")), out_channels=int(read("out_channels")),
        in_size=_square(read("in_size"), "in_size", path),
        out_size=_square(read("out_size"), "out_size", path),
        in_sampling_rate=int(read("in_sampling_rate")),
        out_sampling_rate=int(read("out_sampling_rate")),
        tmp_sampling_rate=int(read("tmp_sampling_rate")), in_cutoff=float(read("in_cutoff")),
        out_cutoff=float(read("out_cutoff")), in_half_width=float(read("in_half_width")),
        out_half_width=float(read("out_half_width")), conv_kernel=int(read("conv_kernel")),
        up_factor=int(read("up_factor")), down_factor=int(read("down_factor")),
        up_taps=int(read("up_taps")), down_taps=int(read("down_taps")),
        down_radial=bool(layer.attribute("down_radial", False)),
        padding=tuple(int(p) for p in read("padding")),  # type: ignore[arg-type]
        is_torgb=bool(read("is_torgb")),
        is_critically_sampled=bool(read("is_critically_sampled")),
        use_fp16=bool(layer.attribute("use_fp16", False)),
        conv_clamp=float(clamp) if clamp is not None else None)


def _square(size: Any, what: str, path: Path) -> int:
    width, height = (int(v) for v in (size if isinstance(size, list | tuple) else (size, size)))
    if width != height:
        raise CheckpointError(f"{path.name}: a StyleGAN3 with a {width}x{height} {what}; "
                              "perform draws square StyleGAN3 models so far")
    return width


# -- shapes to config ---------------------------------------------------------------------------


def infer_mapping(state: dict[str, torch.Tensor]) -> dict[str, int]:
    """The mapping network's sizes from its tensors (the same in StyleGAN2 and 3)."""
    layers = [k for k in state if re.fullmatch(r"mapping\.fc\d+\.weight", k)]
    if not layers:
        raise KeyError("mapping.fc0")
    w_dim = state[f"mapping.fc{len(layers) - 1}.weight"].shape[0]
    c_dim = state["mapping.embed.weight"].shape[1] if "mapping.embed.weight" in state else 0
    return {"z_dim": state["mapping.fc0.weight"].shape[1] - (w_dim if c_dim else 0),
            "w_dim": w_dim, "c_dim": c_dim, "mapping_layers": len(layers),
            "mapping_features": state["mapping.fc0.weight"].shape[0]}


def infer_config(state: dict[str, torch.Tensor], hints: dict[str, Any],
                 path: Path) -> SG2Config:
    """The generator's sizes from its tensors; `hints` add what shapes cannot tell."""
    try:
        resolutions = sorted(int(m.group(1)) for k in state
                             if (m := re.fullmatch(r"synthesis\.b(\d+)\.conv1\.weight", k)))
        if not resolutions or resolutions[0] != 4:
            raise KeyError("synthesis.b4")
        top = resolutions[-1]
        architecture = hints.get("architecture") or (
            "resnet" if any(k.endswith(".skip.weight") for k in state)
            else "skip" if "synthesis.b4.torgb.weight" in state and top > 4 else "orig")
        clamp = hints.get("conv_clamp")
        return SG2Config(
            **infer_mapping(state), img_resolution=top,
            img_channels=state[f"synthesis.b{top}.torgb.weight"].shape[0],
            channels={r: state[f"synthesis.b{r}.conv1.weight"].shape[0] for r in resolutions},
            architecture=architecture, lr_mul=float(hints.get("lr_mul", 0.01)),
            conv_clamp=float(clamp) if clamp is not None else None,
            num_fp16_res=int(hints.get("num_fp16_res", 0)))
    except (KeyError, IndexError) as exc:
        raise CheckpointError(f"{path.name}: not a StyleGAN2 generator (no {exc})") from None
