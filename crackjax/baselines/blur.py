"""No learning, the teacher's whole map around it (model kind 'blur'): each photo is "healed" by a Gaussian blur
of itself (sigma BLUR_SIGMA working pixels) instead of the diffusion model, and everything else is the teacher's
as configured: the antithetic draws (identical here), the pyramid, the line filter, the darkness floor, the
pooling and the localization map. What the teacher scores above this row is what the diffusion model adds
(docs/research.md); a blur paints a thin dark crack over with its surroundings, as healing does, but it paints a
straight joint or a mortar line over just the same.

    python main.py --config=configs/blur.py:data=ROOT --workdir=runs/blur
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import ml_collections

from crackjax import anomaly
from crackjax.baselines import darkness
from crackjax.scorer import Scorer

SHAPE_FIELDS = ()
BLUR_SIGMA = 4.0  # working pixels: set before the first measurement (docs/research.md), never tuned


def blur(x0: jnp.ndarray, sigma: float = BLUR_SIGMA) -> jnp.ndarray:
  """x0: [B, H, W, C] -> each channel blurred (anomaly.gaussian_smooth, reflected borders)."""
  b, h, w, c = x0.shape
  flat = jnp.transpose(x0, (0, 3, 1, 2)).reshape(b * c, h, w)
  return jnp.transpose(anomaly.gaussian_smooth(flat, sigma).reshape(b, c, h, w), (0, 2, 3, 1))


train = darkness.train  # nothing to learn: the data it would have used is recorded


def init_scorer(config: ml_collections.ConfigDict) -> Scorer:
  from crackjax import teacher  # the teacher's map, with the blur in place of its healing

  # a 1-D kernel of 2 round(3 sigma) + 1 taps, twice, per channel and pixel
  flops = 2 * 3 * (2 * round(3 * BLUR_SIGMA) + 1) * 2
  scorer = teacher.scorer_from_params(config, {}, (f"a Gaussian blur (sigma {BLUR_SIGMA:g} px)", blur, flops))
  return dataclasses.replace(scorer, info={**scorer.info, "kind": "blur"})


def make_scorer(config: ml_collections.ConfigDict, workdir: str) -> Scorer:
  return init_scorer(config)
