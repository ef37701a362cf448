"""Presets: every param's value saved as a JSON file in the patch folder's `presets/`.

A save writes a temporary file and renames it over the old one, so a crash mid-save never
leaves half a preset; a load applies all values between two frames (`ParamStore.set_many`).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from perform.core.files import write_atomically
from perform.core.params import ParamStore

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 _.-]{0,63}")


class PresetError(ValueError):
    """A preset that cannot be saved or loaded; the message is for the performer."""


def preset_path(folder: Path, name: str) -> Path:
    if not _NAME.fullmatch(name) or name.endswith("."):
        raise PresetError(f"bad preset name {name!r}: use letters, digits, space, _ . - "
                          "(at most 64, no folders)")
    return folder / "presets" / f"{name}.json"


def save_preset(store: ParamStore, folder: Path, name: str) -> Path:
    path = preset_path(folder, name)
    text = json.dumps({"params": store.targets()}, indent=2, sort_keys=True) + "\n"
    try:
        write_atomically(path, text)
    except OSError as exc:
        raise PresetError(f"cannot save preset {name!r}: {exc.strerror or exc}") from None
    return path


def load_preset(store: ParamStore, folder: Path, name: str) -> dict[str, str]:
    """Apply a preset; returns the params it could not set, each with the reason."""
    path = preset_path(folder, name)
    try:
        values = json.loads(path.read_text(encoding="utf-8"))["params"]
        if not isinstance(values, dict):
            raise TypeError("'params' is not an object")
    except FileNotFoundError:
        raise PresetError(f"no preset {name!r} in {path.parent}") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PresetError(f"preset {name!r} is unreadable: {exc}") from None
    return store.set_many(values)
