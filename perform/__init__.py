"""perform: live-coded, OSC-steered generative imagery for the stage.

A patch imports everything it needs from here:

    from perform import audio, models, param, seed, trigger, walks
"""

from perform import audio, models, walks
from perform.patch import Ctx, Param, Trigger, param, seed, trigger

__all__ = ["Ctx", "Param", "Trigger", "audio", "models", "param", "seed", "trigger", "walks"]
__version__ = "0.1.0"
