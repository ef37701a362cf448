# Pick pictures with a seed knob, punch them with a flash. The control page shows a knob
# and a button; over OSC: oscsend localhost 9000 /look/seed f 42, then /look/flash
from perform import models, param, seed, trigger, walks

look = seed("look/seed", 7, max=999, smooth=0.3, doc="whole seeds are pictures, fractions morph")
drift = param("look/drift", 0.15, 0.0, 1.0, smooth=0.5, doc="how far it breathes around its seed")
flash = trigger("look/flash", doc="a white flash that fades in a quarter second")
model = models.load("cppn:seed=11")


def frame(ctx):
    here = walks.seed(look, model.z_dim)
    z = here + drift * walks.noise_loop(ctx.phase(0.1), dim=model.z_dim, seed=2)
    image = model(z) / 255  # the embedded model draws bytes; 0..1 from here
    return image + (1 - image) * flash.fade(0.25)
