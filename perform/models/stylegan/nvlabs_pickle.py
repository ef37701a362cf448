"""NVlabs StyleGAN network pickles, read as data: nothing in the file is ever executed.

A `network-snapshot-*.pkl` from stylegan2-ada-pytorch or stylegan3 is a pickled dict whose
networks are calls to `torch_utils.persistence._reconstruct_persistent_obj(meta)`; NVlabs'
own loader `exec`s the Python source carried in `meta`, so opening a stranger's file would
run the stranger's code. Here every network becomes a `Persistent`: its class name, its
state (parameters, buffers, submodules, plain attributes, constructor kwargs) and a hash of
the source, which is dropped unread.

The unpickler resolves only an allowlist of globals, all of them data constructors, and
checks their arguments. It also controls the BUILD opcode, because an object's
`__setstate__` is a second way in: on a tensor it sets backward hooks directly, and on a
numpy dtype it can switch on the "holds Python objects" flag of a float type. Only numpy
dtypes and arrays made by this loader, with the states numpy itself writes, may be built.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import pickle
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

try:
    from numpy._core import multiarray as _multiarray
except ImportError:  # numpy 1.x keeps the rebuilders under numpy.core
    from numpy.core import multiarray as _multiarray

PERSISTENT_VERSION = 6  # the `meta` layout both NVlabs repositories write
MAX_NESTING = 100  # far deeper than any real snapshot, shallow enough for recursive readers
MAX_VISITS = 1_000_000  # objects checked after loading; real snapshots have thousands
NUMERIC_DTYPE_KINDS = "biufc"  # bool, signed, unsigned, float, complex: plain numbers only


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message is for the performer (names the file and
    the reason)."""


class _Refusal(Exception):
    """Why the unpickler stopped; `load_nvlabs_pickle` adds the file name."""


class _EasyDict(dict):
    """`dnnlib.util.EasyDict` as data: a dict whose keys also read as attributes."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


@dataclass(eq=False)
class Persistent:
    """One NVlabs network object as data: its class name and state, never its code."""

    class_name: str
    state: dict[str, Any] = field(repr=False)
    source_sha256: str  # of the module_src text, for provenance; the text itself is dropped

    @property
    def init_kwargs(self) -> dict[str, Any]:
        """The constructor's keyword arguments as plain dicts: what rebuilding the net needs."""
        return _plain(self.state.get("_init_kwargs", {}))

    def children(self) -> dict[str, Persistent]:
        """The registered submodules, in registration order; empty slots (None) left out."""
        modules = self.state.get("_modules", {})
        return {name: child for name, child in modules.items() if isinstance(child, Persistent)}

    def child(self, dotted: str) -> Persistent:
        """A submodule by its dotted path, such as "synthesis.b8.conv0"."""
        node = self
        for name in dotted.split("."):
            found = node.children().get(name)
            if found is None:
                raise CheckpointError(f"the {self.class_name} network has no submodule "
                                      f"{dotted!r} ({name!r} is missing)")
            node = found
        return node

    def attribute(self, name: str, default: Any = None) -> Any:
        """A plain attribute set in `__init__` (gains, paddings, flags), as plain Python."""
        if name not in self.state:
            return default
        return _plain(self.state[name])

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The tensors under the names and in the order `nn.Module.state_dict()` gives."""
        flat: dict[str, torch.Tensor] = {}
        self._flatten_into(flat, "")
        return flat

    def _flatten_into(self, flat: dict[str, torch.Tensor], prefix: str) -> None:
        for name, parameter in self.state.get("_parameters", {}).items():
            if parameter is not None:
                flat[prefix + name] = parameter.detach()
        skipped = self.state.get("_non_persistent_buffers_set", set())
        for name, buffer in self.state.get("_buffers", {}).items():
            if buffer is not None and name not in skipped:
                flat[prefix + name] = buffer.detach()
        for name, child in self.children().items():
            child._flatten_into(flat, f"{prefix}{name}.")


def _plain(value: Any) -> Any:
    """Containers as dict/list/tuple and numpy values as Python numbers, for config code."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, tuple):
        return tuple(_plain(item) for item in value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


# -- what the allowlisted globals resolve to ---------------------------------------------------


def _persistent_from_meta(meta: Any) -> Persistent:
    """Stands in for `_reconstruct_persistent_obj`: keeps the state, hashes the source."""
    if not isinstance(meta, dict) or meta.get("type") != "class":
        raise _Refusal("holds a persistent object that is not a class instance")
    if meta.get("version") != PERSISTENT_VERSION:
        raise _Refusal(f"holds a persistent object of format version {meta.get('version')!r}; "
                       f"only version {PERSISTENT_VERSION} is known")
    class_name, state, source = meta.get("class_name"), meta.get("state"), meta.get("module_src")
    if not (isinstance(class_name, str) and isinstance(state, dict) and isinstance(source, str)):
        raise _Refusal("holds a persistent object without a class name, state and source")
    return Persistent(class_name, state, hashlib.sha256(source.encode()).hexdigest())


def _latin1_bytes(text: Any, encoding: Any) -> bytes:
    """Stands in for `_codecs.encode`, which protocol 2 uses to spell bytes objects."""
    if not isinstance(text, str) or encoding != "latin1":
        raise _Refusal("uses _codecs.encode for something other than spelling bytes")
    return text.encode("latin1")


def _check_no_hooks(backward_hooks: Any) -> None:
    if not isinstance(backward_hooks, dict) or backward_hooks:
        raise _Refusal("holds a tensor with backward hooks: hooks are code, not weights")


def _rebuild_tensor(storage: Any, storage_offset: Any, size: Any, stride: Any,
                    requires_grad: Any, backward_hooks: Any, metadata: Any = None) -> torch.Tensor:
    """`torch._utils._rebuild_tensor_v2` with its arguments checked and its hooks dropped."""
    _check_no_hooks(backward_hooks)
    if metadata:
        raise _Refusal("holds a tensor with extra metadata, which weights never carry")
    if not isinstance(storage, torch.storage.TypedStorage):
        raise _Refusal("holds a tensor whose storage is not a storage")
    if not (isinstance(storage_offset, int) and isinstance(requires_grad, bool)
            and _is_int_tuple(size) and _is_int_tuple(stride)):
        raise _Refusal("holds a tensor with a malformed offset, size, stride or grad flag")
    return torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride,
                                           requires_grad, OrderedDict())


def _rebuild_parameter(data: Any, requires_grad: Any, backward_hooks: Any,
                       state: Any = None) -> torch.nn.Parameter:
    """`_rebuild_parameter(_with_state)` checked; the extra Python state is dropped."""
    _check_no_hooks(backward_hooks)
    if not isinstance(data, torch.Tensor) or not isinstance(requires_grad, bool):
        raise _Refusal("holds a parameter that does not wrap a tensor")
    return torch.nn.Parameter(data, requires_grad)


def _load_storage(blob: Any) -> torch.storage.TypedStorage:
    """`torch.storage._load_from_bytes`, but with torch's weights-only loader: torch's own
    version unpickles the blob with everything allowed, so a payload could hide inside it."""
    if not isinstance(blob, bytes):
        raise _Refusal("holds a tensor storage that is not bytes")
    try:
        storage = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        lines = [line for line in str(error).splitlines() if line.strip()]
        detail = lines[1] if len(lines) > 1 else lines[0]  # torch puts the global after a preamble
        raise _Refusal(f"holds a tensor storage that is more than weights ({detail})") from None
    if not isinstance(storage, torch.storage.TypedStorage):
        raise _Refusal(f"holds a tensor storage blob that decodes to a {type(storage).__name__}")
    return storage


def _is_int_tuple(value: Any) -> bool:
    return isinstance(value, tuple) and all(isinstance(item, int) for item in value)


def _check_dtype(dtype: Any) -> np.dtype:
    if not isinstance(dtype, np.dtype) or dtype.kind not in NUMERIC_DTYPE_KINDS or dtype.hasobject:
        raise _Refusal(f"holds a numpy value of dtype {dtype!r}: only plain numbers are allowed")
    return dtype


def _numpy_scalar(dtype: Any, data: Any) -> np.generic:
    """numpy's `multiarray.scalar` for numeric dtypes: gains and flags such as weight_gain."""
    _check_dtype(dtype)
    if not isinstance(data, bytes) or len(data) != dtype.itemsize:
        raise _Refusal(f"holds a numpy {dtype} scalar whose data is not {dtype.itemsize} bytes")
    return _multiarray.scalar(dtype, data)


_NDARRAY = object()  # what `numpy.ndarray` resolves to: only `_reconstruct` accepts it


class _AllowlistUnpickler(pickle._Unpickler):
    """An unpickler that can only build the objects an NVlabs snapshot is made of.

    It is the pure-Python unpickler, not the C one, because only its opcode table can be
    changed, and BUILD has to be checked: see the module docstring. Every global resolves
    through `find_class`, also for the INST, OBJ and EXT opcodes.
    """

    dispatch: ClassVar[dict[int, Callable[[Any], None]]] = dict(pickle._Unpickler.dispatch)

    def __init__(self, file: io.BufferedReader) -> None:
        super().__init__(file)
        # numpy dtypes and arrays made here, until their one BUILD; kept alive so ids stay theirs
        self._awaiting_state: dict[int, np.dtype | np.ndarray] = {}
        self._allowed: dict[tuple[str, str], Any] = {
            ("torch_utils.persistence", "_reconstruct_persistent_obj"): _persistent_from_meta,
            ("dnnlib.util", "EasyDict"): _EasyDict,
            ("collections", "OrderedDict"): OrderedDict,
            ("builtins", "set"): set,
            ("__builtin__", "set"): set,  # protocol 2 keeps Python 2 names
            ("builtins", "frozenset"): frozenset,
            ("__builtin__", "frozenset"): frozenset,
            ("_codecs", "encode"): _latin1_bytes,
            ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
            ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
            ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
            ("torch.storage", "_load_from_bytes"): _load_storage,
            ("numpy", "dtype"): self._numpy_dtype,
            ("numpy", "ndarray"): _NDARRAY,
        }
        for module in ("numpy.core.multiarray", "numpy._core.multiarray"):  # numpy 1.x, 2.x
            self._allowed[module, "scalar"] = _numpy_scalar
            self._allowed[module, "_reconstruct"] = self._numpy_empty_array

    def find_class(self, module: str, name: str) -> Any:
        """The allowlisted stand-in for a global; nothing is imported or looked up."""
        allowed = self._allowed.get((module, name))
        if allowed is not None:
            return allowed
        if module.startswith("dnnlib.tflib"):
            raise _Refusal(f"is a TensorFlow-era StyleGAN pickle (it names {module}.{name}); "
                           "convert it to a PyTorch one first")
        raise _Refusal(f"refuses the global {module}.{name}: a checkpoint may only hold "
                       "weights, never code")

    def _numpy_dtype(self, spec: Any, align: Any, copy: Any) -> np.dtype:
        """`numpy.dtype`, always as a private copy: a BUILD must never touch numpy's own."""
        if not isinstance(spec, str) or not isinstance(align, bool):
            raise _Refusal(f"holds a numpy dtype spelled {spec!r}")
        dtype = _check_dtype(np.dtype(spec, align, True))
        self._awaiting_state[id(dtype)] = dtype
        return dtype

    def _numpy_empty_array(self, array_type: Any, shape: Any, typecode: Any) -> np.ndarray:
        """numpy's `_reconstruct`: the empty array that a BUILD then fills."""
        if array_type is not _NDARRAY or shape != (0,) or not isinstance(typecode, bytes):
            raise _Refusal("holds a numpy array that is not a plain ndarray")
        array = _multiarray._reconstruct(np.ndarray, (0,), typecode)
        self._awaiting_state[id(array)] = array
        return array

    def _load_build(self) -> None:
        state = self.stack.pop()
        target = self.stack[-1]
        if self._awaiting_state.pop(id(target), None) is not target:
            raise _Refusal(f"sets the state of a {type(target).__name__}, which only numpy "
                           "dtypes and arrays need")
        if isinstance(target, np.dtype):
            _check_dtype_state(target, state)
        else:
            _check_array_state(state)
        target.__setstate__(state)

    dispatch[pickle.BUILD[0]] = _load_build


def _check_dtype_state(dtype: np.dtype, state: Any) -> None:
    """Only the byte order may differ from the state numpy gives this dtype itself."""
    own_state = dtype.__reduce__()[2]
    if not (isinstance(state, tuple) and len(state) == len(own_state)
            and state[1] in ("<", ">", "|", "=")
            and state[:1] + state[2:] == own_state[:1] + own_state[2:]):
        raise _Refusal(f"holds a numpy {dtype} dtype with an altered state {state!r}")


def _check_array_state(state: Any) -> None:
    """An array state as numpy writes it: (version, shape, dtype, fortran order, raw bytes)."""
    if not (isinstance(state, tuple) and len(state) == 5 and _is_int_tuple(state[1])
            and isinstance(state[4], bytes)):
        raise _Refusal("holds a numpy array whose state is not plain raw data")
    _check_dtype(state[2])
    if len(state[4]) != math.prod(state[1]) * state[2].itemsize:
        raise _Refusal("holds a numpy array whose data does not match its shape")


# -- after loading -----------------------------------------------------------------------------


def _check_loaded(root: Any) -> None:
    """Checks networks have the shape of nn.Module state, and that nothing is cyclic or
    absurdly deep or wide, so that `Persistent`'s recursive readers always finish."""
    pending: list[tuple[Any, int]] = [(root, 0)]
    visits = 0
    while pending:
        value, depth = pending.pop()
        visits += 1
        if depth > MAX_NESTING or visits > MAX_VISITS:
            raise _Refusal("holds data nested too deeply, or cyclic, for a network snapshot")
        if isinstance(value, Persistent):
            _check_module_state(value)
            items: Any = value.state.values()
        elif isinstance(value, dict):
            items = [*value.keys(), *value.values()]
        elif isinstance(value, list | tuple | set | frozenset):
            items = value
        else:
            continue
        pending.extend((item, depth + 1) for item in items)


def _check_module_state(module: Persistent) -> None:
    """The parts of an nn.Module's state that `Persistent` reads, with the types it expects."""
    state = module.state
    slots = (("_parameters", torch.Tensor), ("_buffers", torch.Tensor), ("_modules", Persistent))
    for slot, kind in slots:
        entries = state.get(slot, {})
        if not isinstance(entries, dict) or not all(
            isinstance(name, str) and (entry is None or isinstance(entry, kind))
            for name, entry in entries.items()
        ):
            raise _Refusal(f"holds a {module.class_name} whose {slot} are not all "
                           f"{kind.__name__}s by name")
    if not isinstance(state.get("_non_persistent_buffers_set", set()), set | frozenset):
        raise _Refusal(f"holds a {module.class_name} with a malformed buffer list")
    if not isinstance(state.get("_init_kwargs", {}), dict):
        raise _Refusal(f"holds a {module.class_name} whose constructor kwargs are not a dict")


# -- public ------------------------------------------------------------------------------------


def load_nvlabs_pickle(path: str | os.PathLike[str], *, max_bytes: int = 2**32) -> dict[str, Any]:
    """The snapshot dict of an NVlabs pickle with every network as a Persistent."""
    name = Path(path).name
    try:
        with open(path, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            if size == 0:
                raise CheckpointError(f"{name}: the file is empty")
            if size > max_bytes:
                raise CheckpointError(f"{name}: {size:,} bytes is more than the "
                                      f"{max_bytes:,} a checkpoint may have here")
            snapshot = _AllowlistUnpickler(file).load()
        _check_loaded(snapshot)
    except OSError as error:
        reason = error.strerror or error
        raise CheckpointError(f"{os.fspath(path)}: cannot read it: {reason}") from None
    except _Refusal as refusal:
        raise CheckpointError(f"{name}: {refusal}") from None
    except EOFError:
        raise CheckpointError(f"{name}: the pickle ends early; the file is truncated") from None
    except CheckpointError:
        raise
    except Exception as error:  # a broken file can make any builder fail; none of it is ours
        raise CheckpointError(f"{name}: not an NVlabs network pickle, or a damaged one "
                              f"({type(error).__name__}: {error})") from None
    if isinstance(snapshot, tuple) and len(snapshot) == 3:
        raise CheckpointError(f"{name}: holds a 3-tuple, the (G, D, Gs) of a TensorFlow-era "
                              "StyleGAN pickle; convert it to a PyTorch one first")
    if not isinstance(snapshot, dict):
        raise CheckpointError(f"{name}: holds a {type(snapshot).__name__}, not the dict of an "
                              "NVlabs network snapshot")
    return snapshot


def generator_of(snapshot: dict[str, Any], path: str = "") -> Persistent:
    """G_ema, the weights averaged over training that NVlabs samples from; G if it is absent."""
    for key in ("G_ema", "G"):
        network = snapshot.get(key)
        if isinstance(network, Persistent) and network.class_name == "Generator":
            return network
    where = f"{Path(path).name}: " if path else ""
    raise CheckpointError(f"{where}the snapshot holds no generator: neither 'G_ema' nor 'G' "
                          "is an NVlabs Generator network")
