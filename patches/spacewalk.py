# The default show: a perfect loop through the default model's latent space.
# Try: oscsend localhost 9000 /walk/speed f 0.3   (or move the slider in the browser)
from perform import models, param, walks

speed = param("walk/speed", 0.05, 0.0, 1.0, smooth=0.5, doc="loops per second")
size = param("walk/size", 1.2, 0.0, 4.0, smooth=0.5, doc="how far the loop travels")
model = models.load("cppn:seed=7")


def frame(ctx):
    z = walks.noise_loop(ctx.phase(speed), dim=model.z_dim, radius=size, seed=1)
    return model(z)
