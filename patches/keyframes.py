# A tour through chosen latent seeds: one keyframe every `bars` bars, eased in and out.
from perform import models, param, walks

bars = param("tour/bars", 1, 1, 16)     # bars of 4 beats per keyframe; ctx.beat follows --bpm
model = models.load("cppn:seed=11")
seeds = [3, 17, 42, 99, 5]              # edit, save: the tour changes on the next frame


def frame(ctx):
    z = walks.keyframes(ctx.beat / (4 * bars), seeds, dim=model.z_dim, ease="smoother")
    return model(z)
