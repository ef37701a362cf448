"""What every output is: a destination for frames, run on a thread of its own.

An output takes frames from its own latest-wins mailbox, so one that is slow (an encoder
behind, a receiver on a bad network) drops its own frames and holds up nobody. One that
fails stops with a message the state API shows, and where that makes sense (a virtual
camera, an NDI sender) opens again a few seconds later, while the render and the other
outputs go on. One that cannot run on this machine says so once, with what to install.

Each kind subclasses `Output` with `open`, `send` and `close`, and is chosen on the command
line as `--output KIND[:option=value,...]`; `size`, `fit` and `fps` work for every kind.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from perform.core.fit import FITS, Size, fit_array, parse_size
from perform.core.frames import Frame, Mailbox
from perform.core.stats import percentile_ms

log = logging.getLogger("perform.outputs")

REOPEN_AFTER = 3.0  # seconds between tries to open a failed output again
COMMON = {"size": "WxH, default the show's --size",
          "fit": f"{' | '.join(FITS)} when the size differs (default letterbox)",
          "fps": "at most this many frames a second (default every frame)"}


class OutputError(Exception):
    """An output that failed, in one line for the performer; tried again later."""


class OutputUnavailable(OutputError):
    """An output that cannot run on this machine (wrong OS, package missing): never retried."""


OS_NAMES = {"linux": "Linux", "darwin": "macOS", "win32": "Windows"}
SHARING = {"win32": "spout", "darwin": "syphon"}  # same-machine texture sharing, per OS


def require_os(kind: str, platform: str) -> None:
    """`OutputUnavailable` saying what to use here instead, unless this is `platform`."""
    if sys.platform == platform:
        return
    here = OS_NAMES.get(sys.platform, sys.platform)
    also = f" or --output {SHARING[sys.platform]}" if sys.platform in SHARING else ""
    raise OutputUnavailable(f"{kind} needs {OS_NAMES[platform]}, this is {here}: use "
                            f"--output ndi or --output virtualcam{also}")


@dataclass(frozen=True)
class OutputSpec:
    """`KIND[:option=value,...]` from the command line; a bare option means "true"."""

    kind: str
    options: Mapping[str, str]

    @classmethod
    def parse(cls, text: str) -> OutputSpec:
        kind, _, rest = text.strip().partition(":")
        options: dict[str, str] = {}
        for item in filter(None, (part.strip() for part in rest.split(","))):
            name, sep, value = item.partition("=")
            options[name.strip().lower()] = value.strip() if sep else "true"
        if not kind:
            raise ValueError(f"output {text!r} should look like ndi:name=perform")
        return cls(kind.strip().lower(), options)

    def __str__(self) -> str:
        return self.kind + "".join(f"{',' if i else ':'}{k}={v}"
                                   for i, (k, v) in enumerate(self.options.items()))


def check_options(spec: OutputSpec, known: Mapping[str, str]) -> None:
    """A clear ValueError for an option the kind does not take, listing those it does."""
    unknown = sorted(set(spec.options) - set(known))
    if unknown:
        raise ValueError(f"--output {spec.kind} has no option {unknown[0]!r}; it takes "
                         + ", ".join(known))


class Output:
    """One kind of destination. `open`, `send` and `close` run on the output's own thread;
    `send` gets each frame's image already at the output's size."""

    kind: ClassVar[str]
    takes: ClassVar[dict[str, str]] = {}  # the kind's own options and what they do
    retries: ClassVar[bool] = True  # open again after a failure (a recording does not)

    def __init__(self, spec: OutputSpec, width: int, height: int, fps: float) -> None:
        check_options(spec, {**COMMON, **self.takes})
        self.spec, self.options = spec, spec.options
        self.width, self.height = self.option("size", (width, height), parse_size)
        self.fit = self.option("fit", "letterbox", choice(FITS))
        self.max_fps: float | None = self.option("fps", None, _positive)
        self.show_fps = fps

    @property
    def name(self) -> str:
        return str(self.spec)

    def option(self, name: str, default: Any, convert: Callable[[str], Any] = str) -> Any:
        """The option's value, converted, or `default`; a bad value is a clear ValueError."""
        if name not in self.options:
            return default
        try:
            return convert(self.options[name])
        except ValueError as exc:
            value = self.options[name]
            raise ValueError(f"--output {self.kind}: {name}={value!r}: {exc}") from None

    def open(self) -> None:
        """Get ready to send (raise `OutputUnavailable` or `OutputError` if it cannot)."""

    def send(self, frame: Frame, image: np.ndarray) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Let go of whatever `open` took; called after a failure too."""

    def describe(self) -> dict[str, Any]:
        """What the state API shows about this output beyond the common counters."""
        return {}


class RunningOutput:
    """An output on its thread: frames from its mailbox, failures kept to itself, counters."""

    def __init__(self, output: Output, clock: Callable[[], float] = time.monotonic) -> None:
        self.output = output
        self.mailbox = Mailbox(output.name)
        self.size: Size = (output.width, output.height, output.fit)
        self.status = "starting"
        self.sent = self.skipped = self.errors = 0
        self.last_error: str | None = None
        self._clock = clock
        self._latency: deque[float] = deque(maxlen=600)  # rendered -> sent, seconds
        self._sent_at: deque[float] = deque(maxlen=120)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"perform-output-{output.kind}",
                                        daemon=True)  # a stuck output must not hold up exit

    def start(self) -> None:
        self._thread.start()

    def close(self, timeout: float = 2.0) -> None:
        """Stop it; an output stuck inside `send` is left behind after `timeout`, said once."""
        self._stop.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("output %s did not stop within %.1f s; left behind", self.output.name,
                        timeout)

    def _run(self) -> None:
        opened = False
        min_interval = 1.0 / self.output.max_fps if self.output.max_fps else 0.0
        last_sent = -float("inf")
        while not self._stop.is_set():
            if not opened:
                opened = self._open()
                if not opened:
                    if not self.output.retries or self.status == "unavailable":
                        return
                    self._stop.wait(REOPEN_AFTER)
                    continue
            frame = self.mailbox.take(0.1)
            if frame is None:
                continue
            now = self._clock()
            if now - last_sent < min_interval - 1e-3:
                self.skipped += 1
                continue
            try:
                image = frame.scaled.get(self.size)
                if image is None:
                    image = fit_array(frame.image, *self.size)
                self.output.send(frame, image)
            except Exception as exc:  # the output's own failure: the show goes on
                self._failed(exc)
                self._close()
                opened = False
                if not self.output.retries:
                    return
                continue
            last_sent = sent = self._clock()
            self.sent += 1
            self._latency.append(sent - frame.rendered_at)
            self._sent_at.append(sent)
        if opened:
            self._close()
        self.status = "stopped" if self.status == "running" else self.status

    def _open(self) -> bool:
        try:
            self.output.open()
        except OutputUnavailable as exc:
            self.status = "unavailable"
            self._failed(exc)
            return False
        except Exception as exc:
            self._failed(exc)
            self._close()
            return False
        if self.status != "starting":
            log.info("output %s is running again", self.output.name)
        self.status = "running"
        return True

    def _failed(self, exc: Exception) -> None:
        """Count it; say it when it is news (a retry failing the same way stays quiet)."""
        message = str(exc) or type(exc).__name__
        self.errors += 1
        if message != self.last_error:
            if isinstance(exc, OutputError):
                log.warning("output %s: %s", self.output.name, message)
            else:
                log.warning("output %s failed: %s", self.output.name, message, exc_info=exc)
        self.last_error = message
        if self.status != "unavailable":
            self.status = "failed" if self.output.retries else "stopped"

    def _close(self) -> None:
        try:
            self.output.close()
        except Exception as exc:
            self._failed(exc)

    def state(self) -> dict[str, Any]:
        sent_at, latency = list(self._sent_at), list(self._latency)
        fps = None
        if len(sent_at) > 1 and sent_at[-1] > sent_at[0]:
            fps = round((len(sent_at) - 1) / (sent_at[-1] - sent_at[0]), 2)
        return {"output": self.output.name, "kind": self.output.kind, "status": self.status,
                "size": [self.output.width, self.output.height], "fps": fps, "sent": self.sent,
                "dropped": self.mailbox.replaced, "skipped": self.skipped,
                "errors": self.errors, "last_error": self.last_error,
                "latency_ms_p50": percentile_ms(latency, 50),
                "latency_ms_p99": percentile_ms(latency, 99), **self.output.describe()}


def choice(choices: tuple[str, ...]) -> Callable[[str], str]:
    def pick(text: str) -> str:
        if text not in choices:
            raise ValueError(f"one of {', '.join(choices)}")
        return text
    return pick


def _positive(text: str) -> float:
    value = float(text)
    if not 0 < value < float("inf"):
        raise ValueError("should be a positive number")
    return value


def flag(text: str) -> bool:
    """An on/off option: true/false, on/off, yes/no, 1/0."""
    lowered = text.lower()
    if lowered in ("true", "on", "yes", "1"):
        return True
    if lowered in ("false", "off", "no", "0"):
        return False
    raise ValueError("should be on or off")
