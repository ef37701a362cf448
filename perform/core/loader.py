"""Loading a patch file: compile, run its top level in a fresh module, check it, hand it over.

Each load builds a new module object, so names deleted from the file really disappear and no
stale bytecode is ever used. A load that fails raises `PatchLoadError` and changes nothing:
the caller keeps running the last good patch.
"""

from __future__ import annotations

import traceback
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from perform.core import scope
from perform.core.params import ParamSpec
from perform.models.host import ModelHost
from perform.patch import Ctx


@dataclass(frozen=True)
class PatchError:
    """What went wrong, pointing at the performer's own line."""

    kind: str  # "load" (syntax or top-level code) or "frame" (inside frame(ctx))
    version: int  # which load of the file failed
    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.message}"

    def as_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "version": self.version, "file": self.file,
                "line": self.line, "message": self.message}

    @classmethod
    def from_exception(cls, exc: BaseException, path: Path, kind: str,
                       version: int) -> PatchError:
        file = str(path)
        if isinstance(exc, SyntaxError) and exc.filename == file:
            return cls(kind, version, file, exc.lineno, f"SyntaxError: {exc.msg}")
        line = None
        for entry in traceback.extract_tb(exc.__traceback__):
            if entry.filename == file:
                line = entry.lineno  # the deepest line of the patch itself
        text = str(exc) or type(exc).__name__
        message = f"{type(exc).__name__}: {text}" if text != type(exc).__name__ else text
        return cls(kind, version, file, line, message[:300])


class PatchLoadError(Exception):
    def __init__(self, error: PatchError) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass(frozen=True)
class Patch:
    """One successful load of a patch file."""

    path: Path
    version: int
    module: types.ModuleType
    frame: Callable[[Ctx], Any]
    params: tuple[ParamSpec, ...]
    model_keys: frozenset[str]


def load_patch(path: Path, version: int, models: ModelHost,
               setup_ctx: Callable[[], Ctx] | None = None) -> Patch:
    """Compile and run `path` as a new module; call its `setup(ctx)` if it has one."""
    declared = scope.LoadScope()
    try:
        source = path.read_text(encoding="utf-8")
        code = compile(source, str(path), "exec", dont_inherit=True)
        module = types.ModuleType(f"perform_patch_{path.stem}")
        module.__file__ = str(path)
        token, host_token = scope.loading.set(declared), scope.host.set(models)
        folder_token = scope.folder.set(path.parent)
        try:
            exec(code, module.__dict__)
            frame = getattr(module, "frame", None)
            if not callable(frame):
                raise NameError("the patch needs `def frame(ctx):` returning an image")
            setup = getattr(module, "setup", None)
            if callable(setup) and setup_ctx is not None:
                setup(setup_ctx())
        finally:
            scope.loading.reset(token)
            scope.host.reset(host_token)
            scope.folder.reset(folder_token)
    except Exception as exc:
        raise PatchLoadError(PatchError.from_exception(exc, path, "load", version)) from exc
    return Patch(path, version, module, frame, tuple(declared.params),
                 frozenset(declared.model_keys))
