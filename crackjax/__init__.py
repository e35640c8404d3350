"""crackjax: unsupervised crack detection in concrete with denoising diffusion (JAX/Flax)."""

__version__ = "0.1.0"
