"""Two of your StyleGAN2 models morphed weight by weight on one fader: say one trained on
photos of a landmark and one fine-tuned from it on scans of knitted patterns.

Put them beside this patch as stylegan-a.pkl and stylegan-b.pkl (or change the names).
Their weights blend when they share an architecture, as a model and its fine-tuned child
do; if they do not, the show says what differs and crossfades their pictures instead.
"""

from perform import models, param, walks

pair = models.morph("stylegan-a.pkl", "stylegan-b.pkl")
CURVES = ("uniform", "coarse-a", "coarse-b", "swap")

mix = param("morph/mix", 0.0, 0.0, 1.0, smooth=0.5, doc="0: model A, 1: model B")
curve = param("morph/curve", 0, 0, 3, doc="0 every layer alike, 1 A's layout with B's "
              "texture, 2 the reverse, 3 a hard swap at the middle")
speed = param("walk/speed", 0.05, 0.0, 0.5, smooth=0.5)
psi = param("truncation", 0.7, 0.0, 1.2, smooth=0.3)


def frame(ctx):
    z = walks.noise_loop(ctx.phase(speed), dim=pair.z_dim, radius=1.0)
    return pair(z, mix=mix, curve=CURVES[int(curve)], psi=psi)
