"""Scenes and presets as files: every param's target (and the patch) as JSON in the patch folder.

A scene is `scenes/<name>.json`, a preset `presets/<name>.json`; both hold the same document,
{"patch": file, "params": {...}, "state": {...}, "models": [...], "saved": ISO time}, so one
`Shelf` reads and writes both (a preset is recalled without switching the patch). `state` is
the patch's `ctx.state` (walk positions from `ctx.phase`, latents a patch keeps), numpy
arrays written as {"array": [...]}; `models` records what the patch had loaded. Saves go
through `write_atomically`, so a crash or a power cut mid-save leaves the old file or the
new one. A file that a crash, a hand edit or a full disk left unreadable is refused with
its path, never fatal.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from perform.core.files import write_atomically

log = logging.getLogger("perform.scenes")

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 _.-]{0,63}")


class SceneError(ValueError):
    """A scene or preset that cannot be saved or read; the message is for the performer."""


class NoSuchScene(SceneError):
    pass


@dataclass(frozen=True)
class Scene:
    """What a save captured: param targets by name, the patch file (relative to its folder),
    the patch's state and the models it had loaded."""

    params: dict[str, Any]
    patch: str | None = None  # None: a hand-written file; recalling it keeps the running patch
    saved: str | None = None  # ISO time of the save
    state: dict[str, Any] = field(default_factory=dict)  # ctx.state, arrays as numpy arrays
    models: tuple[str, ...] = ()

    def to_json(self) -> str:
        document = {"patch": self.patch, "params": self.params, "saved": self.saved,
                    "state": encode_state(self.state), "models": list(self.models)}
        return json.dumps(document, indent=2, sort_keys=True) + "\n"


def encode_state(state: dict[str, Any]) -> dict[str, Any]:
    """What of `ctx.state` JSON can hold: plain values as they are, float arrays tagged;
    anything else (a model, a tensor, a function) is left out."""
    kept: dict[str, Any] = {}
    for key, value in state.items():
        if isinstance(value, np.ndarray | np.floating | np.integer):
            if value.dtype.kind not in "fiu" or not np.isfinite(value).all():
                continue
            value = {"array": value.tolist()} if isinstance(value, np.ndarray) else value.item()
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            continue
        kept[key] = value
    return kept


def decode_state(saved: dict[str, Any]) -> dict[str, Any]:
    return {key: np.asarray(value["array"], np.float32)
            if isinstance(value, dict) and set(value) == {"array"} else value
            for key, value in saved.items()}


class Shelf:
    """One folder of scene files; `noun` ("scene", "preset") names them in messages."""

    def __init__(self, folder: Path, noun: str) -> None:
        self.folder, self.noun = folder, noun

    def path(self, name: str) -> Path:
        if not _NAME.fullmatch(name) or name.endswith("."):
            raise SceneError(f"bad {self.noun} name {name!r}: use letters, digits, space, "
                             "_ . - (at most 64, no folders)")
        return self.folder / f"{name}.json"

    def save(self, name: str, scene: Scene) -> Path:
        path = self.path(name)
        try:
            write_atomically(path, scene.to_json())
        except OSError as exc:
            raise SceneError(f"cannot save {self.noun} {name!r}: {exc.strerror or exc}") from None
        return path

    def read(self, name: str) -> Scene:
        path = self.path(name)
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise NoSuchScene(f"no {self.noun} {name!r} in {self.folder}") from None
        except (OSError, ValueError) as exc:
            raise SceneError(f"{self.noun} {name!r} is unreadable ({path}): {exc}") from None
        problem = _problem(document)
        if problem:
            raise SceneError(f"{self.noun} {name!r} is unreadable ({path}): {problem}")
        try:
            state = decode_state(document.get("state") or {})
        except (TypeError, ValueError) as exc:
            raise SceneError(f"{self.noun} {name!r} is unreadable ({path}): "
                             f"'state' holds a bad array: {exc}") from None
        return Scene(document["params"], document.get("patch"), document.get("saved"), state,
                     tuple(document.get("models") or ()))

    def names(self) -> list[str]:
        """The readable files' names, sorted; each unreadable one is logged and left out."""
        found = []
        for path in sorted(self.folder.glob("*.json")):
            try:
                self.read(path.stem)
            except SceneError as exc:
                log.warning("skipped: %s", exc)
                continue
            found.append(path.stem)
        return found


def _problem(document: object) -> str | None:
    """Why a parsed file is not a scene, or None."""
    if not isinstance(document, dict) or not isinstance(document.get("params"), dict):
        return "'params' is not an object"
    if not isinstance(document.get("patch"), str | None):
        return "'patch' is not a file name"
    if not isinstance(document.get("saved"), str | None):
        return "'saved' is not a time"
    if not isinstance(document.get("state", {}), dict):
        return "'state' is not an object"
    models = document.get("models", [])
    if not isinstance(models, list) or not all(isinstance(m, str) for m in models):
        return "'models' is not a list of names"
    return None
