"""perform: live-coded, OSC-steered generative imagery for the stage.

A patch imports everything it needs from here:

    from perform import param, models, walks
"""

from perform import models, walks
from perform.patch import Ctx, Param, param

__all__ = ["Ctx", "Param", "models", "param", "walks"]
__version__ = "0.1.0"
