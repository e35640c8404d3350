"""The student's label-free pool and its cached teacher maps (the student's training targets).

The pool is train/good plus the root's unlabeled folder (labels withheld), optionally plus good photos with a crack
of the synthetic generator drawn in; it is read with `pipeline.load_images`, which returns pixels and file names
only (a test poisons every label and mask field and trains anyway).
"""

from __future__ import annotations

import logging
import os
import time

import jax
import ml_collections
import numpy as np

from crackjax import anomaly, streams, synth
from crackjax.config import without_legacy
from crackjax.data import builders, pipeline
from crackjax.errors import UserError
from crackjax.scorer import Scorer, cache_key, compute_maps, sharded_cache, tiling

log = logging.getLogger(__name__)


def load_pool(config: ml_collections.ConfigDict, workdir: str) -> tuple[list[np.ndarray], list[str]]:
  """The student's training images: train/good, the unlabeled folder and, optionally, good images with a synthetic
  crack. Pixels and names only: no label, mask or folder of origin is read."""
  s = config.student
  builder = builders.builder_for(config, workdir, config.data.root)
  images, names = [], []
  for split in ("train", "unlabeled"):
    if split in builder.info.splits:
      imgs, fns = pipeline.load_images(builder, split, resize=config.data.resize)
      images += imgs
      names += [f"{split}/{f}" for f in fns]
  if not images:
    raise UserError(f"{config.data.root or 'synthetic data'} has no train/good or unlabeled images for the student")
  if not any(n.startswith("unlabeled/") for n in names) and not s.synthetic_cracks:
    log.warning(
      "The student's pool is train/good only (no unlabeled/ folder) and student.synthetic_cracks=0: it never sees "
      "the teacher's map of a crack and learns the maps of sound concrete alone; --config.student.synthetic_cracks=1.0 "
      "adds each pool photo again with a synthetic crack drawn in"
    )
  if s.max_pool_images and len(images) > s.max_pool_images:
    keep = streams.rng(config.seed, "pool_subset").permutation(len(images))[: s.max_pool_images]
    images, names = [images[i] for i in sorted(keep)], [names[i] for i in sorted(keep)]
  n_syn = int(round(s.synthetic_cracks * len(images)))
  rng = streams.rng(config.seed, "pool_cracks")
  for j, i in enumerate(rng.choice(len(images), n_syn, replace=False) if n_syn else []):
    images.append(draw_synthetic_crack(images[i], streams.rng(config.seed, "pool_crack_shapes", j)))
    names.append(f"synthetic_crack/{j:05d}_{names[i]}")
  return images, names


def draw_synthetic_crack(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  """uint8 [H, W, 3] -> a copy with one crack of the synthetic generator's model (drawn on a square canvas)."""
  h, w = img.shape[:2]
  side = max(h, w)
  canvas = np.pad(img, ((0, side - h), (0, side - w), (0, 0)), mode="edge").astype(np.float32) / 255.0
  out, _ = synth.draw_crack(rng, canvas)  # the mask is dropped: the teacher's map is the only target
  return (np.clip(out[:h, :w], 0, 1) * 255 + 0.5).astype(np.uint8)


def teacher_maps(config, workdir: str, scorer: Scorer, images: list[np.ndarray], names: list[str]):
  """Teacher maps of the pool, computed once in shards and reused (a killed run keeps its finished shards).

  The shards live in <student.cache_dir or <workdir>/teacher_maps>/<key>/, the key a digest of the teacher's
  map settings (its scoring settings less the image score's pooling), its weights, the resize factor and the pool's
  names: students of one teacher can share a cache_dir, and a changed or retrained teacher or pool never reads
  stale maps. Returns a list of float32 [H, W]."""
  # The maps do not depend on how they are pooled, nor on fields at their LEGACY value: neither re-keys the cache.
  info = {k: v for k, v in without_legacy("anomaly", scorer.info).items() if k not in anomaly.POOLING_FIELDS}
  digest = cache_key(scorer, info, config.data.resize, config.seed, names)
  cache = os.path.join(config.student.cache_dir or os.path.join(workdir, "teacher_maps"), digest)
  shard = config.student.cache_shard_size
  key = streams.key(config.seed, "teacher_maps")
  t0 = time.time()
  n_shards = (len(images) + shard - 1) // shard

  def compute(lo, hi, k):
    res = compute_maps(
      scorer, images[lo:hi], jax.random.fold_in(key, k), batch_size=config.eval.batch_size, tile=tiling(config),
      desc=f"teacher maps {k + 1}/{n_shards}",
    )  # fmt: skip
    rate = hi / max(time.time() - t0, 1e-9)
    log.info("teacher maps: %d/%d images cached in %s (ETA %.0f s)", hi, len(images), cache, (len(images) - hi) / rate)
    return {f"m{i}": m.astype(np.float16) for i, m in enumerate(res.maps)}, [np.asarray(m, np.float32) for m in res.maps]

  return sharded_cache(cache, names, shard, compute, lambda z, n: [z[f"m{i}"].astype(np.float32) for i in range(n)])
