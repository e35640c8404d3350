"""Every random stream a run draws from, named in one table: all of them trace back to `config.seed`.

    key(seed, name)          = fold_in(PRNGKey(seed), STREAMS[name])       a JAX key
    rng(seed, name, *more)   = default_rng([seed, STREAMS[name], *more])   a NumPy generator (more: a step, an index)

No two names share a number (tests/test_streams.py), so no two uses of randomness are tied to each other by
accident. Inside a stream, per-image and per-step keys are fold_in(key, id) and fold_in(key, step). A NumPy
sequence [seed, n] equals [seed, n, 0] (trailing zeros are ignored), so a stream's own extra elements keep
streams apart only together with the distinct numbers below.

The synthetic data sets draw from their own fixed seed (crackjax/data/synthetic.py: [data seed, image index]), so
that models of any config.seed see the same data.
"""

from __future__ import annotations

import jax
import numpy as np

STREAMS = {
  "init": 0,  # the teacher's (and the toy DDPM's) initial parameters
  "train": 1,  # the training step's noise and timesteps: fold_in(key, step)
  "eval": 2,  # an evaluation's healing noise: fold_in(key, split), then the image's row in the split
  "predict": 3,  # predict's healing noise, by a hash of the photo's path (the exported loader draws the same)
  "toy": 4,  # the toy DDPM's pictures and samples
  "teacher_maps": 5,  # the teacher's maps of a student's pool: fold_in(key, shard)
  "student": 6,  # the student's initial parameters
  "pool_subset": 7,  # NumPy: which photos a capped pool keeps
  "pool_cracks": 8,  # NumPy: which pool photos get a synthetic crack
  "pool_crack_shapes": 9,  # NumPy: each synthetic crack of the pool, [seed, 9, j]
  "sweep": 10,  # a sweep's healing noise (the same for every sampler and step count)
  "student_crops": 11,  # NumPy: the student's training crops, [seed, 11, step]
  "calibration": 12,  # the red mask's calibration: healing noise of the sound photos and their cracked copies
  "calibration_cracks": 13,  # NumPy: the calibration's synthetic cracks, [seed, 13, photo]
  "baseline": 14,  # a baseline's initial parameters and training noise: fold_in(key, step)
  "baseline_crops": 15,  # NumPy: a baseline's training crops (and DRAEM's anomalies), [seed, 15, step]
  "membership": 16,  # the memorization probe's noise (benchmarks/teacher_memorization.py)
  "crops": 17,  # NumPy: the teacher's training crops, [seed, 17, step]
}


def key(seed: int, name: str) -> jax.Array:
  return jax.random.fold_in(jax.random.PRNGKey(seed), STREAMS[name])


def rng(seed: int, name: str, *more: int) -> np.random.Generator:
  return np.random.default_rng([seed, STREAMS[name], *more])
