"""The diffusion teacher (model kind 'teacher'): the epsilon-UNet trained on normal concrete, and its map.

    healing:  x0 -> x_t at t_start -> DDIM or DDPM back to t = 0                        (anomaly.heal)
    map:      the healing residual through the configured filters, pyramid and darkness  (anomaly.anomaly_map)

The UNet trains in <workdir>/checkpoints, from scratch or from train.init_from's teacher (fine-tuning).
"""

from __future__ import annotations

import dataclasses
import logging

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from crackjax import anomaly, calibration, distributed, precision, samplers, streams
from crackjax import train as train_lib
from crackjax.data import builders, pipeline
from crackjax.errors import UserError
from crackjax.scorer import Scorer, build, count_params, flops_of, micro_batched
from crackjax.unet import UNet

log = logging.getLogger(__name__)

SHAPE_FIELDS = ("model", "schedule", "data.stream")  # data.stream: streamed checkpoints hold the data position


def heal_config(config: ml_collections.ConfigDict) -> anomaly.HealConfig:
  a, s = config.anomaly, config.sampler
  steps = a.heal_steps or samplers.heal_steps(
    schedule_steps=s.num_steps, t_start=a.t_start, num_timesteps=config.schedule.num_timesteps
  )
  return anomaly.HealConfig(
    sampler=s.kind,
    steps=steps,
    eta=s.eta,
    t_start=a.t_start,
    num_draws=a.num_draws,
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


# ------------------------------------------------------------------------------------------------ training


def load_train_images(config: ml_collections.ConfigDict, workdir: str) -> tuple[list[np.ndarray], dict]:
  """train/good at the working resolution, and what evaluation reports of it."""
  builder = distributed.prepare_once(lambda: builders.builder_for(config, workdir, config.data.root))
  if "train" not in builder.info.splits:
    raise UserError(f"{config.data.root} has no train/good images to learn normal concrete from; {builders.EXPECTED_LAYOUT}")
  split = pipeline.load_split(builder, "train", resize=config.data.resize)
  return split.images, {"n_train": len(split), "train_skipped_files": builders.skipped_files(builder, "train")}


def train(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """The UNet (resumable): its crops cut from the images in memory, or streamed with config.data.stream."""
  if config.data.stream:
    builder = distributed.prepare_once(lambda: builders.builder_for(config, workdir, config.data.root))
    train_lib.train(config, workdir, None, builder.as_data_source(split="train"))
    n = builder.info.splits["train"].num_examples
    return {"n_train": n, "train_skipped_files": builders.skipped_files(builder, "train")}
  images, info = load_train_images(config, workdir)
  validate = None
  if config.train.patience:  # the val score of every checkpoint (the EMA parameters: {"unet": ...})
    validate = calibration.synthetic_val(config, workdir, init_scorer(config))
  train_lib.train(config, workdir, images, validate=validate)
  return info


# ------------------------------------------------------------------------------------------------ the map


def make_maps_fn(config: ml_collections.ConfigDict, healer=None):
  """maps(params, x: [B, H, W, 3] padded, key, ids: [B]) -> [B, H, W] (the Scorer contract), jitted. healer: a
  healing in place of the diffusion model's (anomaly.HealConfig.healer)."""
  unet = UNet(train_lib.unet_config(config))
  schedule = train_lib.make_schedule(config)
  hc = dataclasses.replace(heal_config(config), healer=healer)
  dt = precision.dtype(config)

  def maps(params, x, key, ids):
    keys = jax.vmap(jax.random.fold_in, (None, 0))(key, ids)
    eps_fn = lambda x_t, t: precision.apply(unet.apply, params["unet"], x_t, t, compute_dtype=dt)  # noqa: E731
    return anomaly.anomaly_map(eps_fn, schedule, x, keys, hc)[0]

  return jax.jit(micro_batched(maps, config.eval.micro_batch))


def scorer_from_params(config: ml_collections.ConfigDict, params: dict, healer: tuple | None = None) -> Scorer:
  """healer: (name, x0 -> x_hat, flops per pixel) healing in place of the diffusion model's, every other part of
  the map as configured (the research question of what the diffusion model adds; params may then be {})."""
  hc = heal_config(config)
  unet = UNet(train_lib.unet_config(config))
  levels = sum(4.0**-level for level in range(hc.pyramid))  # the pyramid's level l heals 4^-l of the pixels

  def flops(shape):
    if healer is not None:
      return healer[2] * shape[1] * shape[2] * hc.num_draws * levels
    # XLA counts the sampler's scan body once: the cost is a forward pass times the passes, not the compiled total.
    x, t = jnp.zeros(shape), jnp.zeros(shape[0], jnp.int32)
    fwd = flops_of(lambda p, x, t: unet.apply({"params": p}, x, t), params["unet"], x, t)
    return fwd * hc.steps * hc.num_draws * levels / shape[0]

  n = count_params(params)
  info = {
    "kind": "teacher",
    "sampler": hc.sampler,
    "num_steps": config.sampler.num_steps,
    "heal_steps": hc.steps,
    "eta": hc.eta,
    "t_start": hc.t_start,
    "params": n,
    "channels": hc.channels,
    "smoothing_sigma": hc.smoothing_sigma,
    "line_sigma": hc.line_sigma,
    "num_draws": hc.num_draws,
    "pyramid": hc.pyramid,
    "darkness": hc.darkness,
    "average": hc.average,
    "antithetic": hc.antithetic,
    "description": (
      f"diffusion teacher ({n:,} params): {hc.sampler} healing from t={hc.t_start}, {hc.steps} step(s) x {hc.num_draws} draw(s)"
    ),
  }
  if healer is not None:
    info["healer"] = healer[0]
    info["description"] = f"{healer[0]} in place of the diffusion healing, x {hc.num_draws} draw(s)"
  multiple = train_lib.unet_config(config).downsample_factor * hc.multiple
  return build(make_maps_fn(config, None if healer is None else healer[1]), params, multiple, flops, info, config)


def load_params(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """The trained teacher's parameters, as its Scorer holds them: the UNet's EMA parameters."""
  return {"unet": train_lib.load_trained(config, workdir).ema_params}


def make_scorer(config: ml_collections.ConfigDict, workdir: str) -> Scorer:
  return scorer_from_params(config, load_params(config, workdir))


def init_scorer(config: ml_collections.ConfigDict) -> Scorer:
  """A Scorer with freshly initialised parameters (speed does not depend on training: benchmarks)."""
  return scorer_from_params(config, {"unet": train_lib.create_train_state(config, streams.key(config.seed, "init")).params})
