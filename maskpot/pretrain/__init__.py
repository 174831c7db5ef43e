"""Self-supervised pretraining on geometries only: masking hydrogens (the paper's method) and denoising."""
