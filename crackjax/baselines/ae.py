"""The convolutional autoencoder baseline (model kind 'ae'): the research plan's "identity mapping" risk.

    z = Enc(x) at 1/8 resolution with baseline.latent_channels channels (the bottleneck),  x_hat = Dec(z)
    loss = || x - x_hat ||^2 on train/good crops;  map = the residual |x - x_hat| with the teacher's options
    (channels, smoothing), pooled like the teacher's score

A wide bottleneck reconstructs cracks too (identity mapping); a narrow one blurs all texture.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from crackjax.baselines import recon

SHAPE_FIELDS = recon.SHAPE_FIELDS


class AE(nn.Module):
  channels: int
  latent_channels: int

  @nn.compact
  def __call__(self, x, train: bool = False):
    z = recon.Encoder(self.channels, self.latent_channels)(x)
    return {"recon": recon.Decoder(self.channels)(z)}


def _loss(config):
  def loss(out, batch):
    mse = jnp.mean((out["recon"] - batch["x"]) ** 2)
    return mse, {"mse": mse}

  return loss


def _map(config):
  def fn(params, net, x, keys):
    return recon.residual(config, x, net.apply({"params": params}, x)["recon"])

  return fn


def spec() -> recon.Spec:
  return recon.Spec("ae", lambda c: AE(c.baseline.channels, c.baseline.latent_channels), _loss, _map)


train, make_scorer, init_scorer = recon.module_api(spec)
