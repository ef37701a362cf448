"""The patch folder over HTTP, for a live-coding editor: list, read, save, run.

A save writes the file atomically; the file watcher then reloads it like any save from a
text editor, so an error comes back the usual way (`/api/state`, with its line). Saving
writes code the show then runs: beyond loopback it needs the token, like every change.
Only plain file names in the patch folder are served (no folders, no `..`, no absolute
paths), and a name that resolves outside the folder (a symlink) is refused.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from aiohttp import web

from perform.core.files import write_atomically

NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}\.py")
MAX_BYTES = 256 * 1024  # a patch is a page of code, not a dataset


class EditorError(ValueError):
    """A name or a body the editor refuses, said for the performer."""


def patch_in(folder: Path, name: str) -> Path:
    """The file `name` in `folder`, which it must not leave; EditorError if it would."""
    if not NAME.fullmatch(name):
        raise EditorError(f"{name!r} is not a patch name: letters, digits, _ . - ending in "
                          ".py, no folders")
    path = (folder / name).resolve()
    if path.parent != folder.resolve():
        raise EditorError(f"{name} leads outside the patch folder")
    return path


def editor_routes(folder: Path, running: Callable[[], Path],
                  refused: Callable[[web.Request], web.Response | None],
                  run: Callable[[Path], None]) -> list[web.RouteDef]:
    """Routes over the patch `folder`; `running()` is the patch playing now, `run(path)`
    switches to another, `refused(request)` answers a change that lacks the token."""

    def named(request: web.Request) -> Path:
        try:
            return patch_in(folder, request.match_info["name"])
        except EditorError as exc:
            raise web.HTTPBadRequest(text=str(exc)) from None

    def servable(name: str) -> bool:
        try:
            return patch_in(folder, name).is_file()
        except EditorError:
            return False

    async def patches(request: web.Request) -> web.Response:
        names = sorted(p.name for p in folder.glob("*.py") if servable(p.name))
        return web.json_response({"folder": str(folder), "patches": names,
                                  "running": running().name})

    async def source(request: web.Request) -> web.Response:
        path = named(request)
        if not path.is_file():
            raise web.HTTPNotFound(text=f"no patch {path.name} in {folder}")
        return web.Response(text=path.read_text(encoding="utf-8"), content_type="text/x-python")

    async def save(request: web.Request) -> web.Response:
        if (refusal := refused(request)) is not None:
            return refusal
        path = named(request)
        body = await request.read()
        if len(body) > MAX_BYTES:
            raise web.HTTPRequestEntityTooLarge(max_size=MAX_BYTES, actual_size=len(body))
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise web.HTTPBadRequest(text="a patch is UTF-8 text") from None
        try:
            write_atomically(path, text)
        except OSError as exc:
            raise web.HTTPInternalServerError(text=f"cannot save {path.name}: "
                                                   f"{exc.strerror or exc}") from None
        return web.json_response({"saved": path.name, "bytes": len(body),
                                  "running": path == running()})

    async def switch(request: web.Request) -> web.Response:
        if (refusal := refused(request)) is not None:
            return refusal
        path = named(request)
        if not path.is_file():
            raise web.HTTPNotFound(text=f"no patch {path.name} in {folder}")
        run(path)
        return web.json_response({"running": path.name})

    return [web.get("/api/patches", patches), web.get("/api/patches/{name}", source),
            web.put("/api/patches/{name}", save), web.post("/api/patches/{name}/run", switch)]
