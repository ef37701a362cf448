"""MIDI learn: the next control a performer moves becomes a `[[bind]]` in a mapping file.

The new binding is appended as its own table, after the file's text as it was, so comments
and layout stay; only a binding that the same control had in that file is cut out, line by
line (the control now plays the param just learned). tomlkit writes the new table's TOML.
The result is checked as a mapping before it replaces the file atomically.
"""

from __future__ import annotations

import datetime
import tomllib
from pathlib import Path
from typing import Any

import mido
import tomlkit

from perform.core.files import write_atomically
from perform.core.params import ParamSpec
from perform.midi.mapping import Mapping, MappingError, overlap

NEW_FILE = ("# MIDI bindings made with MIDI learn (/perform/midi/learn). Edit freely: perform\n"
            "# keeps comments and layout when it adds a binding. Syntax: mappings/midi/README.md\n"
            'name = "learned"\n')


class LearnError(ValueError):
    """Why a control could not be learned; the text is for the performer."""


def moved(message: mido.Message) -> bool:
    """Whether a message is a control being touched (not a release, clock or sysex)."""
    if message.type == "note_on":
        return message.velocity > 0
    return message.type in ("control_change", "pitchwheel", "aftertouch", "polytouch",
                            "program_change")


def learnable(spec: ParamSpec | None, name: str) -> ParamSpec:
    """The spec of a param MIDI can play, or LearnError saying why not."""
    if spec is None:
        raise LearnError(f"the patch has no param {name!r}")
    if spec.kind not in (float, int, bool):
        raise LearnError(f"{name!r} is a {spec.describe()['type']} param; MIDI plays numbers "
                         "and switches")
    return spec


def table_for(message: mido.Message, spec: ParamSpec) -> dict[str, Any]:
    """The `[[bind]]` keys for this message's control driving this param.

    A button or pad toggles a switch (bool param) and is momentary for numbers; a CC is a
    fader or knob (with pickup). 14-bit pairs and encoders are for the performer to write.
    """
    kind = message.type
    if kind == "control_change":
        table: dict[str, Any] = {"cc": message.control}
    elif kind == "note_on":
        table = {"note": message.note}
    elif kind == "polytouch":
        table = {"aftertouch": message.note}
    else:
        table = {{"pitchwheel": "pitchbend", "aftertouch": "aftertouch",
                  "program_change": "program"}[kind]: True}
    table["param"] = spec.name
    table["channel"] = message.channel + 1
    if spec.kind is bool and kind in ("control_change", "note_on"):
        table["mode"] = "toggle"
    return table


def add_binding(path: Path, table: dict[str, Any], port: str) -> tuple[Mapping, list[str]]:
    """Write `table` into the mapping file at `path` (made if missing), noting the date and
    the `port` it was learned from.

    Returns the new mapping and the params the control stopped driving. Raises LearnError
    when the file is broken (fix it first) or cannot be written.
    """
    try:
        text = path.read_text(encoding="utf-8") if path.exists() else NEW_FILE
        before = Mapping.parse(text, path)
    except (OSError, UnicodeDecodeError) as exc:
        raise LearnError(f"cannot read {path}: {exc}") from None
    except MappingError as exc:
        raise LearnError(f"fix the mapping file first: {exc}") from None
    if before.port is not None and before.port.lower() not in port.lower():
        raise LearnError(f"{path.name} is for ports named {before.port!r}; the control moved "
                         f"on {port!r}")
    channel = tomllib.loads(text).get("channel", 1)
    if table["channel"] == channel or channel == "all":  # the file's channel says it already
        table = {key: value for key, value in table.items() if key != "channel"}
    new = Mapping.parse(tomlkit.dumps({"channel": channel, "bind": [table]})).bindings[0]
    same = [i for i, binding in enumerate(before.bindings) if overlap(binding, new)]
    replaced = [before.bindings[i].param for i in same if before.bindings[i].param != new.param]
    if same:
        text = _without(text, [before.bindings[i].line for i in same],
                        [binding.line for binding in before.bindings])
    note = f"learned {datetime.date.today().isoformat()} from {port}"
    text = text.rstrip("\n") + "\n\n" + _bind_table(table, note)
    try:
        mapping = Mapping.parse(text, path)
        write_atomically(path, text)
    except MappingError as exc:  # a bug of ours: never write a file that would not load
        raise LearnError(f"the learned binding would break {path.name}: {exc}") from None
    except OSError as exc:
        raise LearnError(f"cannot write {path}: {exc.strerror or exc}") from None
    return mapping, replaced


def _without(text: str, cut: list[int], headers: list[int]) -> str:
    """The text without the `[[bind]]` tables whose headers are on the `cut` lines.

    A table runs to the next header; comments and blank lines just above that header stay,
    as they are about the table below them.
    """
    lines = text.splitlines(keepends=True)
    for header in sorted(cut, reverse=True):
        start = header - 1
        later = [h - 1 for h in headers if h > header]
        end = later[0] if later else len(lines)
        while end > start + 1 and (not lines[end - 1].strip()
                                   or lines[end - 1].lstrip().startswith("#")):
            end -= 1
        del lines[start:end]
    return "".join(lines)


def _bind_table(table: dict[str, Any], note: str) -> str:
    """`[[bind]]` and its keys, the control's line (the first) carrying `note`."""
    bind = tomlkit.table()
    for key, value in table.items():
        item = tomlkit.item(value)
        if not bind:
            item.comment(note)
            item.trivia.comment_ws = "  "
        bind[key] = item
    aot = tomlkit.aot()
    aot.append(bind)
    return tomlkit.dumps({"bind": aot})
