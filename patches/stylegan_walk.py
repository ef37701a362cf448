"""A walk through your own StyleGAN2: a seamless loop, truncation, animated noise, and the
model's three strongest layout directions on one vector param (an XY-Z of faders).

Put a checkpoint you trained beside this patch as stylegan.pkl: an NVlabs
network-snapshot .pkl, a rosinality .pt, or a .safetensors from `perform convert` (quickest
to load). Or change the name below. Without one, the show says so and plays on.
"""

from perform import models, param, walks

model = models.load("stylegan.pkl")
layout = model.directions("coarse", k=3)

speed = param("walk/speed", 0.05, 0.0, 0.5, smooth=0.5, doc="loops a second")
size = param("walk/size", 1.0, 0.0, 3.0, smooth=0.5, doc="how far the loop wanders")
psi = param("truncation", 0.7, 0.0, 1.2, smooth=0.3, doc="0: the average image")
grain = param("noise", 1.0, 0.0, 3.0, smooth=0.3, doc="strength of the fine detail")
steer = param("steer", (0.0, 0.0, 0.0), -6.0, 6.0, smooth=0.3,
              doc="along the three strongest coarse directions")


def frame(ctx):
    z = walks.noise_loop(ctx.phase(speed), dim=model.z_dim, radius=size)
    ws = layout.apply(model.ws(z), steer.value)
    return model(w=ws, psi=psi, noise="animated", noise_phase=ctx.phase(0.1, "grain"),
                 noise_strength=grain)
