"""The epsilon-UNet (Ho et al., 2020, appendix B), small and fully convolutional.

    eps_hat = UNet(x_t, t)

Sinusoidal embedding of t -> MLP -> added inside every residual block (GroupNorm, SiLU, 3x3 conv, twice).
Any H, W divisible by 2^(levels - 1) work,
so a model trained on crops is applied to whole images. Up-sampling is nearest-neighbour doubling by
broadcast-and-reshape: `jax.image.resize` there makes the backward pass several times slower on CPU.
"""

from __future__ import annotations

import dataclasses
import math

import flax.linen as nn
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class UNetConfig:
  channels: int = 32  # channels at full resolution
  channel_mult: tuple[int, ...] = (1, 2, 3)  # one entry per resolution level
  num_res_blocks: int = 1  # residual blocks per level on the way down
  num_groups: int = 8  # GroupNorm groups
  out_channels: int = 3

  @property
  def downsample_factor(self) -> int:
    return 2 ** (len(self.channel_mult) - 1)


def timestep_embedding(t: jnp.ndarray, dim: int, max_period: float = 10000.0) -> jnp.ndarray:
  """t: [B] -> [B, dim] sinusoidal features (Vaswani et al., 2017)."""
  half = dim // 2
  freqs = jnp.exp(-math.log(max_period) * jnp.arange(half, dtype=jnp.float32) / half)
  args = t.astype(jnp.float32)[:, None] * freqs[None, :]
  return jnp.concatenate([jnp.sin(args), jnp.cos(args)], axis=-1)


def downsample_mean(x: jnp.ndarray, factor: int = 2) -> jnp.ndarray:
  """Averages of factor x factor blocks of [B, H, W] or [B, H, W, C] (H, W divisible by factor); the inverse
  direction of upsample_nearest."""
  if factor == 1:
    return x
  b, h, w = x.shape[:3]
  rest = x.shape[3:]
  return x.reshape(b, h // factor, factor, w // factor, factor, *rest).mean(axis=(2, 4))


def upsample_nearest(x: jnp.ndarray, factor: int = 2) -> jnp.ndarray:
  """Nearest-neighbour upsampling of [B, H, W] or [B, H, W, C] by an integer factor (broadcast and reshape: the
  backward pass of jax.image.resize is several times slower on CPU). Every network here upsamples with this."""
  if factor == 1:
    return x
  b, h, w = x.shape[:3]
  rest = x.shape[3:]
  x = jnp.broadcast_to(x[:, :, None, :, None], (b, h, factor, w, factor, *rest))
  return x.reshape(b, h * factor, w * factor, *rest)


class ResBlock(nn.Module):
  out_ch: int
  num_groups: int

  @nn.compact
  def __call__(self, x, emb):
    h = nn.silu(nn.GroupNorm(num_groups=min(self.num_groups, x.shape[-1]))(x))
    h = nn.Conv(self.out_ch, (3, 3))(h)
    h = h + nn.Dense(self.out_ch)(nn.silu(emb))[:, None, None, :]
    h = nn.silu(nn.GroupNorm(num_groups=min(self.num_groups, self.out_ch))(h))
    h = nn.Conv(self.out_ch, (3, 3), kernel_init=nn.initializers.zeros)(h)
    if x.shape[-1] != self.out_ch:
      x = nn.Conv(self.out_ch, (1, 1))(x)
    return x + h


class UNet(nn.Module):
  """x_t: [B, H, W, C] in about [-1, 1] scaled by noise; t: [B] int. Returns eps_hat: [B, H, W, out_channels]."""

  config: UNetConfig

  @nn.compact
  def __call__(self, x, t):
    cfg = self.config
    f = cfg.downsample_factor
    if x.shape[1] % f or x.shape[2] % f:
      raise ValueError(f"UNet input H, W must be divisible by {f}, got {x.shape[1:3]} (pad the image first)")
    emb_dim = 4 * cfg.channels
    emb = timestep_embedding(t, cfg.channels)
    emb = nn.Dense(emb_dim)(nn.silu(nn.Dense(emb_dim)(emb)))

    block = lambda ch: ResBlock(ch, cfg.num_groups)  # noqa: E731
    h = nn.Conv(cfg.channels, (3, 3))(x)
    skips = [h]
    for level, mult in enumerate(cfg.channel_mult):
      for _ in range(cfg.num_res_blocks):
        h = block(cfg.channels * mult)(h, emb)
        skips.append(h)
      if level != len(cfg.channel_mult) - 1:
        h = nn.Conv(h.shape[-1], (3, 3), strides=(2, 2))(h)
        skips.append(h)

    h = block(h.shape[-1])(h, emb)
    h = block(h.shape[-1])(h, emb)

    for level, mult in reversed(list(enumerate(cfg.channel_mult))):
      for _ in range(cfg.num_res_blocks + 1):
        h = block(cfg.channels * mult)(jnp.concatenate([h, skips.pop()], axis=-1), emb)
      if level != 0:
        h = nn.Conv(h.shape[-1], (3, 3))(upsample_nearest(h))
    assert not skips
    h = nn.silu(nn.GroupNorm(num_groups=min(cfg.num_groups, h.shape[-1]))(h))
    return nn.Conv(cfg.out_channels, (3, 3), kernel_init=nn.initializers.zeros)(h)
