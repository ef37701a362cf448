"""Shared test helpers: a live show in a background thread, patch files, polling."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

from perform.core.crossfade import Fader
from perform.core.frames import Frame, Mailbox
from perform.core.loader import load_patch
from perform.core.params import ParamStore
from perform.engine import Engine
from perform.models.host import ModelHost
from perform.show import Show, ShowConfig, wait_ready
from perform.tempo import FixedTempo


class Recorder(Mailbox):
    """An output that keeps every frame, to prove none was lost."""

    def __init__(self) -> None:
        super().__init__("recorder")
        self.frames: list[Frame] = []

    def put(self, frame: Frame) -> None:
        self.frames.append(frame)
        super().put(frame)


class LiveShow:
    def __init__(self, show: Show, recorder: Recorder, thread: threading.Thread) -> None:
        self.show, self.recorder, self.thread = show, recorder, thread

    @property
    def osc_port(self) -> int:
        assert self.show.osc_address is not None
        return self.show.osc_address[1]

    @property
    def url(self) -> str:
        assert self.show.http_address is not None
        return "http://{}:{}".format(*self.show.http_address)

    def state(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.url + "/api/state", timeout=5) as response:
            return json.load(response)


class Listener:
    """A real UDP socket that keeps every OSC message sent to it, with its arrival time."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.messages: list[tuple[float, str, list[object]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            message = OscMessage(data)
            self.messages.append((time.monotonic(), message.address, message.params))

    def values(self, address: str) -> list[list[object]]:
        return [args for _, a, args in list(self.messages) if a == address]

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


def msg(address: str, *args: object) -> bytes:
    """One OSC message, built by python-osc: independent of the server's own encoder."""
    builder = OscMessageBuilder(address)
    for arg in args:
        builder.add_arg(arg)
    return builder.build().dgram


def wait_for(check: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def live_show() -> Iterator[Callable[..., LiveShow]]:
    """Start a real show (real sockets on 127.0.0.1, real threads); stop it afterwards."""
    started: list[tuple[Show, threading.Thread]] = []

    def start(patch: Path, **config: Any) -> LiveShow:
        options = dict(width=64, height=48, fps=30.0, osc_port=0, http_port=0, zeroconf=False,
                       midi=None)
        options.update(config)
        show = Show(ShowConfig(patch=patch, **options))
        recorder = Recorder()
        show.engine.outputs.append(recorder)
        thread = threading.Thread(target=asyncio.run, args=(show.serve(),), daemon=True)
        thread.start()
        started.append((show, thread))
        wait_ready(show)
        return LiveShow(show, recorder, thread)

    yield start
    for show, thread in started:
        show.stop.set()
        thread.join(timeout=10)
        assert not thread.is_alive(), "the show did not stop"


@pytest.fixture(scope="module")
def jack() -> Iterator[str]:
    """A JACK server on its dummy driver for this module's tests (real MIDI ports), or skip."""
    import rtmidi
    from jack import JackUnavailable, jack_server

    if rtmidi.API_UNIX_JACK not in rtmidi.get_compiled_api():
        pytest.skip("python-rtmidi was built without JACK")
    try:
        with jack_server() as name:
            yield name
    except JackUnavailable as e:
        pytest.skip(f"no JACK server for the MIDI tests: {e}")


def engine_by_hand(tmp_path: Path, patch: str) -> tuple[Engine, ParamStore, Fader]:
    """An engine with a fader, rendered frame by frame at the times a test gives, after a
    first frame at 0 in which `patch` (its text) declares its params."""
    path = tmp_path / "show.py"
    path.write_text(patch)
    store, models = ParamStore(), ModelHost(8, 8, torch.device("cpu"))
    fader = Fader(store, state={})
    engine = Engine(store, models, width=8, height=8, fps=10, tempo=FixedTempo(120.0),
                    before_snapshot=fader.step, state=fader.state)
    engine.offer(load_patch(path, 1, models))
    engine.render_one(0.0)
    return engine, store, fader
