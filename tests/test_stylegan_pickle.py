"""NVlabs network pickles come back as exact weights, and no file can make the loader run code.

No NVlabs code exists here: the tests write pickles in NVlabs' layout themselves, naming
throwaway `torch_utils` and `dnnlib` modules that exist only while a file is written.
"""

from __future__ import annotations

import _codecs
import contextlib
import hashlib
import io
import os
import pickle
import random
import shlex
import subprocess
import sys
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from small_gans import FAKE_MODULES, MODULE_SRC, PROTOCOLS, Call, nvlabs_names, persistent_call

from perform.models.stylegan.nvlabs_pickle import (
    CheckpointError,
    Persistent,
    generator_of,
    load_nvlabs_pickle,
)

# -- a small generator in NVlabs' layout ------------------------------------------------------


class NVlabsStyleModule(torch.nn.Module):
    """A module that pickles the way NVlabs' networks do: as class name, state and source."""

    def remember_init(self, *args: Any, **kwargs: Any) -> None:
        """NVlabs records constructor arguments last, after everything `__init__` set."""
        self._init_args = args
        self._init_kwargs = kwargs

    def __reduce_ex__(self, protocol: int) -> Any:
        return persistent_call(type(self).__name__, self.__getstate__()).__reduce__()


class FullyConnectedLayer(NVlabsStyleModule):
    def __init__(self, in_features: int, out_features: int, lr_multiplier: float) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = torch.nn.Parameter(torch.randn(out_features))
        self.weight_gain = np.float64(lr_multiplier / np.sqrt(in_features))
        self.bias_gain = lr_multiplier
        self.remember_init(in_features, out_features, lr_multiplier=lr_multiplier)


class MappingNetwork(NVlabsStyleModule):
    def __init__(self, z_dim: int, w_dim: int, lr_multiplier: float) -> None:
        super().__init__()
        self.z_dim, self.w_dim = z_dim, w_dim
        self.fc0 = FullyConnectedLayer(z_dim, w_dim, lr_multiplier)
        self.register_buffer("w_avg", torch.randn(w_dim))
        self.remember_init(z_dim=z_dim, w_dim=w_dim, lr_multiplier=lr_multiplier)


class SynthesisBlock(NVlabsStyleModule):
    def __init__(self, channels: int, resolution: int, use_fp16: bool) -> None:
        super().__init__()
        self.const = torch.nn.Parameter(torch.randn(channels, resolution, resolution))
        self.register_parameter("unused_bias", None)
        self.register_buffer("noise_const", torch.randn(resolution, resolution))
        self.register_buffer("scratch", torch.zeros(3), persistent=False)
        self.register_module("skip", None)
        self.weight_gain = np.float64(1 / np.sqrt(channels * 9))
        self.use_fp16 = np.bool_(use_fp16)
        self.in_size = np.broadcast_to(np.asarray(resolution, dtype=np.int64), [2])
        self.padding = [1, 1, 1, 1]
        self.conv_clamp = None
        self.remember_init(channels, resolution, use_fp16=use_fp16)


class SynthesisNetwork(NVlabsStyleModule):
    def __init__(self, w_dim: int, channels: int, block_kwargs: dict[str, Any]) -> None:
        super().__init__()
        self.w_dim = w_dim
        self.b4 = SynthesisBlock(channels, 4, **block_kwargs)
        self.remember_init(w_dim, channels=channels, block_kwargs=block_kwargs)


class Generator(NVlabsStyleModule):
    def __init__(self, z_dim: int, w_dim: int, mapping_kwargs: dict[str, Any],
                 synthesis_kwargs: dict[str, Any]) -> None:
        super().__init__()
        self.z_dim, self.w_dim = z_dim, w_dim
        self.mapping = MappingNetwork(z_dim, w_dim, **mapping_kwargs)
        self.synthesis = SynthesisNetwork(w_dim, **synthesis_kwargs)
        self.remember_init(z_dim=z_dim, w_dim=w_dim, mapping_kwargs=mapping_kwargs,
                           synthesis_kwargs=synthesis_kwargs)


def make_generator(easy_dict: type[dict], seed: int) -> Generator:
    torch.manual_seed(seed)
    generator = Generator(
        z_dim=8, w_dim=6, mapping_kwargs=easy_dict(lr_multiplier=0.01),
        synthesis_kwargs=easy_dict(channels=5, block_kwargs=easy_dict(use_fp16=True)),
    )
    return generator.eval().requires_grad_(False)


def write_snapshot(path: Path, protocol: int, **networks: Any) -> dict[str, Any]:
    """A snapshot dict as the training loops write it; `networks` replaces or drops entries."""
    with nvlabs_names() as easy_dict:
        snapshot = dict(G=make_generator(easy_dict, seed=1), D=None,
                        G_ema=make_generator(easy_dict, seed=2), augment_pipe=None,
                        training_set_kwargs=dict(class_name="training.dataset.ImageFolderDataset",
                                                 path="faces.zip", resolution=4, use_labels=False,
                                                 xflip=False))
        snapshot.update(networks)
        snapshot = {key: value for key, value in snapshot.items() if value is not ...}
        path.write_bytes(pickle.dumps(snapshot, protocol=protocol))
    return snapshot


def load_without_nvlabs(path: Path, **options: Any) -> dict[str, Any]:
    assert not set(FAKE_MODULES) & set(sys.modules)
    snapshot = load_nvlabs_pickle(path, **options)
    assert not set(FAKE_MODULES) & set(sys.modules)
    return snapshot


def assert_same_tensors(loaded: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    assert list(loaded) == list(expected)
    for name, tensor in expected.items():
        assert type(loaded[name]) is torch.Tensor, name
        assert loaded[name].dtype == tensor.dtype and torch.equal(loaded[name], tensor), name


@pytest.fixture(params=PROTOCOLS, ids=[f"protocol{p}" for p in PROTOCOLS])
def written(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    path = tmp_path / "network-snapshot-000100.pkl"
    return path, write_snapshot(path, request.param)


# -- good files -------------------------------------------------------------------------------


def test_state_dicts_equal_the_modules_own(written: tuple[Path, dict[str, Any]]) -> None:
    path, original = written
    snapshot = load_without_nvlabs(path)
    for key in ("G", "G_ema"):
        assert isinstance(snapshot[key], Persistent)
        assert_same_tensors(snapshot[key].state_dict(), original[key].state_dict())
    assert "synthesis.b4.scratch" not in snapshot["G_ema"].state_dict()
    assert snapshot["D"] is None and snapshot["augment_pipe"] is None
    assert snapshot["training_set_kwargs"] == original["training_set_kwargs"]


def test_kwargs_and_attributes_come_back_as_plain_python(
    written: tuple[Path, dict[str, Any]],
) -> None:
    path, _ = written
    generator = generator_of(load_without_nvlabs(path))
    kwargs = generator.init_kwargs
    assert kwargs == {"z_dim": 8, "w_dim": 6, "mapping_kwargs": {"lr_multiplier": 0.01},
                      "synthesis_kwargs": {"channels": 5, "block_kwargs": {"use_fp16": True}}}
    assert type(kwargs["synthesis_kwargs"]) is dict
    assert type(kwargs["synthesis_kwargs"]["block_kwargs"]) is dict
    block = generator.child("synthesis.b4")
    assert block.class_name == "SynthesisBlock"
    assert block.children() == {}
    weight_gain, use_fp16 = block.attribute("weight_gain"), block.attribute("use_fp16")
    assert type(weight_gain) is float and weight_gain == 1 / np.sqrt(45)
    assert use_fp16 is True
    assert block.attribute("in_size") == [4, 4]
    assert block.attribute("padding") == [1, 1, 1, 1]
    assert block.attribute("conv_clamp", "unset") is None
    assert block.attribute("missing", "unset") == "unset"
    layer = generator.child("mapping.fc0")
    assert type(layer.attribute("weight_gain")) is float
    assert layer.init_kwargs == {"lr_multiplier": 0.01}
    assert layer.state["_init_args"] == (8, 6)


def test_networks_keep_their_names_and_a_hash_of_the_source_only(
    written: tuple[Path, dict[str, Any]],
) -> None:
    path, _ = written
    generator = generator_of(load_without_nvlabs(path))
    assert generator.class_name == "Generator"
    assert list(generator.children()) == ["mapping", "synthesis"]
    assert generator.child("mapping").class_name == "MappingNetwork"
    expected = hashlib.sha256(MODULE_SRC.encode()).hexdigest()
    assert generator.source_sha256 == generator.child("synthesis.b4").source_sha256 == expected
    assert "module_src" not in generator.state
    with pytest.raises(CheckpointError, match=r"'synthesis\.b8'"):
        generator.child("synthesis.b8")


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_generator_is_g_ema_else_g(protocol: int, tmp_path: Path) -> None:
    both, only_g = tmp_path / "both.pkl", tmp_path / "only_g.pkl"
    original = write_snapshot(both, protocol)
    write_snapshot(only_g, protocol, G_ema=...)
    chosen = generator_of(load_without_nvlabs(both), str(both))
    assert_same_tensors(chosen.state_dict(), original["G_ema"].state_dict())
    fallback = generator_of(load_without_nvlabs(only_g), str(only_g))
    assert_same_tensors(fallback.state_dict(), original["G"].state_dict())


@pytest.mark.parametrize("protocol", [2, 3])
def test_files_written_under_numpy_1_load(protocol: int, tmp_path: Path) -> None:
    path = tmp_path / "numpy1.pkl"
    write_snapshot(path, protocol)
    data = path.read_bytes()
    assert b"numpy._core.multiarray\n" in data
    path.write_bytes(data.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n"))
    block = generator_of(load_without_nvlabs(path)).child("synthesis.b4")
    assert block.attribute("in_size") == [4, 4]
    assert block.attribute("use_fp16") is True


# -- hostile files ----------------------------------------------------------------------------


def storage_blob_running(command: str) -> bytes:
    """A legacy torch.save whose pickle calls os.system: what torch's own loader would run."""
    blob = io.BytesIO()
    torch.save(Call(os.system, command), blob, _use_new_zipfile_serialization=False)
    return blob.getvalue()


def tensor_call(**changes: Any) -> Call:
    """A tensor as torch pickles it, with some of its rebuild arguments replaced."""
    rebuild, args = torch.zeros(2).__reduce_ex__(2)
    names = ("storage", "storage_offset", "size", "stride", "requires_grad", "backward_hooks")
    arguments = dict(zip(names, args, strict=True))
    state = changes.pop("state", None)
    arguments.update(changes)
    return Call(rebuild, *arguments.values(), state=state)


def hostile_snapshot(payload: Any) -> Callable[[str], bytes]:
    """A proper snapshot with `payload` tucked into its training-set kwargs."""

    def build(command: str) -> bytes:
        with nvlabs_names() as easy_dict:
            snapshot = dict(G=None, D=None, G_ema=make_generator(easy_dict, seed=3),
                            augment_pipe=None,
                            training_set_kwargs=dict(path=payload(command)))
            return pickle.dumps(snapshot, protocol=4)

    return build


EVIL_HOOKS = OrderedDict([(0, OrderedDict)])  # an allowlisted callable, where hooks would run

HOSTILE: dict[str, tuple[Callable[[str], bytes], str]] = {
    "os_system_protocol_0": (
        lambda command: pickle.dumps(Call(os.system, command), protocol=0),
        "refuses the global posix.system"),
    "os_system_protocol_4": (
        lambda command: pickle.dumps(Call(os.system, command), protocol=4),
        "refuses the global posix.system"),
    "builtins_eval": (
        lambda command: pickle.dumps(
            Call(eval, f"__import__('os').system({command!r})"), protocol=4),
        "refuses the global builtins.eval"),
    "subprocess_popen_protocol_2": (
        lambda command: pickle.dumps(
            Call(subprocess.Popen, shlex.split(command)), protocol=2),
        "refuses the global commands.Popen"),
    "payload_inside_snapshot": (
        hostile_snapshot(lambda command: Call(os.system, command)),
        "refuses the global posix.system"),
    "os_system_inside_storage_blob": (
        lambda command: pickle.dumps(tensor_call(
            storage=Call(torch.storage._load_from_bytes, storage_blob_running(command)))),
        "tensor storage that is more than weights"),
    "storage_blob_inside_snapshot": (
        hostile_snapshot(lambda command: tensor_call(
            storage=Call(torch.storage._load_from_bytes, storage_blob_running(command)))),
        "tensor storage that is more than weights"),
    "tensor_backward_hooks": (
        lambda command: pickle.dumps(tensor_call(backward_hooks=EVIL_HOOKS), protocol=4),
        "backward hooks"),
    "parameter_backward_hooks": (
        lambda command: pickle.dumps(
            Call(torch._utils._rebuild_parameter, torch.zeros(2), False, EVIL_HOOKS)),
        "backward hooks"),
    "tensor_hooks_through_setstate": (
        lambda command: pickle.dumps(tensor_call(state=(False, None, EVIL_HOOKS)), protocol=4),
        "sets the state of a Tensor"),
    "tensor_metadata": (
        lambda command: pickle.dumps(tensor_call(metadata={"note": 1}), protocol=4),
        "extra metadata"),
    "storage_that_is_no_storage": (
        lambda command: pickle.dumps(tensor_call(storage=OrderedDict()), protocol=4),
        "storage is not a storage"),
    "numpy_object_array": (
        lambda command: pickle.dumps(np.array([1, "one"], dtype=object), protocol=4),
        "dtype"),
    "numpy_dtype_flagged_as_holding_objects": (
        lambda command: pickle.dumps(
            Call(np.dtype, "f8", False, True, state=(3, "<", None, None, None, -1, -1, 63)),
            protocol=4),
        "altered state"),
    "codecs_with_another_codec": (
        lambda command: pickle.dumps(Call(_codecs.encode, "x", "rot13")),
        "_codecs.encode"),
    "tensorflow_network_class": (
        lambda command: b"\x80\x02cdnnlib.tflib.network\nNetwork\nq\x00)\x81q\x01.",
        "TensorFlow-era"),
}


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_files_are_refused_without_side_effects(case: str, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    build, reason = HOSTILE[case]
    path = tmp_path / "hostile.pkl"
    path.write_bytes(build(f"touch {shlex.quote(str(marker))}"))
    with pytest.raises(CheckpointError, match=reason) as refused:
        load_without_nvlabs(path)
    assert "hostile.pkl" in str(refused.value)
    assert not marker.exists()


@pytest.mark.parametrize("case", ["os_system_protocol_4", "os_system_inside_storage_blob"])
def test_the_same_payloads_run_under_plain_pickle(case: str, tmp_path: Path) -> None:
    """The control: these files really are hostile, so their refusal means something."""
    marker = tmp_path / "pwned"
    build, _ = HOSTILE[case]
    with contextlib.suppress(Exception):  # the blob's payload runs before the tensor fails
        pickle.loads(build(f"touch {shlex.quote(str(marker))}"))
    assert marker.exists()


def test_malformed_networks_are_refused(tmp_path: Path) -> None:
    cyclic: list[Any] = []
    cyclic.append(cyclic)
    meta_changes = {
        "format version 5": {"version": 5},
        "without a class name": {"class_name": None},
        "_parameters": {"state": {"_parameters": {"weight": "not a tensor"}}},
        "_modules": {"state": {"_modules": {"mapping": {"not": "a network"}}}},
        "nested too deeply": {"state": {"_init_kwargs": {"loop": cyclic}}},
    }
    path = tmp_path / "malformed.pkl"
    for reason, changes in meta_changes.items():
        with nvlabs_names():
            network = persistent_call("Generator", {})
            network.args[0].update(changes)
            path.write_bytes(pickle.dumps({"G_ema": network}, protocol=4))
        with pytest.raises(CheckpointError, match=reason):
            load_without_nvlabs(path)


# -- broken and unsuitable files --------------------------------------------------------------


def test_broken_files_are_refused_with_the_file_name(tmp_path: Path) -> None:
    good = tmp_path / "good.pkl"
    write_snapshot(good, protocol=4)
    files = {
        "truncated.pkl": good.read_bytes()[: good.stat().st_size // 2],
        "empty.pkl": b"",
        "noise.pkl": random.Random(7).randbytes(4096),
        "text.pkl": b"this is not a pickle at all\n",
    }
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(CheckpointError, match=name):
            load_without_nvlabs(tmp_path / name)
    with pytest.raises(CheckpointError, match="empty"):
        load_without_nvlabs(tmp_path / "empty.pkl")
    with pytest.raises(CheckpointError, match="more than the 1,000 a checkpoint may have"):
        load_without_nvlabs(good, max_bytes=1000)
    with pytest.raises(CheckpointError, match=r"missing\.pkl: cannot read it"):
        load_without_nvlabs(tmp_path / "missing.pkl")


def test_files_that_are_no_snapshot_say_what_they_are(tmp_path: Path) -> None:
    tensorflow = tmp_path / "tf.pkl"
    tensorflow.write_bytes(pickle.dumps(({}, {}, {}), protocol=2))
    with pytest.raises(CheckpointError, match=r"tf\.pkl: holds a 3-tuple.*TensorFlow-era"):
        load_without_nvlabs(tensorflow)
    listed = tmp_path / "list.pkl"
    listed.write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(CheckpointError, match="holds a list, not the dict"):
        load_without_nvlabs(listed)


def test_a_snapshot_without_a_generator_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "discriminator_only.pkl"
    write_snapshot(path, protocol=4, G=None, G_ema=...)
    snapshot = load_without_nvlabs(path)
    with pytest.raises(CheckpointError, match=r"discriminator_only\.pkl: .*no generator"):
        generator_of(snapshot, str(path))
    with nvlabs_names():
        path.write_bytes(pickle.dumps({"G_ema": persistent_call("Discriminator", {})}))
    with pytest.raises(CheckpointError, match="neither 'G_ema' nor 'G'"):
        generator_of(load_without_nvlabs(path))
