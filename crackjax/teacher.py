"""The diffusion teacher (model kind 'teacher'): the epsilon-UNet trained on normal concrete, and its map.

    healing:  x0 -> x_t at t_start -> DDIM or DDPM back to t = 0 (optionally DDAD-guided)     (anomaly.py)
    map (config.anomaly.score):
      'residual'       the healing residual, smoothed                                    (anomaly.anomaly_map)
      'feature'        1 - cosine similarity of the UNet encoder's features of the input and of its healing,
                       per level, upsampled and averaged, smoothed (DDAD / GLAD compare pretrained features;
                       none can be downloaded here, so the teacher's own encoder is the feature extractor)
      'head'           the discriminative head's crack probability (crackjax/head.py)
      'head_residual'  the mean of the head's probability and the residual scaled by its train-crop 99th percentile

The UNet trains in <workdir>/checkpoints; a head, when the score needs one, in <workdir>/<head.name>/.
"""

from __future__ import annotations

import dataclasses
import logging
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from crackjax import anomaly, choices, distributed, head, precision, samplers
from crackjax import train as train_lib
from crackjax.data import builders, pipeline
from crackjax.scorer import Scorer, count_params, flops_of, micro_batched
from crackjax.unet import UNet, upsample_nearest

log = logging.getLogger(__name__)

SHAPE_FIELDS = ("model", "schedule", "data.stream")  # data.stream: streamed checkpoints hold the data position
SCORES = choices.SCORES


def heal_config(config: ml_collections.ConfigDict) -> anomaly.HealConfig:
  a, s = config.anomaly, config.sampler
  steps = a.heal_steps or samplers.heal_steps(
    schedule_steps=s.num_steps, t_start=a.t_start, num_timesteps=config.schedule.num_timesteps
  )
  return anomaly.HealConfig(
    sampler=s.kind,
    steps=steps,
    eta=s.eta,
    guidance=a.guidance,
    t_start=a.t_start,
    num_draws=a.num_draws,
    residual=a.residual,
    channels=a.channels,
    smoothing_sigma=a.smoothing_sigma,
    line_sigma=a.line_sigma,
    pooling=a.pooling,
    topk_fraction=a.topk_fraction,
    pyramid=a.pyramid,
    darkness=a.darkness,
    darkness_sigma=config.darkness.sigma,
    average=a.average,
    antithetic=a.antithetic,
  )


def with_healing(config: ml_collections.ConfigDict, variant: str = "", steps: int = 0) -> ml_collections.ConfigDict:
  """A copy of `config` that heals with sampler `variant` (a key of samplers.VARIANTS) and `steps` healing steps;
  "" and 0 keep the config's own."""
  c = config.copy_and_resolve_references()
  with c.unlocked():
    if variant:
      c.sampler.kind, c.sampler.eta = samplers.VARIANTS[variant]
    if steps:
      c.anomaly.heal_steps = steps
  return c


def uses_head(config: ml_collections.ConfigDict) -> bool:
  return config.anomaly.score in ("head", "head_residual")


def uses_unet(config: ml_collections.ConfigDict) -> bool:
  """False only for the image-only (DRAEM-like) head, the ablation without healing: no UNet is trained or run."""
  return not (config.anomaly.score == "head" and not head.needs_healing(head.head_config(config)))


# ------------------------------------------------------------------------------------------------ training


def load_train_images(config: ml_collections.ConfigDict, workdir: str) -> tuple[list[np.ndarray], dict]:
  """train/good at the working resolution, and what evaluation reports of it."""
  builder = distributed.prepare_once(lambda: builders.builder_for(config, workdir, config.data.root))
  if "train" not in builder.info.splits:
    raise FileNotFoundError(
      f"{config.data.root} has no train/good images to learn normal concrete from; {builders.EXPECTED_LAYOUT}"
    )
  split = pipeline.load_split(builder, "train", resize=config.data.resize)
  return split.images, {"n_train": len(split), "train_skipped_files": builders.skipped_files(builder, "train")}


def train(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """The UNet (resumable), then the head when the score uses one (resumable, its training set cached)."""
  if config.data.stream:  # crops streamed from the data source; the head needs images in memory
    if uses_head(config):
      raise ValueError("config.data.stream=True streams the UNet's crops; the head's training set needs the images in memory")
    builder = distributed.prepare_once(lambda: builders.builder_for(config, workdir, config.data.root))
    train_lib.train(config, workdir, None, builder.as_data_source(split="train"))
    n = builder.info.splits["train"].num_examples
    return {"n_train": n, "train_skipped_files": builders.skipped_files(builder, "train")}
  images, info = load_train_images(config, workdir)
  heal_fn = None
  if uses_unet(config):
    heal_fn = make_heal_fn(config, train_lib.train(config, workdir, images).ema_params)
  if uses_head(config):
    head.train(config, workdir, heal_fn, images)
  return info


def load_params(config: ml_collections.ConfigDict, workdir: str) -> dict:
  params = {"unet": train_lib.load_trained(config, workdir).ema_params} if uses_unet(config) else {}
  if uses_head(config):
    params["head"], head_info = head.load(config, workdir)
    params["residual_scale"] = jnp.float32(head_info["residual_scale"])
  return params


# ------------------------------------------------------------------------------------------------ the map


def feature_distance(unet: UNet, params, x: jnp.ndarray, x_hat: jnp.ndarray, t: int, dt=jnp.float32) -> jnp.ndarray:
  """Mean over the encoder's levels of 1 - cos(features of x, features of x_hat), at full resolution: [B, H, W]."""
  tt = jnp.full((x.shape[0],), t, jnp.int32)
  fx = precision.apply(unet.apply, params, x, tt, compute_dtype=dt, features=True)
  fh = precision.apply(unet.apply, params, x_hat, tt, compute_dtype=dt, features=True)
  out = jnp.zeros(x.shape[:3], x.dtype)
  for a, b in zip(fx, fh):
    cos = (a * b).sum(-1) / (jnp.linalg.norm(a, axis=-1) * jnp.linalg.norm(b, axis=-1) + 1e-6)
    out = out + upsample_nearest(1.0 - cos, x.shape[1] // a.shape[1])
  return out / len(fx)


def make_heal_fn(config: ml_collections.ConfigDict, unet_params):
  """heal(x [B, H, W, 3], ids [B]) -> (x_hat [B, H, W, 3], feature distance [B, H, W] or None): what the head
  sees of the teacher, jitted (the head's training crops are healed with it once and cached)."""
  unet = UNet(train_lib.unet_config(config))
  schedule = train_lib.make_schedule(config)
  hc = heal_config(config)
  need_feature = "feature" in config.head.inputs
  key = jax.random.fold_in(jax.random.PRNGKey(config.seed), 12)
  dt = precision.dtype(config)

  @jax.jit
  def heal(x, ids):
    keys = jax.vmap(jax.random.fold_in, (None, 0))(key, ids)
    eps_fn = lambda x_t, t: precision.apply(unet.apply, unet_params, x_t, t, compute_dtype=dt)  # noqa: E731
    # The healing the map compares with: the mean of the draws where the map averages healings.
    x_hat = (
      anomaly.mean_healing(eps_fn, schedule, x, keys, hc)
      if hc.average == "healing"
      else anomaly.heal(eps_fn, schedule, x, keys, hc)
    )
    feat = feature_distance(unet, unet_params, x, x_hat, config.anomaly.feature_t, dt) if need_feature else None
    return x_hat, feat

  return heal


def make_maps_fn(config: ml_collections.ConfigDict, healer=None):
  """maps(params, x: [B, H, W, 3] padded, key, ids: [B]) -> [B, H, W] (the Scorer contract), jitted. healer: a
  healing in place of the diffusion model's (anomaly.HealConfig.healer)."""
  unet = UNet(train_lib.unet_config(config))
  schedule = train_lib.make_schedule(config)
  hc = dataclasses.replace(heal_config(config), healer=healer)
  score = config.anomaly.score
  hcfg = head.head_config(config)
  dt = precision.dtype(config)

  def maps(params, x, key, ids):
    keys = jax.vmap(jax.random.fold_in, (None, 0))(key, ids)
    if score == "head" and not head.needs_healing(hcfg):  # the image-only (DRAEM-like) head
      return head.head_map(hcfg, params["head"], x, None, None, hc.smoothing_sigma, dt)
    eps_fn = lambda x_t, t: precision.apply(unet.apply, params["unet"], x_t, t, compute_dtype=dt)  # noqa: E731
    m, x_hat = anomaly.anomaly_map(eps_fn, schedule, x, keys, hc)
    if score == "residual":
      return m
    need_feature = score == "feature" or "feature" in hcfg.inputs
    feat = feature_distance(unet, params["unet"], x, x_hat, config.anomaly.feature_t, dt) if need_feature else None
    if score == "feature":
      return anomaly.gaussian_smooth(feat, hc.smoothing_sigma)
    p = head.head_map(hcfg, params["head"], x, x_hat, feat, hc.smoothing_sigma, dt)
    if score == "head":
      return p
    return 0.5 * (p + m / params["residual_scale"])

  return jax.jit(micro_batched(maps, config.eval.micro_batch))


def passes_per_image(config: ml_collections.ConfigDict) -> int:
  """UNet passes per image: the sampler's steps per draw (+ 2 encoder passes for feature distances)."""
  hc = heal_config(config)
  if config.anomaly.score == "head" and not head.needs_healing(head.head_config(config)):
    return 0
  feature = config.anomaly.score == "feature" or (uses_head(config) and "feature" in config.head.inputs)
  return hc.steps * hc.num_draws + (2 if feature else 0)


def scorer_from_params(config: ml_collections.ConfigDict, params: dict, healer: tuple | None = None) -> Scorer:
  """healer: (name, x0 -> x_hat, flops per pixel) healing in place of the diffusion model's, every other part of
  the map as configured (the research question of what the diffusion model adds)."""
  hc = heal_config(config)
  unet = UNet(train_lib.unet_config(config))

  def flops(shape):
    # XLA counts the sampler's scan body once: cost = forward x passes (+ the head), not the compiled total.
    total = 0.0
    if "unet" in params:
      fwd = flops_of(
        lambda p, x, t: unet.apply({"params": p}, x, t), params["unet"], jnp.zeros(shape), jnp.zeros(shape[0], jnp.int32)
      )
      # The pyramid's level l heals an image of 4^-l the pixels.
      total = fwd * passes_per_image(config) * sum(4.0**-level for level in range(hc.pyramid))
    if healer is not None:
      total = healer[2] * shape[1] * shape[2] * hc.num_draws * sum(4.0**-level for level in range(hc.pyramid)) * shape[0]
    if "head" in params:
      hcfg = head.head_config(config)
      total += flops_of(
        lambda p, x: head.HeadNet(hcfg).apply({"params": p}, x), params["head"], jnp.zeros((*shape[:3], hcfg.in_channels))
      )
    return total / shape[0]

  n = count_params(params)
  info = {
    "kind": "teacher",
    "score": config.anomaly.score,
    "sampler": hc.sampler,
    "num_steps": config.sampler.num_steps,
    "heal_steps": hc.steps,
    "eta": hc.eta,
    "guidance": hc.guidance,
    "t_start": hc.t_start,
    "params": n,
    "residual": hc.residual,
    "channels": hc.channels,
    **anomaly.pooling_of(config.anomaly),
    "smoothing_sigma": hc.smoothing_sigma,
    "line_sigma": hc.line_sigma,
    "num_draws": hc.num_draws,
    "pyramid": hc.pyramid,
    "darkness": hc.darkness,
    "average": hc.average,
    "antithetic": hc.antithetic,
    "description": (
      f"diffusion teacher ({n:,} params): {hc.sampler} healing from t={hc.t_start}, {hc.steps} step(s) "
      f"x {hc.num_draws} draw(s), score {config.anomaly.score}"
      if uses_unet(config)
      else f"image-only head ({n:,} params, no healing)"
    ),
  }
  if uses_head(config):
    info["head"] = {"name": config.head.name, "inputs": list(config.head.inputs), "params": count_params(params["head"])}
  if healer is not None:
    info["healer"] = healer[0]
    info["description"] = f"{healer[0]} in place of the diffusion healing, x {hc.num_draws} draw(s), score {config.anomaly.score}"
  multiple = train_lib.unet_config(config).downsample_factor * hc.multiple
  multiple = max(multiple, head.head_config(config).multiple if uses_head(config) else 1)
  return Scorer(make_maps_fn(config, None if healer is None else healer[1]), params, multiple, flops, info)


def make_scorer(config: ml_collections.ConfigDict, workdir: str) -> Scorer:
  """The trained teacher (the pool classifier's shift, where there is one, is attached by crackjax/runs.py)."""
  return scorer_from_params(config, load_params(config, workdir))


def init_scorer(config: ml_collections.ConfigDict) -> Scorer:
  """A Scorer with freshly initialised parameters (speed does not depend on training: benchmarks)."""
  key = jax.random.PRNGKey(config.seed)
  params = {"unet": train_lib.create_train_state(config, key).params} if uses_unet(config) else {}
  if uses_head(config):
    params["head"] = head.create_state(config, key).params
    params["residual_scale"] = jnp.float32(1.0)
  return scorer_from_params(config, params)


def head_workdir(config, workdir: str) -> str:
  return os.path.join(workdir, config.head.name)
