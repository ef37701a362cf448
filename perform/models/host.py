"""Where models live: built once for the show's frame size and device, shared across saves.

A patch asks for models by name (`"cppn:seed=7"`); the host parses the name, builds the
model the first time and hands back the same object on every later save of the patch,
so a reload never rebuilds or re-allocates a model.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from perform.models.cppn import CPPN, CPPNMorph

log = logging.getLogger("perform")


class ModelError(ValueError):
    """A model name or file that cannot be used; the message is for the performer."""


class ModelLoading(ModelError):
    """A checkpoint asked for inside `frame` that is still being read in the background."""


CHECKPOINT_SUFFIXES = (".pkl", ".pt", ".pth", ".safetensors")


def is_checkpoint(name: str) -> bool:
    """A file name rather than a built-in model ("cppn:...")."""
    return name.lower().endswith(CHECKPOINT_SUFFIXES) or "/" in name or "\\" in name


def _morphs(key: str, name: str) -> bool:
    """Whether `key` is a morph ("morph(a|b)") with `name` on either side."""
    return key.startswith("morph(") and name in key[len("morph("):-1].split("|")


def _stamp(path: str) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None  # missing: building it says so
    return info.st_mtime_ns, info.st_size


def parse_name(name: str) -> tuple[str, dict[str, int]]:
    """`"cppn:seed=7,hidden=32"` -> ("cppn", {"seed": 7, "hidden": 32})."""
    kind, _, rest = name.partition(":")
    kind = kind.strip().lower()
    if kind != "cppn":
        raise ModelError(f"unknown model {name!r}: the built-in model is 'cppn:seed=N', and a "
                         f"checkpoint is a file ending in {', '.join(CHECKPOINT_SUFFIXES)}")
    options: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, eq, value = item.partition("=")
        try:
            options[key.strip()] = int(value)
        except ValueError:
            raise ModelError(f"model {name!r}: {item!r} should look like key=integer") from None
        if not eq:
            raise ModelError(f"model {name!r}: {item!r} should look like key=integer")
    return kind, options


class ModelHost:
    """Builds and caches models for one output size and device."""

    CPPN_OPTIONS = ("seed", "z_dim", "hidden")

    def __init__(self, width: int, height: int, device: torch.device,
                 precision: str = "auto") -> None:
        self.width, self.height, self.device = width, height, device
        self.precision = precision  # for checkpoints: see stylegan.model.PRECISIONS
        self._models: dict[str, Any] = {}
        self._stamps: dict[str, tuple[int, int] | None] = {}  # checkpoint: (mtime, size)
        self._lock = threading.Lock()
        self._loading: set[str] = set()  # checkpoints being read in the background
        self._failed: dict[str, Exception] = {}  # read in the background, and refused

    def get_without_waiting(self, name: str) -> Any:
        """For the render thread: the model if it is ready, else ModelLoading while it is read
        in a background thread (a checkpoint takes seconds; a frame cannot wait that long).
        No file is looked at here: a file that failed raises its error again until a new
        version of the patch runs (`keep_only`) and it is tried anew."""
        with self._lock:
            if name in self._models:
                return self._models[name]
            if name in self._failed:
                raise self._failed[name]
            if name not in self._loading:
                self._loading.add(name)
                threading.Thread(target=self._read_in_background, args=(name,),
                                 name="perform-model-load", daemon=True).start()
        raise ModelLoading(f"{Path(name).name} is being read in the background and draws once "
                           "it is loaded; load models at the top of the patch to have them "
                           "before the first frame")

    def _read_in_background(self, name: str) -> None:
        try:
            self.get(name)
        except Exception as exc:  # told to the patch at its next frame
            with self._lock:
                self._failed[name] = exc
        finally:
            with self._lock:
                self._loading.discard(name)

    def get(self, name: str) -> Any:
        """The model, built the first time. A checkpoint file saved again since (a newer
        training snapshot under the same name) is read again, and morphs using it rebuilt."""
        with self._lock:
            if is_checkpoint(name):
                stamp = _stamp(name)
                if name in self._models and self._stamps.get(name) != stamp:
                    for key in [k for k in self._models if k == name or _morphs(k, name)]:
                        del self._models[key]
                self._stamps[name] = stamp
            model = self._models.get(name)
            if model is None:
                model = self._models[name] = self._build(name)
            return model

    def morph(self, a: str, b: str) -> Any:
        key = f"morph({a}|{b})"
        with self._lock:
            model = self._models.get(key)
        if model is None:
            first, second = self.get(a), self.get(b)
            try:
                model = self._blend(first, second)
            except ValueError as exc:
                raise ModelError(f"cannot morph {a!r} and {b!r}: {exc}") from None
            with self._lock:
                model = self._models.setdefault(key, model)
        return model

    @staticmethod
    def _blend(first: Any, second: Any) -> Any:
        if isinstance(first, CPPN) and isinstance(second, CPPN):
            return CPPNMorph(first, second)
        from perform.models.stylegan.model import StyleGAN, StyleGANCrossfade, StyleGANMorph

        if isinstance(first, StyleGAN) and isinstance(second, StyleGAN):
            try:
                return StyleGANMorph(first, second)
            except ValueError as exc:  # the show goes on: the pictures fade instead
                log.warning("cannot morph the weights of %r and %r (%s); crossfading their "
                            "images instead", first, second, exc)
                return StyleGANCrossfade(first, second, str(exc))
        raise ValueError("only two CPPNs or two StyleGAN checkpoints morph into each other; "
                         "crossfade the images instead")

    def keep_only(self, names: Iterable[str]) -> None:
        """Forget models no running patch uses any more, and which files failed to load in
        the background: the new version of the patch tries them again."""
        keep = set(names)
        with self._lock:
            self._failed.clear()
            for name in [n for n in self._models if n not in keep]:
                del self._models[name]

    def loaded(self) -> list[str]:
        with self._lock:
            return list(self._models)

    def _build(self, name: str) -> Any:
        if is_checkpoint(name):
            from perform.models.stylegan.model import load_stylegan

            return load_stylegan(Path(name), self.width, self.height, self.device,
                                 self.precision)
        _, options = parse_name(name)
        unknown = set(options) - set(self.CPPN_OPTIONS)
        if unknown:
            raise ModelError(f"model {name!r}: unknown option(s) {sorted(unknown)}; "
                             f"cppn takes {', '.join(self.CPPN_OPTIONS)}")
        if not 1 <= options.get("z_dim", 16) <= 4096 or not 1 <= options.get("hidden", 32) <= 512:
            raise ModelError(f"model {name!r}: z_dim must be 1..4096 and hidden 1..512")
        return CPPN(width=self.width, height=self.height, device=self.device,
                    seed=options.get("seed", 0), z_dim=options.get("z_dim", 16),
                    hidden=options.get("hidden", 32))
