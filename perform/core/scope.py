"""Who is asking: the patch being loaded, and the values of the frame being rendered.

A patch is plain Python that calls `param(...)` and `models.load(...)` at its top level and
reads params inside `frame(ctx)`. These context variables connect those calls to the server
without the patch passing any plumbing around.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from perform.core.params import ParamSpec, ParamStore, Value

if TYPE_CHECKING:
    from perform.core.triggers import Fire
    from perform.models.host import ModelHost


@dataclass
class LoadScope:
    """Collects what one load of a patch declares."""

    params: list[ParamSpec] = field(default_factory=list)
    model_keys: set[str] = field(default_factory=set)


loading: ContextVar[LoadScope | None] = ContextVar("perform_loading", default=None)
host: ContextVar[ModelHost | None] = ContextVar("perform_model_host", default=None)
frame_values: ContextVar[Mapping[str, Value] | None] = ContextVar("perform_frame_values",
                                                                  default=None)
# this frame's triggers (name -> Fire) and seed knobs a crossfade moves (name -> from, to, eased)
fires: ContextVar[Mapping[str, Fire] | None] = ContextVar("perform_fires", default=None)
seed_fades: ContextVar[Mapping[str, tuple[float, float, float]] | None] = ContextVar(
    "perform_seed_fades", default=None)
store: ContextVar[ParamStore | None] = ContextVar("perform_param_store", default=None)
# the folder of the patch being loaded or drawn: checkpoint paths are relative to it
folder: ContextVar[Path | None] = ContextVar("perform_patch_folder", default=None)
