"""HTTP: the state as JSON, params by POST, scenes, MIDI learn, and a preview page with MJPEG.

Frames are JPEG-encoded once per frame in a worker thread, whatever the number of viewers,
and only while someone watches; a slow viewer skips frames instead of queueing them.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import io
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web
from PIL import Image

from perform.core.frames import Frame, Mailbox
from perform.core.params import ParamError, ParamStore
from perform.core.scenes import NoSuchScene, SceneError
from perform.midi.learn import LearnError
from perform.midi.rig import Learned

if TYPE_CHECKING:
    from perform.show_scenes import ShowScenes

BOUNDARY = "perform-frame"


class JpegPreview:
    """Turns the preview mailbox into a stream of JPEG bytes shared by every viewer."""

    def __init__(self, mailbox: Mailbox, quality: int = 80, max_fps: float = 30.0) -> None:
        self.mailbox, self.quality, self.min_interval = mailbox, quality, 1.0 / max_fps
        self.jpeg: bytes | None = None
        self.seq = -1
        self.viewers = 0
        self.closed = False
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None

    def encode(self, frame: Frame) -> bytes:
        out = io.BytesIO()
        Image.fromarray(frame.image).save(out, "JPEG", quality=self.quality)
        return out.getvalue()

    async def frames(self) -> AsyncIterator[bytes]:
        """Yield each new JPEG as it comes, starting the encoder while anyone watches."""
        self.viewers += 1
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._encode_loop())
        seen = -1
        try:
            while True:
                async with self._changed:
                    while self.seq == seen and not self.closed:
                        await self._changed.wait()
                    if self.closed:
                        return
                    seen, jpeg = self.seq, self.jpeg
                assert jpeg is not None
                yield jpeg
        finally:
            self.viewers -= 1

    async def _encode_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while self.viewers > 0:
            frame = await self.mailbox.next()
            jpeg = await loop.run_in_executor(None, self.encode, frame)
            async with self._changed:
                self.jpeg, self.seq = jpeg, frame.seq
                self._changed.notify_all()
            await asyncio.sleep(self.min_interval)

    async def close(self) -> None:
        """End every viewer's stream, so the HTTP server can shut down at once."""
        async with self._changed:
            self.closed = True
            self._changed.notify_all()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


def token_check(token: str | None,
                in_query: bool = False) -> Callable[[web.Request], web.Response | None]:
    """A check for requests that change the show: None when it may, else the 401 to send.
    The token comes as `Authorization: Bearer`, or with `in_query` also as `?token=` (for
    WebSockets: browsers cannot give them headers)."""

    def refused(request: web.Request) -> web.Response | None:
        if token is None or request.headers.get("Authorization") == f"Bearer {token}":
            return None
        if in_query and request.query.get("token") == token:
            return None
        where = "?token=TOKEN" if in_query else "'Authorization: Bearer TOKEN'"
        return web.json_response({"error": "this server listens beyond this machine: send "
                                           f"its token as {where}"}, status=401)
    return refused


def make_app(store: ParamStore, state: Callable[[], dict[str, Any]], preview: JpegPreview,
             learn: Callable[[str], Awaitable[Learned]], still: Callable[[], Awaitable[Path]],
             scenes: ShowScenes,
             refused: Callable[[web.Request], web.Response | None]) -> web.Application:
    """The aiohttp application; `state` builds the /api/state document, `learn` binds the
    next MIDI control moved, `still` saves a PNG. A request that changes the show is first
    asked of `refused` (see `token_check`)."""


    async def index(request: web.Request) -> web.Response:
        page = resources.files("perform.io").joinpath("preview.html").read_text("utf-8")
        return web.Response(text=page, content_type="text/html")

    async def get_state(request: web.Request) -> web.Response:
        return web.json_response(state())

    async def post_params(request: web.Request) -> web.Response:
        if (refusal := refused(request)) is not None:
            return refusal
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return web.json_response({"error": "the body must be a JSON object"}, status=400)
        if not isinstance(body, dict):
            return web.json_response({"error": "the body must be a JSON object"}, status=400)
        applied: dict[str, Any] = {}
        errors: dict[str, str] = {}
        for name, value in body.items():
            try:
                applied[name] = store.set(name, value)
            except ParamError as exc:
                errors[name] = str(exc)
        status = 200 if not errors else (207 if applied else 400)
        return web.json_response({"applied": applied, "errors": errors}, status=status)

    async def post_learn(request: web.Request) -> web.Response:
        """{"param": name}: answers once a control is moved (or after the learn times out)."""
        if (refusal := refused(request)) is not None:
            return refusal
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("param"), str):
            return web.json_response({"error": 'the body must be {"param": "name"}'}, status=400)
        try:
            learned = await learn(body["param"])
        except LearnError as exc:
            return web.json_response({"error": str(exc)}, status=409)
        return web.json_response(dataclasses.asdict(learned))

    async def post_still(request: web.Request) -> web.Response:
        """Saves the frame on screen; answers {"path": ...} once it is on disk."""
        if (refusal := refused(request)) is not None:
            return refusal
        try:
            return web.json_response({"path": str(await still())})
        except OSError as exc:
            return web.json_response({"error": f"no still saved: {exc}"}, status=409)

    async def get_scenes(request: web.Request) -> web.Response:
        return web.json_response({"scenes": scenes.shelf.names()})

    async def post_scene(request: web.Request) -> web.Response:
        """Saves the whole state as the scene named in the path."""
        if (refusal := refused(request)) is not None:
            return refusal
        try:
            path = scenes.save(request.match_info["name"])
        except SceneError as exc:
            return web.json_response({"error": str(exc)}, status=409)
        return web.json_response({"saved": str(path)})

    async def post_recall(request: web.Request) -> web.Response:
        """{} recalls at once; {"seconds": x} or {"beats": n} crossfades."""
        if (refusal := refused(request)) is not None:
            return refusal
        try:
            body = await request.json() if request.can_read_body else {}
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = None
        if (not isinstance(body, dict) or len(body) > 1 or not body.keys() <= {"seconds", "beats"}
                or any(isinstance(v, bool) or not isinstance(v, int | float)
                       for v in body.values())):
            return web.json_response({"error": 'the body must be {}, {"seconds": x} or '
                                               '{"beats": n}'}, status=400)
        unit, length = next(iter(body.items()), ("seconds", 0.0))
        name = request.match_info["name"]
        try:
            skipped = scenes.recall(name, float(length), "beats" if unit == "beats" else "s")
        except NoSuchScene as exc:
            return web.json_response({"error": str(exc)}, status=404)
        except SceneError as exc:
            return web.json_response({"error": str(exc)}, status=409)
        return web.json_response({"recalled": name, "skipped": skipped})

    async def stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={
            "Content-Type": f"multipart/x-mixed-replace; boundary={BOUNDARY}",
            "Cache-Control": "no-store"})
        await response.prepare(request)
        try:
            async with contextlib.aclosing(preview.frames()) as jpegs:
                async for jpeg in jpegs:
                    await response.write(
                        f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                        f"Content-Length: {len(jpeg)}\r\n\r\n".encode() + jpeg + b"\r\n")
        except ConnectionError:
            pass  # the viewer went away
        return response

    app = web.Application()
    app.router.add_get("/", index)
    app.router.add_get("/api/state", get_state)
    app.router.add_post("/api/params", post_params)
    app.router.add_post("/api/midi/learn", post_learn)
    app.router.add_post("/api/still", post_still)
    app.router.add_get("/api/scenes", get_scenes)
    app.router.add_post("/api/scenes/{name}", post_scene)
    app.router.add_post("/api/scenes/{name}/recall", post_recall)
    app.router.add_get("/stream.mjpg", stream)
    return app
