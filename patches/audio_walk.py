"""The default model dancing to the music: the walk speeds up with the loudness, kicks push
it toward a "hit" latent, the harmony picks the palette, and hats flash the picture.

    perform run patches/audio_walk.py --audio-in             # the default sound card input
    perform run patches/audio_walk.py --audio-file song.wav  # rehearse with a file
    perform render patches/audio_walk.py --audio song.wav --out video.mp4
"""

from perform import audio, models, param, walks

model = models.load("cppn:seed=7")
palette = [walks.seed_latent(100 + note, model.z_dim) for note in range(12)]  # C to B
hit = walks.seed_latent(7, model.z_dim)

calm = param("audio/calm", 0.03, 0.0, 0.5, smooth=0.5, doc="loops a second in silence")
drive = param("audio/drive", 0.25, 0.0, 1.0, smooth=0.5, doc="more loops a second when loud")
harmony = param("audio/harmony", 0.5, 0.0, 1.0, smooth=0.5, doc="how much the chords colour it")
kick = param("audio/kick", 0.6, 0.0, 1.0, doc="how far a kick pushes toward the hit")
flash = param("audio/flash", 0.3, 0.0, 1.0, doc="how bright a hat flashes")


def frame(ctx):
    z = walks.noise_loop(audio.travel(ctx, calm, drive), dim=model.z_dim, seed=1)
    z = walks.slerp(z, audio.chroma_blend(ctx.audio.chroma, palette), harmony)
    z = audio.push(ctx, z, hit, "low", amount=kick)
    image = model(z) / 255.0  # bytes to 0..1, to brighten
    return image + (1 - image) * float(flash) * audio.pulse(ctx, "high", decay=0.15)
