"""Feedback out: the show mirrored to OSC targets such as TouchDesigner, Max or TouchOSC.

`publish` runs on the event loop once per rendered frame and sends what changed since the
previous frame: each param whose target moved (from OSC, HTTP, a preset or the patch
itself), coalesced so a 1 kHz sweep costs one message per frame, plus the beat. Frame
stats go once a second, patch errors at once.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable
from typing import Any

from perform.audio.features import AudioFeatures
from perform.core.frames import Frame
from perform.core.params import ParamStore
from perform.io.osc.wire import build, value_message

MAX_TARGETS = 16  # anyone on the network can add one: keep the fan-out bounded
STATS_EVERY = 1.0  # seconds


class FeedbackError(ValueError):
    pass


class OscFeedback:
    """Sends OSC over UDP to each target; a gone target never raises into the show."""

    def __init__(self, store: ParamStore, frame_stats: Callable[[], dict[str, Any]]) -> None:
        self.store, self._frame_stats = store, frame_stats
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.setblocking(False)
        self._targets: list[tuple[str, int]] = []
        self._version = 0
        self._beat: int | None = None
        self._onsets = 0  # the audio's onset count at the last frame sent
        self._stats_at = 0.0
        self.sent = 0
        self.errors = 0
        self.last_error: str | None = None

    @property
    def targets(self) -> list[tuple[str, int]]:
        return list(self._targets)

    def add_target(self, host: str, port: int) -> None:
        """Add host:port and bring it up to date with every param's value.

        Raises FeedbackError for a host that does not resolve, a bad port or too many targets.
        """
        if not 0 < port < 65536:
            raise FeedbackError(f"bad feedback port {port}")
        try:
            target = socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_DGRAM)[0][4]
        except (OSError, UnicodeError) as exc:
            raise FeedbackError(f"cannot resolve feedback target {host}:{port}: {exc}") from None
        if target in self._targets:
            return
        if len(self._targets) >= MAX_TARGETS:
            raise FeedbackError(f"already {MAX_TARGETS} feedback targets; remove one first")
        self._targets.append(target)
        for name, value in self.store.targets().items():
            self._send_to([target], value_message("/" + name, value))

    def remove_target(self, host: str, port: int) -> bool:
        before = len(self._targets)
        self._targets = [t for t in self._targets if t != (host, port)]
        return len(self._targets) < before

    def publish(self, frame: Frame) -> None:
        """Send what changed since the last frame; call once per rendered frame."""
        changes, self._version = self.store.changes_since(self._version)
        if not self._targets:
            return
        for name, value in changes.items():
            self._send_to(self._targets, value_message("/" + name, value))
        if int(frame.beat) != self._beat:
            self._beat = int(frame.beat)
            self.send("/perform/beat", self._beat)
        self.send("/perform/phase", frame.beat % 1.0)
        if frame.audio is not None:
            self._send_audio(frame.audio)
        now = time.monotonic()
        if now - self._stats_at >= STATS_EVERY:
            self._stats_at = now
            stats = self._frame_stats()
            self.send("/perform/fps", float(stats["fps"] or 0.0))
            self.send("/perform/stats", int(stats["frames"]), int(stats["dropped"]),
                      float(stats["frame_ms_p99"] or 0.0))

    def _send_audio(self, audio: AudioFeatures) -> None:
        """The music's features, each frame: /perform/audio/level, /perform/audio/low (one
        address per band), onset, bpm, phase, chroma (12 floats), percussive, harmonic, and
        /perform/audio/hit with the onset count on the frame after an onset."""
        for name in ("level", "onset", "bpm", "phase", "percussive", "harmonic"):
            self.send(f"/perform/audio/{name}", float(getattr(audio, name)))
        for band, value in audio.bands.items():
            self.send(f"/perform/audio/{band}", float(value))
        self.send("/perform/audio/chroma", *(float(v) for v in audio.chroma))
        if audio.onsets > self._onsets:
            self.send("/perform/audio/hit", audio.onsets)
        self._onsets = audio.onsets

    def send(self, address: str, *args: Any) -> int:
        """Send one message to every target; returns how many sends succeeded."""
        return self._send_to(self._targets, build(address, args))

    def send_error(self, file: str, line: int, message: str) -> int:
        """Report a broken patch: /perform/error file line message."""
        return self.send("/perform/error", str(file), line, str(message)[:1000])

    def _send_to(self, targets: list[tuple[str, int]], data: bytes) -> int:
        done = 0
        for target in targets:
            try:
                self._sock.sendto(data, target)
                done += 1
            except OSError as exc:  # unreachable, buffer full...: this message is lost
                self.errors += 1
                self.last_error = f"OSC feedback to {target[0]}:{target[1]} failed: {exc}"
        self.sent += done
        return done

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.close()

