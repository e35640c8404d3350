"""Healing and anomaly maps (the AnoDDPM / DiffAD idea: noise part of the way, denoise back, compare).

x_t   = sqrt(ab) x0 + sqrt(1 - ab) eps,   t = t_start            (q(x_t | x_0), schedule.py)
x_hat = reverse process from t_start to 0 (samplers.py)
r     = |x0 - x_hat| per pixel, averaged over colour channels and noise draws; with
        average = 'healing' the residual of the mean healing, r = residual(x0, mean_k x_hat_k): what healing
        removes from every draw (a crack) stays, what differs from draw to draw (the noise the one-step
        estimate lets through, strongest on rough texture) averages away as 1 / sqrt(K). antithetic: the
        draws come in pairs with noise eps and -eps, which cancels the part of the healing linear in eps.
map   = Gaussian smoothing of r (sigma in pixels), or the oriented line filter (line_sigma > 0): the largest
        response of 8 elongated Gaussians (sigma_along = line_sigma, sigma_across = sigma) over orientations
        k * 22.5 degrees. A crack is a long thin line: the filter keeps its full height across and averages
        along it, while a pit, a pebble or rough texture (blobs) is averaged down ~sqrt(2 pi) line_sigma times.
  pyramid = L > 1: the same healing and map also at 1/2, ..., 1/2^(L-1) of the resolution (2x2 average pooling,
        the same filter in that level's own pixels), each upsampled back (nearest); the map is their pixelwise
        max. A crack wider than healing from t_start can paint over at full resolution is a thin one a level
        down (wide dark cracks on rough asphalt were kept by the healing: docs/research_log.md).
  darkness = w > 0: the pixelwise max of that map and w times the relative darkness of the input,
        (median(L) - L) / median(L) of its smoothed luminance L (the no-learning floor's map): a crack as wide
        as the healing can repaint, which the residual lights only at its edges, is still darker than the
        surface around it (DeepCrack, brick walls).
score = max(map), the mean of its top-k fraction, that mean minus the map's median (a per-image baseline
    that discounts rough but normal textures), or that difference divided by the map's median absolute
    deviation ('topk_mad', a robust z-score: a faint crack on smooth plaster stands out of a quiet map as
    far as a dark crack stands out of a busy one)
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from scipy import ndimage

from crackjax import samplers
from crackjax.schedule import Schedule
from crackjax.unet import downsample_mean, upsample_nearest

CHANNELS = ("mean", "luma")
POOLINGS = ("max", "topk", "topk_minus_median", "topk_mad")
AVERAGES = ("residual", "healing")
MAD_FLOOR = 1e-3  # anomaly.mad_floor's default: added to the MAD in 'topk_mad' (map units: [-1, 1] differences)
LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601 weights


@dataclasses.dataclass(frozen=True)
class HealConfig:
  sampler: str  # 'ddpm' | 'ddim'
  steps: int  # reverse steps taken from t_start to 0
  eta: float  # DDIM stochasticity
  t_start: int  # how far to noise the input
  num_draws: int  # noise draws averaged per image
  channels: str  # 'mean': residual per colour channel, averaged; 'luma': residual of the luminance only
  smoothing_sigma: float  # Gaussian smoothing of the map, pixels (0: none); the line filter's width
  line_sigma: float  # > 0: the oriented line filter's length (sigma along the line, pixels) instead of a Gaussian
  pooling: str  # see POOLINGS
  topk_fraction: float  # fraction of pixels averaged by 'topk'
  pyramid: int = 1  # resolution levels healed (1: the input's only); the map is their max
  darkness: float = 0.0  # > 0: the map is also at least this times the input's relative darkness
  darkness_sigma: float = 1.0  # smoothing of the luminance for the relative darkness, pixels
  average: str = "residual"  # what the draws average: 'residual' (mean of |r_k|) | 'healing' (r of the mean x_hat)
  antithetic: bool = False  # draws in pairs with noise eps and -eps (num_draws even)
  # x0 [B, H, W, C] -> x_hat in place of the diffusion model's healing, the rest of the map as it is: what the
  # healing adds (benchmarks/what_healing_adds.py); None: the diffusion model heals
  healer: Callable | None = None

  @property
  def multiple(self) -> int:
    """What the pyramid needs the input sides divisible by (times the UNet's own down-sampling)."""
    return 2 ** (self.pyramid - 1)


def gaussian_kernel1d(sigma: float) -> np.ndarray:
  radius = max(1, int(round(3.0 * sigma)))
  x = np.arange(-radius, radius + 1, dtype=np.float64)
  k = np.exp(-0.5 * (x / sigma) ** 2)
  return (k / k.sum()).astype(np.float32)


def gaussian_smooth(m: jnp.ndarray, sigma: float) -> jnp.ndarray:
  """m: [B, H, W] -> [B, H, W], separable Gaussian with reflected borders (NumPy's 'reflect', repeated on axes
  shorter than the kernel; sigma static, pixels)."""
  if sigma <= 0:
    return m
  k = jnp.asarray(gaussian_kernel1d(sigma))
  r = (k.shape[0] - 1) // 2
  x = _reflect_pad(m[..., None], r, 1)
  x = jax.lax.conv_general_dilated(x, k.reshape(-1, 1, 1, 1), (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))
  x = _reflect_pad(x, r, 2)
  x = jax.lax.conv_general_dilated(x, k.reshape(1, -1, 1, 1), (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))
  return x[..., 0]


LINE_ORIENTATIONS = 8  # 22.5-degree steps: a multiple of 4, so the filter commutes with 90-degree rotations


def line_kernels(sigma_along: float, sigma_across: float) -> np.ndarray:
  """[K, K, 1, LINE_ORIENTATIONS] elongated Gaussians, each summing to 1, K = 2 round(3 sigma_along) + 1."""
  r = max(1, int(round(3.0 * sigma_along)))
  y, x = np.mgrid[-r : r + 1, -r : r + 1].astype(np.float64)
  out = []
  for k in range(LINE_ORIENTATIONS):
    th = np.pi * k / LINE_ORIENTATIONS
    u = x * np.cos(th) + y * np.sin(th)  # along the line
    v = -x * np.sin(th) + y * np.cos(th)  # across it
    g = np.exp(-0.5 * (u / sigma_along) ** 2 - 0.5 * (v / sigma_across) ** 2)
    out.append(g / g.sum())
  return np.stack(out, -1)[:, :, None, :].astype(np.float32)


@functools.lru_cache(maxsize=64)
def gaussian_operator(n: int, sigma: float) -> np.ndarray:
  """[n, n] float32: gaussian_smooth along an axis of length n (its kernel, NumPy's 'reflect' borders repeated where
  n is shorter than the kernel) as one matrix, host side, built once per (n, sigma) (read-only: shared). For wide
  kernels: a matrix product runs at BLAS speed where a 385-tap convolution of a large photo takes seconds."""
  k = gaussian_kernel1d(sigma).astype(np.float64)
  r = (k.shape[0] - 1) // 2
  j = np.arange(n)[:, None] + np.arange(-r, r + 1)[None, :]
  if n == 1:
    j = np.zeros_like(j)
  else:
    period = 2 * (n - 1)
    j = np.mod(j, period)
    j = np.where(j >= n, period - j, j)
  out = np.zeros((n, n))
  np.add.at(out, (np.repeat(np.arange(n), k.shape[0]), j.ravel()), np.tile(k, n))
  out = out.astype(np.float32)
  out.flags.writeable = False
  return out


def _reflect_pad(x: jnp.ndarray, r: int, axis: int) -> jnp.ndarray:
  """NumPy's 'reflect' padding by r on `axis`, repeated where the axis is shorter than r, as a gather: unlike
  jnp.pad it needs no size check, so it also runs under jax.export's symbolic sizes (maps of any size >= 2)."""
  n = x.shape[axis]
  if isinstance(n, int) and n == 1:  # nothing to reflect
    return jnp.repeat(x, 2 * r + 1, axis=axis)
  period = 2 * (n - 1)
  j = jnp.mod(jnp.arange(-r, n + r), period)
  return jnp.take(x, jnp.where(j >= n, period - j, j), axis=axis)


def line_filter(m: jnp.ndarray, sigma_along: float, sigma_across: float) -> jnp.ndarray:
  """m: [B, H, W] -> [B, H, W], the largest response of the oriented line kernels, reflected borders."""
  k = jnp.asarray(line_kernels(sigma_along, sigma_across))
  r = (k.shape[0] - 1) // 2
  x = _reflect_pad(_reflect_pad(m[..., None], r, 1), r, 2)
  x = jax.lax.conv_general_dilated(x, k, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))
  return x.max(axis=-1)


def smooth(m: jnp.ndarray, sigma: float, line_sigma: float = 0.0) -> jnp.ndarray:
  """The map's smoothing: Gaussian (line_sigma = 0) or the oriented line filter of width sigma."""
  if line_sigma > 0:
    return line_filter(m, line_sigma, sigma)
  return gaussian_smooth(m, sigma)


def luminance(x: jnp.ndarray) -> jnp.ndarray:
  """[B, H, W, 3] in [-1, 1] -> [B, H, W] luminance in [0, 1]."""
  return ((x + 1.0) / 2.0 * jnp.asarray(LUMA, x.dtype)).sum(-1)


def relative_darkness(x: jnp.ndarray, sigma: float) -> jnp.ndarray:
  """[B, H, W, 3] in [-1, 1] -> [B, H, W]: (median(L) - L) / median(L), L the luminance smoothed with sigma; per
  image, positive where darker than the image's median (a crack), negative where brighter."""
  lum = gaussian_smooth(luminance(x), sigma)
  med = jnp.median(lum.reshape(lum.shape[0], -1), axis=1)[:, None, None]
  return (med - lum) / jnp.maximum(med, 1e-3)


def localization_map(
  m: np.ndarray, img: np.ndarray, weight: float, sigma: float, zscore: float = 0.0, background: float = 0.0
) -> np.ndarray:
  """The map that localizes (red mask, pixel metrics): an image's map [H, W] plus `weight` times the darkness of
  the image itself relative to its MEAN luminance, (mean(L) - L) / mean(L), L its luminance smoothed with `sigma`
  (img: uint8 [H, W, 3], the map's size), host side. `zscore` > 0 adds that much of the same darkness in units of
  the image's own spread, (mean(L) - L) / std(L): a faint crack on a smooth surface then lights up as a crack of
  the same contrast on a rough one (pixel AUPRO on synthetic masks 0.589 at 0.05 against 0.546).
  `background` > 0 takes the reference per pixel, the luminance smoothed with that sigma, instead of the mean: a
  photo lit unevenly, or half in shadow, is then not dark on its darker side.

  A sum, where the image map fuses the darkness by a max (`darkness`): a dark line adds to the residual along it,
  so a crack the healing half repaints still lights up whole, and a surface brighter than the reference lowers
  the map. The mean, not the median of `relative_darkness`: a gap covering half the photo is the median itself.
  The image score keeps the max (the max ranks images best, the sum outlines cracks best); weight and reference
  were chosen on synthetic-crack masks (docs/research_log.md). weight 0: the map itself."""
  m = np.asarray(m, np.float32)
  if weight == 0:
    return m
  if img.shape[:2] != m.shape:
    raise ValueError(f"a map of shape {m.shape} and an image of shape {img.shape[:2]} cannot be fused")
  lum = (np.asarray(img, np.float32) / 255.0 * np.asarray(LUMA, np.float32)).sum(-1)
  if sigma > 0:  # gaussian_smooth's kernel and borders (NumPy's 'reflect' is scipy's 'mirror'), nothing to compile
    lum = ndimage.gaussian_filter(lum, sigma, truncate=max(1, round(3.0 * sigma)) / sigma, mode="mirror")
  if background > 0:
    ref = gaussian_operator(lum.shape[0], background) @ lum @ gaussian_operator(lum.shape[1], background).T
  else:
    ref = np.full_like(lum, lum.mean(dtype=np.float64))
  spread = max(np.float32(lum.std(dtype=np.float64)), np.float32(1e-3))
  return m + np.float32(weight) * (ref - lum) * (1 / np.maximum(ref, np.float32(1e-3)) + np.float32(zscore) / spread)


def residual_map(x0: jnp.ndarray, x_hat: jnp.ndarray, channels: str = "mean") -> jnp.ndarray:
  """x0, x_hat: [B, H, W, C] in [-1, 1] -> |x_hat - x0|, [B, H, W] >= 0.

  channels='luma' compares luminance only (C = 3): a crack is a change in brightness, while paint spots and
  discolouration are mostly changes in hue that the per-channel residual also counts.
  """
  d = x_hat - x0
  if channels == "luma":
    d = (d * jnp.asarray(LUMA, d.dtype)).sum(axis=-1, keepdims=True)
  elif channels != "mean":
    raise ValueError(f"anomaly.channels must be one of {CHANNELS}, got {channels!r}")
  return jnp.abs(d).mean(axis=-1)


def interior(m: np.ndarray, border: int) -> np.ndarray:
  """The map without its outer `border` pixels on each side (the whole map when it is too small to have one):
  a photo's frame holds slab edges, shadows of the camera and vignetting, which healing does not remove."""
  h, w = m.shape[-2:]
  if border <= 0 or h <= 2 * border or w <= 2 * border:
    return m
  return m[..., border : h - border, border : w - border]


POOLING_FIELDS = ("pooling", "topk_fraction", "mad_floor", "border")  # image_score's settings: the score only


def image_score(m: np.ndarray, *, pooling: str, topk_fraction: float, mad_floor: float = MAD_FLOOR, border: int = 0) -> float:
  """One map [H, W] (host side, unpadded) -> its image score, from the map less its outer `border` pixels."""
  flat = np.asarray(interior(np.asarray(m, np.float32), border)).ravel()
  if pooling == "max":
    return float(flat.max())
  if pooling in ("topk", "topk_minus_median", "topk_mad"):
    k = max(1, int(round(topk_fraction * flat.size)))
    top = float(np.partition(flat, flat.size - k)[flat.size - k :].mean())
    if pooling == "topk":
      return top
    # Minus the image's own median residual: rough textures raise the whole map, a crack raises a thin part of it.
    med = float(np.median(flat))
    if pooling == "topk_minus_median":
      return top - med
    mad = float(np.median(np.abs(flat - med)))
    return (top - med) / (mad + mad_floor)
  raise ValueError(f"anomaly.pooling must be one of {POOLINGS}, got {pooling!r}")


def heal(eps_fn, schedule: Schedule, x0: jnp.ndarray, keys: jax.Array, cfg: HealConfig, sign=1.0) -> jnp.ndarray:
  """x0: [B, H, W, C] in [-1, 1], keys [B, 2] (one per image) -> one healed image x_hat: [B, H, W, C].
  sign = -1 noises with the negated draw of the same keys (the antithetic twin)."""
  if cfg.healer is not None:
    return cfg.healer(x0)
  k_noise = jax.vmap(lambda k: jax.random.fold_in(k, 0))(keys)
  k_sample = jax.vmap(lambda k: jax.random.fold_in(k, 1))(keys)
  ab = jnp.asarray(schedule.alpha_bar)[cfg.t_start]
  x_t = jnp.sqrt(ab) * x0 + sign * jnp.sqrt(1.0 - ab) * samplers.normal(k_noise, 0, x0.shape, x0.dtype)
  return samplers.sample(eps_fn, schedule, x_t, k_sample, sampler=cfg.sampler, t_start=cfg.t_start, steps=cfg.steps, eta=cfg.eta)


def downsample2(x: jnp.ndarray) -> jnp.ndarray:
  """[B, H, W, C] -> [B, H / 2, W / 2, C], 2x2 averages (H, W even)."""
  return downsample_mean(x, 2)


def anomaly_map(eps_fn, schedule: Schedule, x0: jnp.ndarray, keys: jax.Array, cfg: HealConfig):
  """x0: [B, H, W, C] in [-1, 1], keys [B, 2] -> (map: [B, H, W] >= 0, x_hat: [B, H, W, C] of the first draw).

  The map is the residual averaged over `num_draws` independent healings, then smoothed; with cfg.pyramid > 1,
  the pixelwise max of that map and the same map of the image down-sampled 2, 4, ... times (upsampled back); with
  cfg.darkness > 0, also at least cfg.darkness times the input's relative darkness.
  H and W must be divisible by cfg.multiple.
  """
  m, x_hat = _level_map(eps_fn, schedule, x0, keys, cfg)
  x = x0
  for level in range(1, cfg.pyramid):
    x = downsample2(x)
    lk = jax.vmap(jax.random.fold_in, (0, None))(keys, 10_000 + level)  # level 0 keeps the keys of pyramid = 1
    m = jnp.maximum(m, upsample_nearest(_level_map(eps_fn, schedule, x, lk, cfg)[0], 2**level))
  if cfg.darkness > 0:
    m = jnp.maximum(m, cfg.darkness * darkness_term(x0, cfg))
  return m, x_hat


def darkness_term(x0: jnp.ndarray, cfg: HealConfig) -> jnp.ndarray:
  """[B, H, W, C] -> [B, H, W]: the input's relative darkness that the map is at least cfg.darkness times."""
  return relative_darkness(x0, cfg.darkness_sigma)


def _draw(eps_fn, schedule: Schedule, x0: jnp.ndarray, keys: jax.Array, cfg: HealConfig, i) -> jnp.ndarray:
  """Healing draw number i (traced); antithetic pairs share draw i // 2's keys, the second with negated noise."""
  j, sign = (i // 2, 1.0 - 2.0 * (i % 2)) if cfg.antithetic else (i, 1.0)
  k = jax.vmap(lambda k: jax.random.fold_in(k, j))(keys)
  return heal(eps_fn, schedule, x0, k, cfg, sign)


def mean_healing(eps_fn, schedule: Schedule, x0: jnp.ndarray, keys: jax.Array, cfg: HealConfig) -> jnp.ndarray:
  """The mean of the cfg.num_draws healings, [B, H, W, C]: what the map compares x0 with for average='healing'."""
  total, _ = jax.lax.scan(
    lambda acc, i: (acc + _draw(eps_fn, schedule, x0, keys, cfg, i), None), jnp.zeros_like(x0), jnp.arange(cfg.num_draws)
  )
  return total / cfg.num_draws


def _level_map(eps_fn, schedule: Schedule, x0: jnp.ndarray, keys: jax.Array, cfg: HealConfig):
  """One resolution's map (the residual averaged over the draws, or that of their mean healing; smoothed) and the
  healing it shows: the first draw's, or the mean healing when that is what the residual compares with."""
  if cfg.average == "healing":
    x_hat = mean_healing(eps_fn, schedule, x0, keys, cfg)
    r = residual_map(x0, x_hat, cfg.channels)
    return smooth(r, cfg.smoothing_sigma, cfg.line_sigma), x_hat

  def one_draw(carry, i):
    x_hat = _draw(eps_fn, schedule, x0, keys, cfg, i)
    return carry + residual_map(x0, x_hat, cfg.channels), x_hat

  total, x_hats = jax.lax.scan(one_draw, jnp.zeros(x0.shape[:3], x0.dtype), jnp.arange(cfg.num_draws))
  m = smooth(total / cfg.num_draws, cfg.smoothing_sigma, cfg.line_sigma)
  return m, x_hats[0]
