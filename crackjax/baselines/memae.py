"""The memory-augmented autoencoder baseline (model kind 'memae'; Gong et al., ICCV 2019).

The encoder's latent z (a C-vector per 8x8 patch) is replaced by a combination of M learned prototypes of normal
patches, so an anomalous patch is rebuilt from normal parts:

    w_i   = softmax_i( cos(z, m_i) )                                    (addressing over the memory m_1 .. m_M)
    w^_i  = max(w_i - lambda, 0) w_i / (|w_i - lambda| + eps),  w^ <- w^ / ||w^||_1      (hard shrinkage)
    z^    = sum_i w^_i m_i,   x_hat = Dec(z^)
    loss  = || x - x_hat ||^2 + alpha mean(-w^ log w^)                 (the paper's entropy loss, alpha = 0.0002)
    map   = the residual |x - x_hat| with the teacher's options
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from crackjax.baselines import recon

SHAPE_FIELDS = recon.SHAPE_FIELDS
EPS = 1e-12


def hard_shrink(w: jnp.ndarray, lam: float) -> jnp.ndarray:
  """max(w - lam, 0) w / (|w - lam| + eps), renormalised to sum 1 over the last axis (all-zero rows stay zero)."""
  s = jax.nn.relu(w - lam) * w / (jnp.abs(w - lam) + EPS)
  return s / jnp.maximum(s.sum(-1, keepdims=True), EPS)


def address(z: jnp.ndarray, memory: jnp.ndarray, lam: float) -> jnp.ndarray:
  """z [..., C], memory [M, C] -> shrunk addressing weights [..., M]."""
  zn = z / (jnp.linalg.norm(z, axis=-1, keepdims=True) + 1e-6)
  mn = memory / (jnp.linalg.norm(memory, axis=-1, keepdims=True) + 1e-6)
  return hard_shrink(jax.nn.softmax(zn @ mn.T, axis=-1), lam)


class MemAE(nn.Module):
  channels: int
  latent_channels: int
  memory_size: int
  shrink: float

  @nn.compact
  def __call__(self, x, train: bool = False):
    z = recon.Encoder(self.channels, self.latent_channels)(x)
    memory = self.param("memory", nn.initializers.normal(1.0), (self.memory_size, self.latent_channels))
    w = address(z, memory, self.shrink)
    return {"recon": recon.Decoder(self.channels)(w @ memory), "w": w}


def _loss(config):
  alpha = config.baseline.entropy_weight

  def loss(out, batch):
    mse = jnp.mean((out["recon"] - batch["x"]) ** 2)
    entropy = jnp.mean(jnp.sum(-out["w"] * jnp.log(out["w"] + EPS), axis=-1))
    return mse + alpha * entropy, {"mse": mse, "entropy": entropy}

  return loss


def _map(config):
  def fn(params, net, x, keys):
    return recon.residual(config, x, net.apply({"params": params}, x)["recon"])

  return fn


def _net(c):
  b = c.baseline
  # The paper's threshold lambda is in [1/M, 3/M]; 1/M keeps the weights above uniform.
  return MemAE(b.channels, b.latent_channels, b.memory_size, b.shrink_threshold or 1.0 / b.memory_size)


def spec() -> recon.Spec:
  return recon.Spec("memae", _net, _loss, _map)


train, make_scorer, init_scorer = recon.module_api(spec)
