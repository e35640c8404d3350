"""DRAEM (model kind 'draem'; Zavrtanik et al., ICCV 2021): a reconstructive and a discriminative network trained
together on synthetic anomalies, with no real anomaly ever seen.

    x_a  = I (1 - M) + (1 - b) A M + b I M   for half the crops (M: a Perlin mask, A: the crop's own texture
           shuffled in 8x8 blocks as TransFusion does, b in [0, 0.8)): crackjax/synth.py
    reconstructive  x_hat = Dec(Enc(x_a)), trained to give the clean crop: || x_hat - I ||^2 (the paper adds SSIM)
    discriminative  a small U-net on (x_a, x_hat) -> logit of M (three levels of two 3x3 convs, GELU, no
                    normalisation, dilated context at the bottom, skips), focal loss (Lin et al., 2017; gamma
                    baseline.focal_gamma)
    map  = sigmoid(logit), smoothed; the paper scores the max of its 21x21-averaged map (anomaly.pooling 'max'
           after smoothing is the same idea)
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from crackjax import anomaly, synth
from crackjax.baselines import recon
from crackjax.unet import upsample_nearest

SHAPE_FIELDS = recon.SHAPE_FIELDS
LEVELS = 3  # the discriminative U-net's resolution levels


def _conv(c: int, stride: int = 1, dilation: int = 1):
  return nn.Conv(c, (3, 3), strides=(stride, stride), kernel_dilation=(dilation, dilation), padding="SAME")


class Discriminator(nn.Module):
  channels: int

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    """x: [B, H, W, C], H and W divisible by 2^(LEVELS - 1) -> logits [B, H, W]."""
    act, feats, h = nn.gelu, [], x
    for level in range(LEVELS):
      width = self.channels * 2**level
      if level:
        h = act(_conv(width, stride=2)(h))
      h = act(_conv(width)(act(_conv(width)(h))))
      feats.append(h)
    for d in (2, 4):
      h = h + act(_conv(h.shape[-1], dilation=d)(h))
    for level in range(LEVELS - 2, -1, -1):
      width = self.channels * 2**level
      h = act(_conv(width)(jnp.concatenate([upsample_nearest(h), feats[level]], axis=-1)))
      h = act(_conv(width)(h))
    return nn.Conv(1, (1, 1))(h)[..., 0]


def focal_loss(logits: jnp.ndarray, target: jnp.ndarray, gamma: float) -> jnp.ndarray:
  """Mean of -(1 - p_t)^gamma log p_t over pixels (gamma = 0: binary cross-entropy)."""
  ce = optax.sigmoid_binary_cross_entropy(logits, target)
  if gamma == 0:
    return ce.mean()
  p = jax.nn.sigmoid(logits)
  p_t = p * target + (1 - p) * (1 - target)
  return ((1 - p_t) ** gamma * ce).mean()


class DRAEM(nn.Module):
  channels: int
  latent_channels: int
  disc_channels: int

  @nn.compact
  def __call__(self, x, train: bool = False):
    x_hat = recon.Decoder(self.channels)(recon.Encoder(self.channels, self.latent_channels)(x))
    logits = Discriminator(self.disc_channels)(jnp.concatenate([x, x_hat], axis=-1))
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
    focal = focal_loss(out["logits"], batch["mask"], gamma)
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
