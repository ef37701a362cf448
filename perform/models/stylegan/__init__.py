"""StyleGAN2 generators from the checkpoints artists train, loaded without running them."""
