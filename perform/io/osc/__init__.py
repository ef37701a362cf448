"""OSC: the wire format, one router for every transport, UDP/TCP servers and feedback out."""

from perform.io.osc.feedback import FeedbackError, OscFeedback
from perform.io.osc.router import Command, CommandError, OscRouter, OscStats, Peer
from perform.io.osc.transport import OscServer

__all__ = ["Command", "CommandError", "FeedbackError", "OscFeedback", "OscRouter", "OscServer",
           "OscStats", "Peer"]
