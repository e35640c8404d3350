"""DRAEM (model kind 'draem'; Zavrtanik et al., ICCV 2021): a reconstructive and a discriminative network trained
together on synthetic anomalies, with no real anomaly ever seen.

    x_a  = I (1 - M) + (1 - b) A M + b I M   for half the crops (M: a Perlin mask, A: the crop's own texture
           shuffled in 8x8 blocks as TransFusion does, b in [0, 0.8)): crackjax/synth.py, shared with the head
    reconstructive  x_hat = Dec(Enc(x_a)), trained to give the clean crop: || x_hat - I ||^2 (the paper adds SSIM)
    discriminative  crackjax/head.py's HeadNet on (x_a, x_hat) -> logit of M, focal loss (gamma baseline.focal_gamma)
    map  = sigmoid(logit), smoothed; the paper scores the max of its 21x21-averaged map (anomaly.pooling 'max'
           after smoothing is the same idea)
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from crackjax import anomaly, head, synth
from crackjax.baselines import recon

SHAPE_FIELDS = recon.SHAPE_FIELDS


class DRAEM(nn.Module):
  channels: int
  latent_channels: int
  disc_channels: int

  @nn.compact
  def __call__(self, x, train: bool = False):
    x_hat = recon.Decoder(self.channels)(recon.Encoder(self.channels, self.latent_channels)(x))
    cfg = head.HeadConfig(inputs=("image", "healed"), channels=self.disc_channels, levels=3)
    logits = head.HeadNet(cfg)(head.stack_inputs(cfg, x, x_hat, None))
    return {"recon": x_hat, "logits": logits}


def _make_batch(config):
  p = config.baseline.draem_p_anomaly

  def make(crops, rng):
    clean = crops
    x = clean.copy()
    mask = np.zeros(crops.shape[:3], np.float32)
    for i in range(len(crops)):
      if rng.random() < p:
        img = (clean[i] + 1.0) / 2.0
        out, m = synth.texture_anomaly(rng, img)
        x[i], mask[i] = out * 2.0 - 1.0, m
    return {"x": x, "clean": clean, "mask": mask}

  return make


def _loss(config):
  gamma = config.baseline.focal_gamma

  def loss(out, batch):
    mse = jnp.mean((out["recon"] - batch["clean"]) ** 2)
    focal = head.focal_loss(out["logits"], batch["mask"], gamma)
    return mse + focal, {"mse": mse, "focal": focal}

  return loss


def _map(config):
  def fn(params, net, x, keys):
    return anomaly.gaussian_smooth(jax.nn.sigmoid(net.apply({"params": params}, x)["logits"]), config.anomaly.smoothing_sigma)

  return fn


def spec() -> recon.Spec:
  net = lambda c: DRAEM(c.baseline.channels, c.baseline.latent_channels, c.baseline.disc_channels)  # noqa: E731
  return recon.Spec("draem", net, _loss, _map, make_batch=_make_batch)


train, make_scorer, init_scorer = recon.module_api(spec)
