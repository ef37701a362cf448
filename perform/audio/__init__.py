"""Audio in: sources (files, live input) feed blocks to the analyser, whose features
patches read as ctx.audio; `moves` are the audio-reactive idioms patches use."""

from perform.audio.moves import chroma_blend, pulse, push, travel

__all__ = ["chroma_blend", "pulse", "push", "travel"]
