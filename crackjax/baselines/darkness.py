"""No learning at all (model kind 'darkness'): how dark is the darkest part of the image? Every comparison's floor.

    L  = luminance of the image, smoothed with sigma (pixels), in [0, 1]
    'relative' map:  (median(L) - L) / median(L)    image score with top-k pooling of a small fraction k:
                     about (median - k-quantile) / median, the one-line score that reaches image AUROC 0.999 on
                     the public 40,000-image concrete set
    'tophat' map:    black top-hat of L, closing(L) - L with a square of `tophat_size` pixels: dark structures
                     narrower than the square light up, wide shadows and stains do not

Nothing is trained; `train` only records the data it would have used, so evaluation reports like any kind's.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections

from crackjax import anomaly
from crackjax.data import builders
from crackjax.scorer import Scorer, build

SHAPE_FIELDS = ()


def _grey_morph(x: jnp.ndarray, size: int, op) -> jnp.ndarray:
  return jax.lax.reduce_window(x, -jnp.inf if op is jax.lax.max else jnp.inf, op, (1, size, size), (1, 1, 1), "SAME")


def make_maps_fn(config: ml_collections.ConfigDict):
  d = config.darkness

  def maps(params, x, key, ids):
    del params, key, ids
    if d.map == "relative":
      return anomaly.relative_darkness(x, d.sigma)
    lum = anomaly.gaussian_smooth(anomaly.luminance(x), d.sigma)
    closing = -_grey_morph(-_grey_morph(lum, d.tophat_size, jax.lax.max), d.tophat_size, jax.lax.max)
    return closing - lum

  return jax.jit(maps)


def train(config: ml_collections.ConfigDict, workdir: str) -> dict:
  builder = builders.builder_for(config, workdir, config.data.root)
  n = builder.info.splits["train"].num_examples if "train" in builder.info.splits else 0
  return {"n_train": n, "train_skipped_files": builders.skipped_files(builder, "train"), "trained": False}


def make_scorer(config: ml_collections.ConfigDict, workdir: str) -> Scorer:
  return init_scorer(config)


def init_scorer(config: ml_collections.ConfigDict) -> Scorer:
  d = config.darkness
  info = {
    "kind": "darkness",
    "map": d.map,
    "params": 0,
    "smoothing_sigma": d.sigma,
    "description": f"darkness floor ({d.map} map, no learning)",
  }
  # A 3x3 box per image pixel for smoothing and morphology: a few flops per pixel, negligible.
  return build(make_maps_fn(config), {}, 1, lambda shape: 20.0 * shape[1] * shape[2], info, config)
