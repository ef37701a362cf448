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
from typing import TYPE_CHECKING, Any, TypeVar

from perform.core.scenes import SceneError
from perform.io.osc import Command, CommandError, FeedbackError, Peer
from perform.midi.learn import LearnError
from perform.midi.rig import Learned

if TYPE_CHECKING:
    from perform.show import Show

T = TypeVar("T")

# address -> (OSC type tags, what it does): shown to OSCQuery clients and in the README
COMMANDS: dict[str, tuple[str, str]] = {
    "/perform/reload": ("", "load the patch file again"),
    "/perform/patch/load": ("s", "run another patch file from the patch folder"),
    "/perform/preset/save": ("s", "save every param's value as presets/<name>.json"),
    "/perform/preset/load": ("s", "set every param saved in presets/<name>.json"),
    "/perform/scene/save": ("s", "save the whole state (params, patch, ctx.state) as "
                                 "scenes/<name>.json"),
    "/perform/scene/recall": ("sf", "recall scenes/<name>.json at once, or crossfade to it "
                                    "over the seconds given"),
    "/perform/scene/recall/beats": ("sf", "crossfade to scenes/<name>.json over this many "
                                          "beats of the show's tempo"),
    "/perform/scene/list": ("", "answers /perform/scene/list with every readable scene's name"),
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
    scenes = show.scenes

    def reload(args: tuple[Any, ...], peer: Peer) -> None:
        show.reload()

    def load_patch(args: tuple[Any, ...], peer: Peer) -> None:
        try:
            path = show.patch_file(_text(_with_token(show, args, 1)))
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        show.switch_patch(path)

    def save_preset(args: tuple[Any, ...], peer: Peer) -> None:
        name = _text(_with_token(show, args, 1))
        _scene_command(lambda: scenes.presets.save(name, scenes.capture()))

    def load_preset(args: tuple[Any, ...], peer: Peer) -> tuple[str, tuple[Any, ...]] | None:
        values = _scene_command(lambda: scenes.presets.read(_text(args))).params
        return _skipped("/perform/preset/load", show.store.set_many(values))

    def save_scene(args: tuple[Any, ...], peer: Peer) -> None:
        name = _text(_with_token(show, args, 1))
        _scene_command(lambda: scenes.save(name))

    def recall(unit: str) -> Command:
        """Recall: a name and seconds (optional: 0 is at once), or a name and beats."""
        address = "/perform/scene/recall" + ("/beats" if unit == "beats" else "")
        counts = range(2, 3) if unit == "beats" else range(1, 3)

        def command(args: tuple[Any, ...], peer: Peer) -> tuple[str, tuple[Any, ...]] | None:
            args = _with_token(show, args, counts)
            if len(args) not in counts:
                raise CommandError(f"needs a scene name and {unit}"
                                   if unit == "beats" else "needs a scene name [seconds]")
            name, length = _text(args[:1]), _number(args[1:]) if len(args) == 2 else 0.0
            return _skipped(address, _scene_command(lambda: scenes.recall(name, length, unit)))
        return command

    def list_scenes(args: tuple[Any, ...], peer: Peer) -> tuple[str, tuple[Any, ...]]:
        return "/perform/scene/list", tuple(scenes.shelf.names())

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
        "/perform/preset/save": save_preset, "/perform/preset/load": load_preset,
        "/perform/scene/save": save_scene, "/perform/scene/recall": recall("s"),
        "/perform/scene/recall/beats": recall("beats"),
        "/perform/scene/list": list_scenes, "/perform/fps": fps,
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


def _with_token(show: Show, args: tuple[Any, ...], wanted: int | range) -> tuple[Any, ...]:
    """The args without the token; refused when the show needs one and it is wrong.

    `wanted` is how many args come before the token (a range where some are optional).
    """
    if show.token is None:
        return args
    counts = range(wanted, wanted + 1) if isinstance(wanted, int) else wanted
    if len(args) - 1 not in counts or args[-1] != show.token:
        raise CommandError("this server listens beyond this machine: add its token "
                           "(printed at start) as the last argument")
    return args[:-1]


def _scene_command(action: Callable[[], T]) -> T:
    """A scene or preset action, its SceneError turned into the refusal the sender gets."""
    try:
        return action()
    except SceneError as exc:
        raise CommandError(str(exc)) from None


def _skipped(address: str, refused: dict[str, str]) -> tuple[str, tuple[Any, ...]] | None:
    """/perform/ok naming what a recall skipped (params the patch no longer has), if any."""
    if refused:
        return "/perform/ok", (address, "skipped " + "; ".join(refused.values()))
    return None


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
