"""Does diffusion memorize pixels or learn structure? A small DDPM on crack skeletons (configs/toy_skeleton.py).

The data are the synthetic generator's cracks alone, as 1-pixel skeletons or soft heatmaps (the crack mask
blurred), white on black. A DDPM is trained on `num_train` of them; as many more from the same generator are
never trained on. The job writes pictures of the forward process (training examples noised at increasing t) and
of the reverse process (generation from pure noise, several intermediate states), then generates as many
images as it trained on (at most NUM_SAMPLES) and measures memorization:

    d_train(g) = min over training images x of RMS(blur(g) - blur(x))
    d_held(g)  = the same over the held-out images (as many as the training images)
    ratio(g)   = d_train(g) / d_held(g)

A model that copies its training set puts its samples much nearer the training images than anything else
(ratio << 1); a model that learned the shape distribution is as near the held-out images (ratio ~ 1). The
reference is the ratio of fresh real images from the generator (never trained on, so ~1 by construction). The
blur (sigma 1.5 px) makes the distance tolerant of one-pixel shifts of a thin line.

Writes forward.png, reverse.png, samples.png, nearest.png, memorization.png and toy.json into the workdir.
"""

from __future__ import annotations

import json
import logging
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from scipy import ndimage

from crackjax import metrics, plots, samplers, streams, synth
from crackjax import schedule as schedule_lib
from crackjax import train as train_lib
from crackjax.data import pipeline
from crackjax.errors import UserError
from crackjax.unet import UNet

log = logging.getLogger(__name__)

NUM_SAMPLES = 256  # generated samples whose nearest neighbours are measured (at most one per training image)

TARGETS = ("skeleton", "heatmap")
BLUR_SIGMA = 1.5  # pixels, for the nearest-neighbour distance
# Index ranges of the toy sets (disjoint: no image is in two of them).
_OFFSETS = {"train": 0, "heldout": 10**6, "fresh": 2 * 10**6}


def crack_image(seed: int, index: int, size: int, target: str) -> np.ndarray:
  """One toy image, float32 [size, size] in [0, 1]: a crack skeleton (1 px) or its soft heatmap."""
  rng = np.random.default_rng([seed, index])
  blank = np.ones((size, size, 3), np.float32)
  if target == "skeleton":
    _, mask = synth.draw_crack(rng, blank, synth.CrackParams(width=(1.0, 1.0)))
    return mask.astype(np.float32)
  if target == "heatmap":
    _, mask = synth.draw_crack(rng, blank)
    soft = ndimage.gaussian_filter(mask.astype(np.float32), 1.0 * size / 64 + 0.5)
    return soft / max(float(soft.max()), 1e-6)
  raise UserError(f"toy.target must be one of {TARGETS}, got {target!r}")


def toy_set(config: ml_collections.ConfigDict, which: str, n: int) -> np.ndarray:
  t = config.toy
  return np.stack([crack_image(config.data.synthetic.seed, _OFFSETS[which] + i, t.image_size, t.target) for i in range(n)])


def to_uint8_rgb(x: np.ndarray) -> list[np.ndarray]:
  """[N, S, S] in [0, 1] -> N uint8 [S, S, 3] images (the training pipeline's format)."""
  u8 = (np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8)
  return [np.repeat(im[..., None], 3, axis=-1) for im in u8]


def nearest(queries: np.ndarray, refs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(RMS distance, index) of each query's nearest reference, after the same Gaussian blur of both."""

  def flat(x):
    return np.stack([ndimage.gaussian_filter(im, BLUR_SIGMA) for im in x]).reshape(len(x), -1).astype(np.float64)

  q, r = flat(queries), flat(refs)
  d2 = (q**2).sum(1)[:, None] + (r**2).sum(1)[None, :] - 2.0 * q @ r.T
  idx = d2.argmin(axis=1)
  return np.sqrt(np.maximum(d2[np.arange(len(q)), idx], 0.0) / q.shape[1]), idx


def memorization(samples: np.ndarray, train: np.ndarray, heldout: np.ndarray) -> dict:
  """Nearest-neighbour distances to the training set and to as many held-out images (the first len(train)): the
  nearest of more images is nearer by chance alone, so unequal sets would read as memorization or its absence."""
  if len(heldout) < len(train):
    raise UserError(f"{len(heldout)} held-out images for {len(train)} training images; the probe needs as many")
  heldout = heldout[: len(train)]
  d_tr, i_tr = nearest(samples, train)
  d_ho, i_ho = nearest(samples, heldout)
  ratio = d_tr / np.maximum(d_ho, 1e-12)
  return {"d_train": d_tr, "d_heldout": d_ho, "ratio": ratio, "nearest_train": i_tr, "nearest_heldout": i_ho}


def generate(config: ml_collections.ConfigDict, params, n: int, key: jax.Array, *, trajectory: bool = False):
  """n images generated from pure noise by config.sampler: [n, S, S] in [0, 1] (and the states, if asked)."""
  model = UNet(train_lib.unet_config(config))
  schedule = train_lib.make_schedule(config)
  s = config.toy.image_size
  eps_fn = lambda x, t: model.apply({"params": params}, x, t)  # noqa: E731
  batch = min(n, 64)

  @jax.jit
  def run(key):
    k_noise, k_sample = jax.random.split(key)
    x_T = jax.random.normal(k_noise, (batch, s, s, 3))
    return samplers.sample(
      eps_fn, schedule, x_T, k_sample, sampler=config.sampler.kind, t_start=schedule.num_timesteps - 1,
      steps=config.sampler.num_steps, eta=config.sampler.eta, return_trajectory=trajectory,
    )  # fmt: skip

  outs, trajs = [], []
  for b in range(0, n, batch):
    out = jax.device_get(run(jax.random.fold_in(key, b)))
    x0, traj = out if trajectory else (out, None)
    outs.append(x0)
    if traj is not None:
      trajs.append(traj)
  x = (np.concatenate(outs)[:n].mean(-1) + 1.0) / 2.0
  if not trajectory:
    return x
  return x, (np.concatenate(trajs, axis=1)[:, :n].mean(-1) + 1.0) / 2.0


def forward_pictures(config, images: np.ndarray, key: jax.Array) -> tuple[np.ndarray, list[int]]:
  """images [R, S, S] noised by q(x_t | x_0) at 8 increasing t: ([R, 8, S, S] in [0, 1] for display, the t's)."""
  schedule = train_lib.make_schedule(config)
  T = schedule.num_timesteps
  ts = sorted({int(round(f * (T - 1))) for f in (0.0, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0)})
  x0 = images * 2.0 - 1.0
  rows = []
  for j, t in enumerate(ts):
    ab = float(schedule.alpha_bar[t])
    eps = np.asarray(jax.random.normal(jax.random.fold_in(key, j), x0.shape))
    rows.append((np.sqrt(ab) * x0 + np.sqrt(1 - ab) * eps + 1.0) / 2.0)
  return np.clip(np.stack(rows, axis=1), 0, 1), ts


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains (or resumes) the toy DDPM, then writes the pictures and the memorization numbers."""
  t = config.toy
  num_samples = min(NUM_SAMPLES, t.num_train)
  c = config.copy_and_resolve_references()
  with c.unlocked():
    c.data.crop_size = t.image_size  # whole toy images, randomly flipped and rotated
  log.info("Toy data: %d training and as many held-out crack %ss at %d px", t.num_train, t.target, t.image_size)
  train_set, heldout = toy_set(c, "train", t.num_train), toy_set(c, "heldout", t.num_train)
  fresh = toy_set(c, "fresh", num_samples)
  state = train_lib.train(c, workdir, to_uint8_rgb(train_set))
  params = state.ema_params
  key = streams.key(config.seed, "toy")

  fwd, ts = forward_pictures(c, train_set[:4], jax.random.fold_in(key, 0))
  titles = [f"t = {x}" for x in ts]
  plots.image_grid(fwd, os.path.join(workdir, "forward.png"), col_titles=titles, title="Forward process q(x_t | x_0)")
  x_vis, traj = generate(c, params, 4, jax.random.fold_in(key, 1), trajectory=True)
  pick = np.unique(np.round(np.linspace(0, traj.shape[0] - 1, 8)).astype(int))
  plots.image_grid(
    np.clip(traj[pick].transpose(1, 0, 2, 3), 0, 1),
    os.path.join(workdir, "reverse.png"),
    col_titles=[f"step {i + 1}/{traj.shape[0]}" for i in pick],
    title=f"Reverse process from noise ({c.sampler.kind}, {c.sampler.num_steps} steps)",
  )
  log.info("Generating %d samples (%s, %d steps)", num_samples, c.sampler.kind, c.sampler.num_steps)
  samples = np.clip(generate(c, params, num_samples, jax.random.fold_in(key, 2)), 0, 1)
  n_show = min(32, len(samples))
  cols = 8
  grid = np.zeros((-(-n_show // cols), cols) + samples.shape[1:], np.float32)
  for i in range(n_show):
    grid[i // cols, i % cols] = samples[i]
  plots.image_grid(grid, os.path.join(workdir, "samples.png"), title=f"Generated crack {t.target}s")

  gen = memorization(samples, train_set, heldout)
  ref = memorization(fresh, train_set, heldout)
  k = min(8, len(samples))
  trio = np.stack([samples[:k], train_set[gen["nearest_train"][:k]], heldout[gen["nearest_heldout"][:k]]], axis=1)
  plots.image_grid(trio, os.path.join(workdir, "nearest.png"), col_titles=["generated", "nearest train", "nearest held-out"])
  plots.memorization_histograms(gen, ref, os.path.join(workdir, "memorization.png"))
  out = {
    "target": t.target,
    "num_train": t.num_train,
    "num_heldout": len(heldout),
    "num_samples": num_samples,
    "sampler": c.sampler.kind,
    "sampler_steps": c.sampler.num_steps,
    "train_steps": c.train.num_steps,
    "blur_sigma": BLUR_SIGMA,
    "generated": _summary(gen),
    "fresh_real": _summary(ref),
  }
  with open(os.path.join(workdir, "toy.json"), "w") as f:
    json.dump(out, f, indent=2)
  line = lambda name, m: (  # noqa: E731
    f"  {name:<10}: median d_train {m['median_d_train']:.4f}  d_heldout {m['median_d_heldout']:.4f}  ratio "
    f"{m['median_ratio']:.3f}  share nearer train {m['share_nearer_train']:.3f}  copies (ratio < 1/3) {m['share_copies']:.3f}"
  )
  print(
    f"memorization ({t.target}s, {t.num_train} train / {len(heldout)} held out, {num_samples} samples):\n"
    f"{line('generated', out['generated'])}\n{line('fresh real', out['fresh_real'])}\n"
    f"  -> {workdir}/toy.json, forward.png, reverse.png, samples.png, nearest.png, memorization.png",
    flush=True,
  )
  return out


def _summary(m: dict) -> dict:
  return {
    "median_d_train": float(np.median(m["d_train"])),
    "median_d_heldout": float(np.median(m["d_heldout"])),
    "median_ratio": float(np.median(m["ratio"])),
    "share_nearer_train": float(np.mean(m["ratio"] < 1.0)),
    "share_copies": float(np.mean(m["ratio"] < 1.0 / 3.0)),
  }


# ------------------------------------------------------------------- the real-data teacher's membership probe
# (benchmarks/teacher_memorization.py; Carlini et al. 2023): a model that memorized its training photos denoises
# them better than unseen photos of the same kind, given the same noise.


def center_crop(img: np.ndarray, size: int) -> np.ndarray:
  h, w = img.shape[:2]
  if min(h, w) < size:
    raise ValueError(f"an image of {h}x{w} is smaller than the probe's crop {size}; use a smaller --crop")
  y, x = (h - size) // 2, (w - size) // 2
  return img[y : y + size, x : x + size]


def denoising_losses(config, params, images: list[np.ndarray], ts: list[int], draws: int, key, crop: int) -> np.ndarray:
  """[len(ts), N]: each photo's noise-prediction MSE at each t, averaged over `draws` draws; photo i's noise depends
  on (t, draw, i) only, so two sets of photos get the same draws."""
  model = UNet(train_lib.unet_config(config))
  sched = train_lib.make_schedule(config)
  x0_all = np.stack([pipeline.to_model_range(center_crop(im, crop)) for im in images]).astype(np.float32)

  @jax.jit
  def loss(x0, t, key, ids):
    eps = jax.vmap(lambda i: jax.random.normal(jax.random.fold_in(key, i), x0.shape[1:]))(ids)
    tt = jnp.full((x0.shape[0],), t, jnp.int32)
    x_t = schedule_lib.q_sample(sched, x0=x0, t=tt, eps=eps)
    eps_hat = model.apply({"params": params}, x_t, tt)
    return jnp.mean((eps_hat - eps) ** 2, axis=(1, 2, 3))

  batch = 32
  out = np.zeros((len(ts), len(images)), np.float64)
  for a, t in enumerate(ts):
    for d in range(draws):
      k = jax.random.fold_in(jax.random.fold_in(key, t), d)
      for b in range(0, len(images), batch):
        x0 = x0_all[b : b + batch]
        ids = np.arange(b, b + len(x0))
        pad = batch - len(x0)  # one compiled shape
        xb, ib = np.concatenate([x0, np.zeros((pad,) + x0.shape[1:], np.float32)]), np.concatenate([ids, np.zeros(pad, int)])
        out[a, b : b + len(x0)] += np.asarray(loss(xb, t, k, ib))[: len(x0)] / draws
    print(f"  denoising loss at t = {t}: {len(images)} photos x {draws} draws, mean {out[a].mean():.5f}", flush=True)
  return out


def membership(train_values: np.ndarray, held_values: np.ndarray, rng: np.random.Generator, boots: int = 2000) -> dict:
  """AUROC of 'held-out has the larger value' and its 95% bootstrap interval (photos resampled in each set)."""
  scores = np.concatenate([train_values, held_values])
  labels = np.concatenate([np.zeros(len(train_values)), np.ones(len(held_values))]).astype(int)
  auc = metrics.auroc(scores, labels)
  reps = []
  for _ in range(boots):
    tr = rng.choice(train_values, len(train_values))
    ho = rng.choice(held_values, len(held_values))
    reps.append(metrics.auroc(np.concatenate([tr, ho]), labels))
  lo, hi = np.percentile(reps, [2.5, 97.5])
  return {"auroc": float(auc), "ci95": [float(lo), float(hi)], "mean_train": float(np.mean(train_values)),
          "mean_heldout": float(np.mean(held_values))}  # fmt: skip
