"""The variational autoencoder baseline (model kind 'vae'), fully convolutional (a latent per 8x8 patch).

q(z | x) = N(mu(x), diag sigma(x)^2),  p(z) = N(0, I),  p(x | z) = N(Dec(z), s^2 I)  (s = baseline.vae_sigma)
loss = -ELBO = E_q || x - Dec(z) ||^2 / (2 s^2) + beta KL(q(z | x) || p(z))   (per pixel and latent, averaged)
KL(N(mu, sigma^2) || N(0, 1)) = 0.5 (mu^2 + sigma^2 - 1 - log sigma^2)         (`kl_normal`)
map = the negative reconstruction probability (An and Cho, 2015): -log p(x | z) per pixel, averaged over
      baseline.mc_samples draws z ~ q(z | x), smoothed: (x - Dec(z))^2 / (2 s^2) up to a constant
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from crackjax import anomaly, samplers
from crackjax.baselines import recon

SHAPE_FIELDS = recon.SHAPE_FIELDS


def kl_normal(mu: jnp.ndarray, logvar: jnp.ndarray) -> jnp.ndarray:
  """KL(N(mu, exp(logvar)) || N(0, 1)), elementwise."""
  return 0.5 * (mu**2 + jnp.exp(logvar) - 1.0 - logvar)


class VAE(nn.Module):
  channels: int
  latent_channels: int

  def setup(self):
    self.encoder = recon.Encoder(self.channels, 2 * self.latent_channels)
    self.decoder = recon.Decoder(self.channels)

  def encode(self, x):
    mu, logvar = jnp.split(self.encoder(x), 2, axis=-1)
    return mu, jnp.clip(logvar, -10.0, 10.0)

  def decode(self, z):
    return self.decoder(z)

  def __call__(self, x, train: bool = False):
    mu, logvar = self.encode(x)
    z = mu + jnp.exp(0.5 * logvar) * jax.random.normal(self.make_rng("z"), mu.shape) if train else mu
    return {"recon": self.decode(z), "mu": mu, "logvar": logvar}


def _loss(config):
  s2, beta = config.baseline.vae_sigma**2, config.baseline.beta

  def loss(out, batch):
    rec = jnp.mean((out["recon"] - batch["x"]) ** 2) / (2 * s2)
    kl = jnp.mean(kl_normal(out["mu"], out["logvar"]))
    return rec + beta * kl, {"recon_nll": rec, "kl": kl}

  return loss


def _map(config):
  b = config.baseline

  def fn(params, net, x, keys):
    mu, logvar = net.apply({"params": params}, x, method=VAE.encode)
    total = jnp.zeros(x.shape[:3], x.dtype)
    for i in range(b.mc_samples):  # Monte Carlo over z ~ q(z | x), each image with its own noise
      z = mu + jnp.exp(0.5 * logvar) * samplers.normal(keys, i, mu.shape, mu.dtype)
      r = net.apply({"params": params}, z, method=VAE.decode)
      total = total + ((r - x) ** 2).mean(-1) / (2 * b.vae_sigma**2)
    return anomaly.gaussian_smooth(total / b.mc_samples, config.anomaly.smoothing_sigma)

  return fn


def spec() -> recon.Spec:
  return recon.Spec("vae", lambda c: VAE(c.baseline.channels, c.baseline.latent_channels), _loss, _map)


train, make_scorer, init_scorer = recon.module_api(spec)
