"""The diffusion-free student: one fast pass from an image to the teacher's anomaly map.

Diffusion is used for training only. The teacher (the epsilon-UNet that heals) scores a pool of images once;
the student, a small fully convolutional network, learns to reproduce those maps and replaces healing at
inference. Nothing labelled is ever used: the pool is train/good plus the unlabeled folder (labels withheld),
optionally plus good images with a crack drawn by the synthetic generator, and the targets are teacher maps.
The pool and its cached teacher maps are crackjax/pool.py's.

Architectures (config.student.architecture; model kind 'student'):
  single_step      encoder to 1/4 resolution, dilated context, U-decoder with skips, one map at full resolution.
  coarse_to_fine   the same encoder and context; a coarse map at the lowest level, then K - 1 refinement stages,
                   each one level finer, each predicting a correction to the upsampled previous map from the
                   image features at its level and that map (iterative refinement, as in diffusion, without it).
                   The coarsest level is max(2, K - 1); K < 3 ends above full resolution and is upsampled.
                   Every stage is supervised with the target average-pooled to its level.

config.student.input_stride = s (1, 2 or 4) runs either architecture on the image's s x s pixel blocks unshuffled
into channels (space to depth: [H, W, 3] -> [H / s, W / s, 3 s^2], no pixel dropped), so its finest stage works at
1/s of the image's resolution and its map is upsampled back: about 1/s^2 of the work at every level.

Targets (config.student.target): 'soft' regresses teacher map / scale (scale: a high quantile of the pool's
teacher maps, so targets are O(1)); 'binary' is the teacher map thresholded at that quantile, learned with
sigmoid cross-entropy. The student's map is scale * output ('soft') or the probability ('binary'), pooled into
an image score exactly as the teacher's (anomaly.pooling).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax.training import train_state

from crackjax import anomaly, choices, jobs, kinds, pool, precision, streams
from crackjax import config as config_lib
from crackjax import train as train_lib
from crackjax.choices import StudentConfig
from crackjax.data import pipeline
from crackjax.errors import UserError
from crackjax.scorer import Scorer, build, count_params, flops_of, micro_batched
from crackjax.unet import downsample_mean, upsample_nearest

log = logging.getLogger(__name__)

ARCHITECTURES, TARGETS, INPUT_STRIDES = choices.STUDENT_ARCHITECTURES, choices.STUDENT_TARGETS, choices.STUDENT_INPUT_STRIDES
# the soft targets' scale, and the binary targets' threshold: this quantile of the pool's teacher-map pixels
TARGET_QUANTILE = 0.99
SHAPE_FIELDS = ("student.architecture", "student.channels", "student.stages", "student.input_stride")


def space_to_depth(x: jnp.ndarray, s: int) -> jnp.ndarray:
  """[B, H, W, C] -> [B, H / s, W / s, s * s * C]: each s x s block of pixels as the channels of one pixel."""
  if s == 1:
    return x
  b, h, w, c = x.shape
  x = x.reshape(b, h // s, s, w // s, s, c).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(b, h // s, w // s, s * s * c)


def _conv(c: int, stride: int = 1, dilation: int = 1, k: int = 3):
  return nn.Conv(c, (k, k), strides=(stride, stride), kernel_dilation=(dilation, dilation), padding="SAME")


class StudentNet(nn.Module):
  cfg: StudentConfig

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> list[jnp.ndarray]:
    """x: [B, H, W, 3] in [-1, 1], H and W divisible by cfg.multiple -> maps [B, H / 2^l, W / 2^l] for l in
    cfg.map_levels, coarse to fine."""
    c, act = self.cfg.channels, nn.gelu
    x = space_to_depth(x, self.cfg.input_stride)
    feats = [act(_conv(c)(x))]
    for level in range(1, self.cfg.depth + 1):
      width = c if level == 1 else 2 * c
      feats.append(act(_conv(width)(act(_conv(width, stride=2)(feats[-1])))))
    h = feats[-1]
    for d in (2, 4):  # dilated context at the coarsest level
      h = h + act(_conv(h.shape[-1], dilation=d)(h))
    if self.cfg.architecture == "single_step":
      for level in range(self.cfg.depth - 1, -1, -1):
        h = act(_conv(feats[level].shape[-1])(jnp.concatenate([upsample_nearest(h), feats[level]], axis=-1)))
      return [nn.Conv(1, (1, 1))(h)[..., 0]]
    maps: list[jnp.ndarray] = []
    for i, level in enumerate(self.cfg.levels):
      if i > 0:
        prev = upsample_nearest(maps[-1])[..., None]
        h = act(_conv(feats[level].shape[-1])(jnp.concatenate([upsample_nearest(h), feats[level], prev], axis=-1)))
      delta = nn.Conv(1, (1, 1))(act(_conv(h.shape[-1])(h)))[..., 0]
      maps.append(delta if i == 0 else upsample_nearest(maps[-1]) + delta)
    return maps


def student_config(config: ml_collections.ConfigDict) -> StudentConfig:
  s = config.student
  return StudentConfig(architecture=s.architecture, channels=s.channels, stages=s.stages, input_stride=s.input_stride)


def pool_to_level(y: jnp.ndarray, level: int) -> jnp.ndarray:
  """[B, H, W] -> [B, H / 2^l, W / 2^l] by averaging 2^l x 2^l blocks."""
  return downsample_mean(y, 2**level)


def loss_fn(maps: list[jnp.ndarray], target: jnp.ndarray, levels: list[int], kind: str) -> jnp.ndarray:
  """Mean over stages of the per-pixel loss against the target pooled to each stage's level."""
  losses = []
  for m, level in zip(maps, levels):
    y = pool_to_level(target, level)
    if kind == "soft":
      losses.append(jnp.mean((m - y) ** 2))
    else:
      losses.append(jnp.mean(optax.sigmoid_binary_cross_entropy(m, y)))
  return jnp.mean(jnp.stack(losses))


def output_map(maps: list[jnp.ndarray], hw_padded: tuple[int, int], target: str, scale: float) -> jnp.ndarray:
  """The finest stage's map, upsampled to the padded image size, in the teacher's units (or a probability)."""
  m = upsample_nearest(maps[-1], hw_padded[0] // maps[-1].shape[1])
  return jax.nn.sigmoid(m) if target == "binary" else m * scale


# ----------------------------------------------------------------------------------------------- the teacher


def teacher_scorer(config: ml_collections.ConfigDict, workdir: str) -> Scorer:
  """The student's teacher, its image maps: config.student.teacher_workdir, or one trained (and evaluated) in
  <workdir>/teacher."""
  teacher_dir = config.student.teacher_workdir
  if not teacher_dir:
    teacher_dir = os.path.join(workdir, "teacher")
    tc = config.copy_and_resolve_references()
    with tc.unlocked():
      tc.model.kind = "teacher"
      tc.data.tfds_dir = config.data.tfds_dir or os.path.join(workdir, "tfds")  # one prepared copy for both
    if not os.path.exists(os.path.join(teacher_dir, "metrics.json")):
      log.info("No student.teacher_workdir: training the teacher in %s first", teacher_dir)
      jobs.train_and_evaluate(tc, teacher_dir)
  tc = config_lib.teacher_config(config, teacher_dir)
  with tc.unlocked():  # the student learns the teacher's image maps, not its localization maps
    tc.anomaly.localization_darkness = 0.0
  return kinds.get(tc.model.kind).make_scorer(tc, teacher_dir)


# ----------------------------------------------------------------------------------------------- training


StudentState = train_state.TrainState  # no fields beyond the optimizer's: no EMA, no dropout key


def make_student_step(cfg: StudentConfig, target: str, dt=jnp.float32):
  def step(state: StudentState, batch, key):
    del key  # deterministic: the randomness is in the crops
    x, y = batch

    def loss(params):
      return loss_fn(precision.apply(state.apply_fn, params, x, compute_dtype=dt), y, cfg.map_levels, target)

    value, grads = jax.value_and_grad(loss)(state.params)
    grad_norm = optax.global_norm(grads)
    metrics = {"loss": value, "grad_norm": grad_norm, "finite": jnp.isfinite(value) & jnp.isfinite(grad_norm)}
    return state.apply_gradients(grads=grads), metrics

  return step


def create_state(config: ml_collections.ConfigDict, key: jax.Array) -> StudentState:
  s = config.student
  model = StudentNet(student_config(config))
  params = jax.jit(model.init)(key, jnp.zeros((1, s.crop_size, s.crop_size, 3)))["params"]
  tx = train_lib.make_optimizer(learning_rate=s.learning_rate, warmup_steps=s.warmup_steps, num_steps=s.num_steps)
  return StudentState.create(apply_fn=model.apply, params=params, tx=tx)


def pair_batches(images, targets, *, batch_size: int, crop_size: int, seed: int, start_step: int):
  """Infinite stream of (x [B, c, c, 3] in [-1, 1], y [B, c, c]) crops with flips/rotations; batch `step`
  depends on (seed, step) only. The target rides along as a fourth channel so both get the same crop."""
  stacked = [np.concatenate([pipeline.to_model_range(im), t[..., None]], axis=-1) for im, t in zip(images, targets)]
  step = start_step
  while True:
    rng = streams.rng(seed, "student_crops", step)
    out = np.empty((batch_size, crop_size, crop_size, 4), np.float32)
    for b in range(batch_size):
      out[b] = pipeline.random_crop(stacked[rng.integers(len(stacked))], crop_size, rng)
    yield out[..., :3], out[..., 3]
    step += 1


@dataclasses.dataclass
class TargetInfo:
  """What the student learned from its teacher, saved beside its checkpoints (student_targets.json)."""

  scale: float  # teacher map units per student output unit ('soft'), and the 'binary' threshold
  target: str  # 'soft' | 'binary'
  pooling: str  # the teacher's image-score pooling, applied to the student's maps too
  topk_fraction: float
  n_pool: int  # images the student learned from
  mad_floor: float = anomaly.MAD_FLOOR  # the teacher's (a student_targets.json from before: the old constant)
  border: int = 0

  def save(self, path: str) -> None:
    with open(path, "w") as f:
      json.dump(dataclasses.asdict(self), f, indent=2)

  @classmethod
  def load(cls, path: str) -> TargetInfo:
    with open(path) as f:
      return cls(**json.load(f))


def train(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """The teacher (trained first when student.teacher_workdir is ''), its maps of the pool (cached), then the
  student to config.student.num_steps (resumable). Returns the data info for evaluation."""
  teacher = teacher_scorer(config, workdir)
  s = config.student
  t0 = time.time()
  images, names = pool.load_pool(config, workdir)
  maps = pool.teacher_maps(config, workdir, teacher, images, names)
  log.info("teacher maps of %d pool images ready (%.0f s)", len(maps), time.time() - t0)
  scale = max(float(np.quantile(np.concatenate([m.ravel() for m in maps]), TARGET_QUANTILE)), 1e-6)
  pooling = dataclasses.asdict(teacher.pooling)
  info = TargetInfo(
    scale, s.target, pooling["pooling"], pooling["topk_fraction"], len(images), pooling["mad_floor"], pooling["border"]
  )
  info.save(os.path.join(workdir, "student_targets.json"))
  targets = [m / scale if s.target == "soft" else (m >= scale).astype(np.float32) for m in maps]

  key = streams.key(config.seed, "student")
  state = create_state(config, key)
  mngr = train_lib.checkpoint_manager(workdir, config)
  state = train_lib.restore_latest(mngr, state)
  start = int(state.step)
  if start >= s.num_steps:
    log.info("Student checkpoint at step %d >= student.num_steps=%d: training skipped", start, s.num_steps)
    return {"n_pool": info.n_pool}
  step_fn, replicated, batch_sharding = train_lib.sharded_step(
    make_student_step(student_config(config), s.target, precision.dtype(config)),
    batch_size=s.batch_size,
    field="student.batch_size",
  )
  batches = pair_batches(images, targets, batch_size=s.batch_size, crop_size=s.crop_size, seed=config.seed, start_step=start)
  log.info(
    "Training the %s student (%d params) from step %d to %d on %d pool images (%s targets, scale %.4g)",
    s.architecture, count_params(state.params), start, s.num_steps, len(images), s.target, scale,
  )  # fmt: skip
  train_lib.fit(
    state=jax.device_put(state, replicated),
    mngr=mngr,
    step_fn=step_fn,
    batches=batches,
    batch_sharding=batch_sharding,
    key=key,
    start=start,
    total=s.num_steps,
    log_every=config.train.log_every,
    checkpoint_every=config.train.checkpoint_every,
    workdir=workdir,
    hparams={k: v for k, v in config.to_dict()["student"].items() if isinstance(v, (int, float, str))},
  )
  return {"n_pool": info.n_pool}


def load_student(config, workdir: str) -> tuple[StudentState, TargetInfo]:
  path = os.path.join(workdir, "student_targets.json")
  if not os.path.exists(path):
    raise UserError(train_lib.NOT_TRAINED.format(workdir=workdir, dir=os.path.join(workdir, "checkpoints")))
  state = train_lib.load_trained_state(workdir, config, create_state(config, jax.random.PRNGKey(0)))
  return state, TargetInfo.load(path)


def scorer_from_params(config: ml_collections.ConfigDict, params, info: TargetInfo) -> Scorer:
  cfg = student_config(config)
  model = StudentNet(cfg)
  dt = precision.dtype(config)

  def maps(params, x, key, ids):
    del key, ids  # one deterministic pass
    return output_map(precision.apply(model.apply, params, x, compute_dtype=dt), x.shape[1:3], info.target, info.scale)

  def flops(shape):
    return flops_of(lambda p, x: model.apply({"params": p}, x), params, jnp.zeros(shape)) / shape[0]

  n = count_params(params)
  model_info = {
    "kind": "student",
    "architecture": cfg.architecture,
    "stages": cfg.stages if cfg.architecture == "coarse_to_fine" else 1,
    "channels": cfg.channels,
    "input_stride": cfg.input_stride,
    "target": info.target,
    "target_scale": info.scale,
    "params": n,
    "pooling": info.pooling,
    "topk_fraction": info.topk_fraction,
    "mad_floor": info.mad_floor,
    "border": info.border,
    "n_pool": info.n_pool,
    "teacher_workdir": config.student.teacher_workdir,
    "teacher_sampler": config.student.teacher_sampler,  # "" = the teacher's own healing
    "teacher_heal_steps": config.student.teacher_heal_steps,
    "description": f"{cfg.architecture} student ({n:,} params, {info.target} targets)",
  }
  return build(jax.jit(micro_batched(maps, config.eval.micro_batch)), params, cfg.multiple, flops, model_info, config)


def make_scorer(config: ml_collections.ConfigDict, workdir: str) -> Scorer:
  state, info = load_student(config, workdir)
  return scorer_from_params(config, state.params, info)


def init_scorer(config: ml_collections.ConfigDict) -> Scorer:
  """A Scorer with freshly initialised parameters (speed does not depend on training: benchmarks)."""
  params = create_state(config, streams.key(config.seed, "student")).params
  a = config.anomaly
  info = TargetInfo(1.0, config.student.target, a.pooling, a.topk_fraction, 0, a.mad_floor, a.border)
  return scorer_from_params(config, params, info)
