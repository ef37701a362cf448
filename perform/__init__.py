"""perform: live-coded, OSC-steered generative imagery for the stage.

A patch imports everything it needs from here:

    from perform import audio, param, models, walks
"""

from perform import audio, models, walks
from perform.patch import Ctx, Param, param

__all__ = ["Ctx", "Param", "audio", "models", "param", "walks"]
__version__ = "0.1.0"
