"""Your own StyleGAN dancing to the music: kicks punch the coarse layers toward a "hit"
pose, hats shimmer the fine layers and the noise, the harmony picks the colours, and the
truncation breathes with the loudness.

Put a checkpoint beside this patch as stylegan.pkl (see stylegan_walk.py), then:

    perform run patches/audio_stylegan.py --audio-in
    perform render patches/audio_stylegan.py --audio song.wav --out video.mp4
"""

from perform import audio, models, param, walks

model = models.load("stylegan.pkl")
hit = model.ws(walks.seed_latent(7, model.z_dim))
palette = [model.ws(walks.seed_latent(100 + note, model.z_dim)) for note in range(12)]
coarse, fine = range(0, 4), range(8, model.num_ws)

calm = param("audio/calm", 0.02, 0.0, 0.3, smooth=0.5, doc="loops a second in silence")
drive = param("audio/drive", 0.15, 0.0, 1.0, smooth=0.5, doc="more loops a second when loud")
kick = param("audio/kick", 0.7, 0.0, 1.0, doc="how far a kick pushes the coarse layers")
shimmer = param("audio/shimmer", 0.5, 0.0, 1.0, doc="how far a hat pushes the fine layers")
colour = param("audio/colour", 0.4, 0.0, 1.0, smooth=0.5, doc="how much the chords colour it")


def frame(ctx):
    z = walks.noise_loop(audio.travel(ctx, calm, drive), dim=model.z_dim)
    ws = model.ws(z)
    chord = audio.chroma_blend(ctx.audio.chroma, palette, average=True)
    ws = ws + (chord - ws) * float(colour)
    ws = audio.push(ctx, ws, hit, "low", amount=kick, layers=coarse)
    ws = audio.push(ctx, ws, palette[0], "high", amount=shimmer, decay=0.15, layers=fine)
    return model(w=ws, psi=0.5 + 0.4 * ctx.audio.level, noise="animated",
                 noise_phase=ctx.phase(0.1, "grain"),
                 noise_strength=1.0 + 2.0 * audio.pulse(ctx, "high", decay=0.15))
