"""What the reconstruction baselines share: a convolutional encoder and decoder, training on train/good crops
(resumable, the same loop as every kind), and the Scorer built from a baseline's map function.

A baseline module gives a `Spec`, each entry a function of the config: its network (a flax module whose
__call__(x, train) returns a dict), its loss(outputs, batch) -> (loss, metrics), how a batch is made from clean
crops (DRAEM pastes synthetic anomalies), and its map(params, net, x, keys) -> [B, H, W]. Everything else (data,
training loop, checkpoints, resume, the Scorer) lives here once.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax.training import train_state

from crackjax import anomaly, streams
from crackjax import train as train_lib
from crackjax.data import pipeline
from crackjax.scorer import Scorer, build, count_params, flops_of, micro_batched
from crackjax.unet import upsample_nearest

log = logging.getLogger(__name__)

SHAPE_FIELDS = ("baseline.channels", "baseline.latent_channels", "baseline.memory_size")
DEPTH = 3  # the encoder halves the resolution this many times: inputs must be divisible by 8


def conv(c: int, stride: int = 1):
  return nn.Conv(c, (3, 3), strides=(stride, stride), padding="SAME")


class Encoder(nn.Module):
  channels: int
  out_channels: int

  @nn.compact
  def __call__(self, x):
    """[B, H, W, 3] -> [B, H / 8, W / 8, out_channels]: the bottleneck that keeps a baseline from copying pixels."""
    h = x
    for level in range(DEPTH):
      h = nn.gelu(conv(self.channels * 2**level)(h))
      h = nn.gelu(conv(self.channels * 2**level, stride=2)(h))
    return conv(self.out_channels)(h)


class Decoder(nn.Module):
  channels: int

  @nn.compact
  def __call__(self, z):
    """[B, h, w, C] -> [B, 8 h, 8 w, 3] in [-1, 1] (nearest-neighbour upsampling, then convolutions)."""
    h = z
    for level in reversed(range(DEPTH)):
      h = nn.gelu(conv(self.channels * 2**level)(upsample_nearest(h)))
      h = nn.gelu(conv(self.channels * 2**level)(h))
    return jnp.tanh(conv(3)(h))


@dataclasses.dataclass(frozen=True)
class Spec:
  """A reconstruction baseline, in the functions this module needs of it (each takes the config)."""

  kind: str
  net: Callable  # config -> flax module
  loss: Callable  # config -> ((outputs dict, batch dict) -> (loss, metrics dict))
  map: Callable  # config -> ((params, net, x [B, H, W, 3], keys [B, 2]) -> map [B, H, W])
  make_batch: Callable | None = None  # config -> ((clean crops [B, c, c, 3], rng) -> batch dict); None: {"x": crops}


def residual(config, x, recon) -> jnp.ndarray:
  """The reconstruction residual with the configured channels and smoothing (the teacher's options)."""
  a = config.anomaly
  return anomaly.smooth(anomaly.residual_map(x, recon, a.channels), a.smoothing_sigma, a.line_sigma)


def create_state(config, spec: Spec, key) -> train_state.TrainState:
  b = config.baseline
  net = spec.net(config)
  x = jnp.zeros((1, b.crop_size, b.crop_size, 3))
  params = jax.jit(lambda k: net.init({"params": k, "z": k}, x, train=True))(key)["params"]
  tx = train_lib.make_optimizer(learning_rate=b.learning_rate, warmup_steps=b.warmup_steps, num_steps=b.num_steps)
  return train_state.TrainState.create(apply_fn=net.apply, params=params, tx=tx)


def make_step(config, spec: Spec):
  loss_fn = spec.loss(config)

  def step(state, batch, key):
    key = jax.random.fold_in(key, state.step)

    def loss(params):
      out = state.apply_fn({"params": params}, batch["x"], train=True, rngs={"z": key})
      return loss_fn(out, batch)

    (value, metrics), grads = jax.value_and_grad(loss, has_aux=True)(state.params)
    grad_norm = optax.global_norm(grads)
    metrics = {"loss": value, "grad_norm": grad_norm, "finite": jnp.isfinite(value) & jnp.isfinite(grad_norm), **metrics}
    return state.apply_gradients(grads=grads), metrics

  return step


def batches(config, spec: Spec, images, *, batch_size: int, crop_size: int, seed: int, start_step: int):
  """Batch `step` depends on (seed, step) only: clean train/good crops, made into the baseline's batch."""
  make = spec.make_batch(config) if spec.make_batch else None
  clean = pipeline.train_batches(images, batch_size=batch_size, crop_size=crop_size, seed=seed, start_step=start_step)
  for step, crops in enumerate(clean, start_step):
    yield {"x": crops} if make is None else make(crops, streams.rng(seed, "baseline_crops", step))


def train(config: ml_collections.ConfigDict, workdir: str, spec: Spec) -> dict:
  from crackjax import teacher  # train/good at the working resolution, reported like the teacher's

  b = config.baseline
  images, info = teacher.load_train_images(config, workdir)
  key = streams.key(config.seed, "baseline")
  state = create_state(config, spec, key)
  mngr = train_lib.checkpoint_manager(workdir, config)
  state = train_lib.restore_latest(mngr, state)
  start = int(state.step)
  if start >= b.num_steps:
    log.info("Checkpoint at step %d >= baseline.num_steps=%d: training skipped", start, b.num_steps)
    return info
  step_fn, replicated, batch_sharding = train_lib.sharded_step(
    make_step(config, spec), batch_size=b.batch_size, field="baseline.batch_size"
  )
  log.info("Training the %s baseline (%d params) from step %d to %d", spec.kind, count_params(state.params), start, b.num_steps)
  train_lib.fit(
    state=jax.device_put(state, replicated),
    mngr=mngr,
    step_fn=step_fn,
    batches=batches(config, spec, images, batch_size=b.batch_size, crop_size=b.crop_size, seed=config.seed, start_step=start),
    batch_sharding=batch_sharding,
    key=key,
    start=start,
    total=b.num_steps,
    log_every=config.train.log_every,
    checkpoint_every=config.train.checkpoint_every,
    workdir=workdir,
    hparams={k: v for k, v in config.to_dict()["baseline"].items() if isinstance(v, (int, float, str))},
  )
  return info


def scorer_from_params(config: ml_collections.ConfigDict, spec: Spec, params) -> Scorer:
  net = spec.net(config)
  map_fn = spec.map(config)

  def maps(params, x, key, ids):
    keys = jax.vmap(jax.random.fold_in, (None, 0))(key, ids)
    return map_fn(params, net, x, keys)

  def flops(shape):
    return (
      flops_of(lambda p, x: net.apply({"params": p}, x, train=False, rngs={"z": jax.random.PRNGKey(0)}), params, jnp.zeros(shape))
      / shape[0]
    )

  n = count_params(params)
  a = config.anomaly
  info = {
    "kind": spec.kind,
    "params": n,
    "smoothing_sigma": a.smoothing_sigma,
    "channels": a.channels,
    "description": f"{spec.kind} baseline ({n:,} params)",
    "baseline": json.loads(json.dumps(config.to_dict()["baseline"])),
  }
  return build(jax.jit(micro_batched(maps, config.eval.micro_batch)), params, 2**DEPTH, flops, info, config)


def make_scorer(config: ml_collections.ConfigDict, workdir: str, spec: Spec) -> Scorer:
  state = train_lib.load_trained_state(workdir, config, create_state(config, spec, jax.random.PRNGKey(0)))
  return scorer_from_params(config, spec, state.params)


def init_scorer(config: ml_collections.ConfigDict, spec: Spec) -> Scorer:
  return scorer_from_params(config, spec, create_state(config, spec, streams.key(config.seed, "baseline")).params)


def module_api(spec_fn: Callable[[], Spec]):
  """The kind interface (crackjax/kinds.py) of a baseline module from its Spec."""

  def train_(config, workdir):
    return train(config, workdir, spec_fn())

  def make_scorer_(config, workdir):
    return make_scorer(config, workdir, spec_fn())

  def init_scorer_(config):
    return init_scorer(config, spec_fn())

  return train_, make_scorer_, init_scorer_
