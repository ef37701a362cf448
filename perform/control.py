"""The server's own OSC addresses (/perform/...): what a performer can ask of the show itself.

Each command checks its arguments and raises CommandError with a reason the sender gets
back as /perform/refused. Commands that write files or load code need the show's token as
their last argument when the server listens beyond this machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from perform.core.presets import PresetError, load_preset, save_preset
from perform.io.osc import Command, CommandError, FeedbackError, Peer
from perform.midi.learn import LearnError
from perform.midi.rig import Learned

if TYPE_CHECKING:
    from perform.show import Show

# address -> (OSC type tags, what it does): shown to OSCQuery clients and in the README
COMMANDS: dict[str, tuple[str, str]] = {
    "/perform/reload": ("", "load the patch file again"),
    "/perform/patch/load": ("s", "run another patch file from the patch folder"),
    "/perform/preset/save": ("s", "save every param's value as presets/<name>.json"),
    "/perform/preset/load": ("s", "set every param saved in presets/<name>.json"),
    "/perform/fps": ("f", "target frames per second"),
    "/perform/ping": ("", "answers /perform/pong with the same arguments"),
    "/perform/feedback/add": ("i", "send feedback to the sender's host at this port"),
    "/perform/feedback/remove": ("i", "stop feedback to the sender's host at this port"),
    "/perform/midi/learn": ("s", "bind the next MIDI control moved to this param; answers "
                                 "/perform/midi/learned (no argument: cancel)"),
    "/perform/still": ("", "save the frame on screen as a PNG in the stills folder; answers "
                           "/perform/still/saved with its path"),
}


def server_commands(show: Show) -> dict[str, Command]:
    folder = show.patch_folder

    def reload(args: tuple[Any, ...], peer: Peer) -> None:
        show.reload()

    def load_patch(args: tuple[Any, ...], peer: Peer) -> None:
        path = _inside(folder, _text(_with_token(show, args, 1)))
        show.switch_patch(path)

    def save(args: tuple[Any, ...], peer: Peer) -> None:
        name = _text(_with_token(show, args, 1))
        try:
            save_preset(show.store, folder, name)
        except PresetError as exc:
            raise CommandError(str(exc)) from None

    def load(args: tuple[Any, ...], peer: Peer) -> tuple[str, tuple[Any, ...]] | None:
        try:
            refused = load_preset(show.store, folder, _text(args))
        except PresetError as exc:
            raise CommandError(str(exc)) from None
        if refused:  # applied what it could: say what it skipped
            return "/perform/ok", ("/perform/preset/load",
                                   "skipped " + "; ".join(refused.values()))
        return None

    def fps(args: tuple[Any, ...], peer: Peer) -> None:
        value = _number(args)
        if not 1.0 <= value <= 240.0:
            raise CommandError(f"fps must be within 1..240, got {value:g}")
        show.engine.fps = value

    def ping(args: tuple[Any, ...], peer: Peer) -> tuple[str, tuple[Any, ...]]:
        return "/perform/pong", args

    def feedback(change: Callable[[str, int], object]) -> Command:
        def command(args: tuple[Any, ...], peer: Peer) -> None:
            port = _number(args)
            if port != int(port):
                raise CommandError(f"a port is a whole number, got {port:g}")
            try:
                change(peer.host, int(port))
            except FeedbackError as exc:
                raise CommandError(str(exc)) from None
        return command

    def learn(args: tuple[Any, ...], peer: Peer) -> None:
        if show.midi is None:
            raise CommandError("MIDI is off (--no-midi)")
        if not args:
            show.midi.cancel_learn()
            return
        param = _text(_with_token(show, args, 1))
        try:
            result = show.midi.learn(param)
        except LearnError as exc:
            raise CommandError(str(exc)) from None
        result.add_done_callback(functools.partial(_tell, peer, "/perform/midi/learn",
                                                      _learned))

    def still(args: tuple[Any, ...], peer: Peer) -> None:
        _with_token(show, args, 0)
        saving = asyncio.ensure_future(show.still())
        saving.add_done_callback(functools.partial(_tell, peer, "/perform/still", _saved))

    handlers: dict[str, Command] = {
        "/perform/reload": reload, "/perform/patch/load": load_patch,
        "/perform/preset/save": save, "/perform/preset/load": load, "/perform/fps": fps,
        "/perform/ping": ping, "/perform/feedback/add": feedback(show.feedback.add_target),
        "/perform/feedback/remove": feedback(show.feedback.remove_target),
        "/perform/midi/learn": learn, "/perform/still": still,
    }
    assert handlers.keys() == COMMANDS.keys()
    return handlers


def _tell(peer: Peer, command: str, reply: Callable[[Any], tuple[str, tuple[Any, ...]]],
          result: asyncio.Future[Any]) -> None:
    """The outcome of a command that takes a while, to whoever asked (maybe long gone):
    `reply(value)` on success, /perform/refused with the reason on failure."""
    if result.cancelled():
        return
    error = result.exception()
    with contextlib.suppress(OSError):
        if error is None:
            address, args = reply(result.result())
            peer.reply(address, *args)
        else:
            peer.reply("/perform/refused", command, str(error))


def _learned(learned: Learned) -> tuple[str, tuple[Any, ...]]:
    return "/perform/midi/learned", (learned.param, learned.control, learned.port, learned.file)


def _saved(path: Path) -> tuple[str, tuple[Any, ...]]:
    return "/perform/still/saved", (str(path),)


def _with_token(show: Show, args: tuple[Any, ...], wanted: int) -> tuple[Any, ...]:
    """The args without the token; refused when the show needs one and it is wrong."""
    if show.token is None:
        return args
    if len(args) != wanted + 1 or args[-1] != show.token:
        raise CommandError("this server listens beyond this machine: add its token "
                           "(printed at start) as the last argument")
    return args[:-1]


def _text(args: tuple[Any, ...]) -> str:
    if len(args) != 1 or not isinstance(args[0], str) or not args[0]:
        raise CommandError("needs one string argument")
    return args[0]


def _number(args: tuple[Any, ...]) -> float:
    if len(args) != 1 or isinstance(args[0], bool) or not isinstance(args[0], int | float):
        raise CommandError("needs one number")
    if not math.isfinite(args[0]):
        raise CommandError(f"refuses {args[0]}")
    return float(args[0])


def _inside(folder: Path, name: str) -> Path:
    """A patch file in the patch folder; nothing outside it can be loaded over OSC."""
    path = (folder / name).resolve()
    if not path.is_relative_to(folder):
        raise CommandError(f"{name} is outside the patch folder {folder}")
    if path.suffix != ".py" or not path.is_file():
        raise CommandError(f"no patch file {name} in {folder}")
    return path
