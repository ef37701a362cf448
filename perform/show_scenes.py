"""The show's scenes: save the whole state, recall it (switching patch, crossfading), autosave.

A recall whose scene plays another patch switches to it and applies the params once that
patch has declared them (on the render thread, in `patch_declared`); until then the running
patch plays on. `--resume` is a recall of the autosave before the first load.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from perform.core.crossfade import Crossfade, Fader
from perform.core.loader import Patch
from perform.core.scenes import Scene, SceneError, Shelf
from perform.models.host import is_checkpoint

if TYPE_CHECKING:
    from perform.show import Show

log = logging.getLogger("perform.scenes")

AUTOSAVE = "autosave"  # scenes/autosave.json
AUTOSAVE_SECONDS = 5.0  # at most this much play is lost to a crash or a power cut


@dataclass(frozen=True)
class _Recall:
    """A recall waiting for its patch to load."""

    patch: Path
    name: str
    params: dict[str, Any]
    over: float
    unit: str
    state: dict[str, Any]


class ShowScenes:
    def __init__(self, show: Show) -> None:
        self.show = show
        self.shelf = Shelf(show.patch_folder / "scenes", "scene")
        self.presets = Shelf(show.patch_folder / "presets", "preset")
        self.fader = Fader(show.store, state={})  # the state is the engine's ctx.state
        self.last_autosave: str | None = None  # ISO time
        self.autosave_error: str | None = None
        self._waiting: _Recall | None = None
        self._lock = threading.Lock()  # `_waiting`: set on the event loop, taken on render

    def capture(self) -> Scene:
        """Every param's target (triggers have none), the patch running now, its `ctx.state`
        and the models it loaded."""
        show = self.show
        triggers = set(show.store.triggers())
        params = {name: value for name, value in show.store.targets().items()
                  if name not in triggers}
        state = {key: value.copy() if isinstance(value, np.ndarray) else value
                 for key, value in dict(show.engine.state).items()}
        active = show.engine.active
        models = sorted(self._relative(key) for key in active.model_keys) if active else []
        return Scene(params=params,
                     patch=show.patch_path.relative_to(show.patch_folder).as_posix(),
                     saved=datetime.now().astimezone().isoformat(timespec="seconds"),
                     state=state, models=tuple(models))

    def _relative(self, key: str) -> str:
        """A model's name as a scene keeps it: checkpoints relative to the patch folder."""
        path = Path(key)
        if path.is_absolute() and path.is_relative_to(self.show.patch_folder):
            return path.relative_to(self.show.patch_folder).as_posix()
        return key

    def save(self, name: str) -> Path:
        return self.shelf.save(name, self.capture())

    def recall(self, name: str, over: float = 0.0, unit: str = "s") -> dict[str, str]:
        """Recall a scene now (`over` 0) or crossfade to it over `over` seconds or beats.

        Returns the params it skipped, each with the reason (none yet while its patch loads);
        raises SceneError for a missing or unreadable scene, or a bad length.
        """
        if not math.isfinite(over) or over < 0:
            units = "beats" if unit == "beats" else "seconds"
            raise SceneError(f"a crossfade lasts 0 or more {units}, not {over}")
        scene = self.shelf.read(name)
        show = self.show
        patch = self._patch_of(scene) or show.patch_path
        recall = _Recall(patch, name, scene.params, over, unit, scene.state)
        if missing := self._missing_models(scene):
            log.warning("scene %r: %s", name, "; ".join(missing))
        active = show.engine.active
        if patch == show.patch_path and active is not None and active.path == patch:
            with self._lock:
                self._waiting = None
            return self._apply(recall)
        with self._lock:
            self._waiting = recall
        if patch != show.patch_path:
            show.switch_patch(patch)
        return {}

    def resume(self) -> None:
        """Start from the autosave (before the first load): its patch, then its params."""
        try:
            scene = self.shelf.read(AUTOSAVE)
            patch = self._patch_of(scene) or self.show.patch_path
        except SceneError as exc:
            log.warning("not resuming: %s", exc)
            return
        log.info("resuming from %s, saved %s", self.shelf.path(AUTOSAVE), scene.saved)
        self.show.patch_path = patch
        with self._lock:
            self._waiting = _Recall(patch, AUTOSAVE, scene.params, 0.0, "s", scene.state)

    def patch_declared(self, patch: Patch) -> None:
        """A patch's params are in the store (render thread): apply a recall waiting for it."""
        with self._lock:
            recall = self._waiting
            if recall is None or recall.patch != patch.path:
                return
            self._waiting = None
        if skipped := self._apply(recall):
            log.warning("scene %r: skipped %s", recall.name, "; ".join(skipped.values()))

    def _apply(self, recall: _Recall) -> dict[str, str]:
        """Params now (or crossfaded); the state from the next frame on (or crossfaded)."""
        store = self.show.store
        if recall.over == 0:
            skipped = store.set_many(recall.params)
            values: dict[str, Any] = {}
        else:
            values, skipped = store.coerce_many(recall.params)
        if values or recall.state:
            self.fader.start(Crossfade(recall.name, values, recall.over, recall.unit,
                                       state=recall.state))
        else:
            self.fader.stop()
        return skipped

    def _missing_models(self, scene: Scene) -> list[str]:
        """The scene's checkpoints that are no longer there (its patch will say so too)."""
        folder = self.show.patch_folder
        return [f"it played {model}, which is missing" for model in scene.models
                if is_checkpoint(model) and not (folder / model).exists()]

    def _patch_of(self, scene: Scene) -> Path | None:
        if scene.patch is None:
            return None
        try:
            return self.show.patch_file(scene.patch)
        except ValueError as exc:
            raise SceneError(f"this scene plays {exc}") from None

    async def autosave(self) -> None:
        """Every AUTOSAVE_SECONDS, and once more as the show stops, the state to
        scenes/autosave.json if anything changed (a walk moving its position counts).

        Never raises: a failing disk is logged once and tried again each time.
        """
        saved: str | None = None  # what the last good save wrote, less its time
        try:
            while True:
                await asyncio.sleep(AUTOSAVE_SECONDS)
                saved = await asyncio.to_thread(self._autosave, saved)
        except asyncio.CancelledError:
            self._autosave(saved)  # the show is stopping: the loop may not wait for a thread
            raise

    def _autosave(self, saved: str | None) -> str | None:
        scene = self.capture()
        content = dataclasses.replace(scene, saved=None).to_json()
        if content == saved:
            return saved
        try:
            self.shelf.save(AUTOSAVE, scene)
        except SceneError as exc:
            if self.autosave_error is None:
                log.error("autosave failed, trying again every %g s: %s", AUTOSAVE_SECONDS, exc)
            self.autosave_error = str(exc)
            return saved
        if self.autosave_error is not None:
            log.info("autosave works again")
        self.last_autosave, self.autosave_error = scene.saved, None
        return content

    def state(self) -> dict[str, Any]:
        """For /api/state: the crossfade under way, if any, and the last autosave."""
        return {"scene": self.fader.running(),
                "autosave": {"last": self.last_autosave, "error": self.autosave_error}}
