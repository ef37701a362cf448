# Two models on one fader: /morph/mix 0 is seed 7, 1 is seed 21, weights blended between.
from perform import models, param, walks

mix = param("morph/mix", 0.0, 0.0, 1.0, smooth=0.3)
speed = param("walk/speed", 0.03, 0.0, 1.0, smooth=0.5)
pair = models.morph("cppn:seed=7", "cppn:seed=21")


def frame(ctx):
    z = walks.noise_loop(ctx.phase(speed), dim=pair.z_dim, radius=1.0, seed=3)
    return pair(z, mix=mix)
