"""Models a patch plays with: `models.load("cppn:seed=7")`, `models.load("my.pkl")`,
`models.morph(a, b)`.

Models come from the server's model host, so a save of the patch gets the very same
objects back instead of building them again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from perform.core import scope
from perform.models.cppn import CPPN, CPPNMorph
from perform.models.host import ModelError, ModelHost, ModelLoading, is_checkpoint

__all__ = ["CPPN", "CPPNMorph", "ModelError", "ModelLoading", "load", "morph"]

_standalone: ModelHost | None = None


def _host() -> ModelHost:
    """The show's host, or a 512x512 CPU one for use outside the server."""
    global _standalone
    current = scope.host.get()
    if current is not None:
        return current
    if _standalone is None:
        _standalone = ModelHost(512, 512, torch.device("cpu"))
    return _standalone


def _note(key: str) -> None:
    declaring = scope.loading.get()
    if declaring is not None:
        declaring.model_keys.add(key)


def load(name: str | Path) -> Any:
    """A model by name: `"cppn:seed=7"` is the built-in one and needs no file; a path to a
    StyleGAN2 checkpoint (NVlabs .pkl, rosinality .pt, or `perform convert`'s .safetensors)
    loads that file, relative to the patch's folder."""
    key = _key(name)
    _note(key)
    if is_checkpoint(key) and scope.frame_values.get() is not None:  # inside frame(ctx)
        return _host().get_without_waiting(key)
    return _host().get(key)


def _key(name: str | Path) -> str:
    """The host's name for a model: checkpoint paths made absolute from the patch folder."""
    key = str(name)
    if is_checkpoint(key):
        folder = scope.folder.get() or Path.cwd()
        key = str((folder / Path(key).expanduser()).resolve())
    return key


def morph(a: str | Path, b: str | Path) -> Any:
    """A blend of two models of the same shape: `pair(z, mix=0.5)` is halfway. Two CPPNs,
    or two StyleGAN checkpoints of one architecture (`curve="coarse-a"` keeps A's layout
    and B's texture)."""
    first, second = _key(a), _key(b)
    for key in (first, second, f"morph({first}|{second})"):
        _note(key)
    return _host().morph(first, second)
