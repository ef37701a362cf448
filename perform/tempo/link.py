"""Ableton Link: share tempo and beat with Resolume, Live, TouchDesigner and other peers.

Link peers find each other by multicast on the local network and agree on one tempo and
one beat grid; whoever changes the tempo changes it for all. We read the session's beat
once per frame, so `ctx.beat` lines up with every other app in the session.
"""

from __future__ import annotations

from typing import Any

from perform.tempo import TempoReading


class LinkTempo:
    """A `Tempo` source that joins (or starts) the Link session on this network.

    Create it on the event loop (aalink ties its callbacks to the running loop).
    `quantum` is the beats per bar used to align phases with the other peers.
    """

    def __init__(self, bpm: float = 120.0, quantum: float = 4.0) -> None:
        try:
            import aalink
        except ImportError as exc:  # a platform without a wheel
            raise RuntimeError(f"Ableton Link needs the aalink package: {exc}") from None
        self._link: Any = aalink.Link(bpm)
        self._link.quantum = quantum
        self._link.enabled = True

    @property
    def peers(self) -> int:
        return int(self._link.num_peers)

    def reading(self, t: float) -> TempoReading:
        return TempoReading(float(self._link.beat), float(self._link.tempo))

    def close(self) -> None:
        self._link.enabled = False
