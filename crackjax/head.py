"""The discriminative head: a small fully convolutional net from (image, healing, residual) to crack probability.

A pixel residual lights up pits, pores and rough texture as brightly as a crack. The head learns what a crack
looks like against its own healing, as DiffusionAD, TransFusion and DRAEM do, without a single real crack label:
its training crops are train/good crops with synthetic anomalies and their exact masks as targets, and hard
negatives (stains, pits, joints, paint ...) kept at target 0 (crackjax/synth.py).

    inputs   (config.head.inputs) image x in [-1, 1]; healed x_hat; residual 2 (lum(x_hat) - lum(x)) (signed:
             a crack is darker than what healing paints over it); feature = the UNet feature distance
    net      U-net: `levels` levels of two 3x3 convs (GELU, no normalisation: a tile's map depends only on its
             neighbourhood), dilated context at the bottom, skips, a 1x1 logit
    loss     focal loss (Lin et al., 2017; DRAEM), gamma = config.head.focal_gamma
    map      sigmoid(logit), smoothed like the residual map

The training crops and their healing by the trained teacher are made once and cached in shards under
<workdir>/<head.name>/train_set/<key>/ (key: the teacher's checkpoint step and healing, the mix, the crop and
the seed), as the student caches its teacher maps: a killed run keeps finished shards, a damaged shard is made
again. Training resumes from <workdir>/<head.name>/checkpoints/.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import time
import zipfile

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax.training import train_state

from crackjax import anomaly, choices, files, precision, synth
from crackjax import train as train_lib
from crackjax.data import pipeline
from crackjax.scorer import count_params
from crackjax.unet import upsample_nearest

log = logging.getLogger(__name__)

INPUTS = choices.HEAD_INPUTS
_CHANNELS = {"image": 3, "healed": 3, "residual": 1, "feature": 1}
SHAPE_FIELDS = ("head.inputs", "head.channels", "head.levels")


@dataclasses.dataclass(frozen=True)
class HeadConfig:
  inputs: tuple[str, ...]
  channels: int
  levels: int

  @property
  def in_channels(self) -> int:
    return sum(_CHANNELS[i] for i in self.inputs)

  @property
  def multiple(self) -> int:
    return 2 ** (self.levels - 1)


def head_config(config: ml_collections.ConfigDict) -> HeadConfig:
  h = config.head
  return HeadConfig(inputs=tuple(h.inputs), channels=h.channels, levels=h.levels)


def needs_healing(cfg: HeadConfig) -> bool:
  return any(i in cfg.inputs for i in ("healed", "residual", "feature"))


def head_dir(config: ml_collections.ConfigDict, workdir: str) -> str:
  return os.path.join(workdir, config.head.name)


def _conv(c: int, stride: int = 1, dilation: int = 1):
  return nn.Conv(c, (3, 3), strides=(stride, stride), kernel_dilation=(dilation, dilation), padding="SAME")


class HeadNet(nn.Module):
  cfg: HeadConfig

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    """x: [B, H, W, in_channels], H and W divisible by cfg.multiple -> logits [B, H, W]."""
    act, c = nn.gelu, self.cfg.channels
    feats, h = [], x
    for level in range(self.cfg.levels):
      width = c * 2**level
      if level:
        h = act(_conv(width, stride=2)(h))
      h = act(_conv(width)(act(_conv(width)(h))))
      feats.append(h)
    for d in (2, 4):
      h = h + act(_conv(h.shape[-1], dilation=d)(h))
    for level in range(self.cfg.levels - 2, -1, -1):
      width = c * 2**level
      h = act(_conv(width)(jnp.concatenate([upsample_nearest(h), feats[level]], axis=-1)))
      h = act(_conv(width)(h))
    return nn.Conv(1, (1, 1))(h)[..., 0]


def stack_inputs(cfg: HeadConfig, x, x_hat, feature) -> jnp.ndarray:
  """The head's input channels in cfg.inputs order: [B, H, W, in_channels]."""
  parts = []
  luma = jnp.asarray(anomaly.LUMA, x.dtype)
  for name in cfg.inputs:
    if name == "image":
      parts.append(x)
    elif name == "healed":
      parts.append(x_hat)
    elif name == "residual":
      parts.append((2.0 * ((x_hat - x) * luma).sum(-1))[..., None])
    elif name == "feature":
      parts.append(feature[..., None])
    else:
      raise ValueError(f"config.head.inputs: unknown input {name!r}; choose from {INPUTS}")
  return jnp.concatenate(parts, axis=-1)


def head_map(cfg: HeadConfig, params, x, x_hat, feature, sigma: float, dt=jnp.float32) -> jnp.ndarray:
  """Crack probability [B, H, W] in [0, 1], smoothed with `sigma` pixels (computed in dtype dt)."""
  logits = precision.apply(HeadNet(cfg).apply, params, stack_inputs(cfg, x, x_hat, feature), compute_dtype=dt)
  return anomaly.gaussian_smooth(jax.nn.sigmoid(logits), sigma)


def focal_loss(logits: jnp.ndarray, target: jnp.ndarray, gamma: float) -> jnp.ndarray:
  """Mean of -(1 - p_t)^gamma log p_t over pixels (gamma = 0: binary cross-entropy)."""
  ce = optax.sigmoid_binary_cross_entropy(logits, target)
  if gamma == 0:
    return ce.mean()
  p = jax.nn.sigmoid(logits)
  p_t = p * target + (1 - p) * (1 - target)
  return ((1 - p_t) ** gamma * ce).mean()


# -------------------------------------------------------------------------------------------- training set


def mix(config: ml_collections.ConfigDict) -> synth.Mix:
  h = config.head
  return synth.Mix(
    p_crack=h.p_crack, p_texture=h.p_texture, p_negative=h.p_negative, crack_width=tuple(h.crack_width), p_gap=h.p_gap
  )


def make_crops(images: list[np.ndarray], lo: int, hi: int, *, crop: int, seed: int, m: synth.Mix):
  """Crops lo..hi-1 of the head's training set: (x uint8 [n, crop, crop, 3], mask uint8 [n, crop, crop]).
  Crop j depends on (seed, j) only: any shard can be made again on its own."""
  xs = np.empty((hi - lo, crop, crop, 3), np.uint8)
  ms = np.empty((hi - lo, crop, crop), np.uint8)
  for n, j in enumerate(range(lo, hi)):
    rng = np.random.default_rng([seed, 21, j])
    img = pipeline.random_crop(images[rng.integers(len(images))], crop, rng).astype(np.float32) / 255.0
    out, mask = synth.corrupt(rng, img, m)
    xs[n] = (np.clip(out, 0, 1) * 255 + 0.5).astype(np.uint8)
    ms[n] = mask
  return xs, ms


def _shard_key(config, heal_info: dict, n_images: int) -> str:
  h = config.head
  spec = [heal_info, dataclasses.asdict(mix(config)), h.crop_size, h.train_set_size, config.seed, n_images, list(h.inputs)]
  spec.append(synth.VERSION)
  return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:12]


SHARD = 512  # crops per cached shard


def training_set(config, workdir: str, heal_fn, heal_info: dict, images: list[np.ndarray]) -> dict:
  """The head's cached training set: x uint8, mask uint8, and where the head needs them healed float16 and
  feature float16 ([N, crop, crop, ...]). heal_fn(x [B, c, c, 3] in [-1, 1], ids [B]) -> (x_hat, feature)."""
  h = config.head
  cfg = head_config(config)
  cache = os.path.join(head_dir(config, workdir), "train_set", _shard_key(config, heal_info, len(images)))
  os.makedirs(cache, exist_ok=True)
  parts: dict[str, list] = {"x": [], "mask": [], "healed": [], "feature": []}
  n_shards = -(-h.train_set_size // SHARD)
  t0 = time.time()
  for k in range(n_shards):
    lo, hi = k * SHARD, min(h.train_set_size, (k + 1) * SHARD)
    path = os.path.join(cache, f"shard_{k:04d}.npz")
    if os.path.exists(path):
      try:
        with np.load(path) as z:
          loaded = {name: z[name] for name in z.files}
        if len(loaded["x"]) == hi - lo:
          for name, v in loaded.items():
            parts[name].append(v)
          continue
        log.warning("%s holds %d crops, not %d; making it again", path, len(loaded["x"]), hi - lo)
      except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        files.set_aside(path, "cached shard", f"{type(e).__name__}: {e}; making it again")
    xs, ms = make_crops(images, lo, hi, crop=h.crop_size, seed=config.seed, m=mix(config))
    shard = {"x": xs, "mask": ms}
    if needs_healing(cfg):
      healed, feats = [], []
      for b in range(0, hi - lo, 64):
        xb = xs[b : b + 64].astype(np.float32) / 127.5 - 1.0
        x_hat, feat = heal_fn(xb, np.arange(lo + b, lo + b + len(xb), dtype=np.int32))
        healed.append(np.asarray(x_hat, np.float16))
        if feat is not None:
          feats.append(np.asarray(feat, np.float16))
      shard["healed"] = np.concatenate(healed)
      if feats:
        shard["feature"] = np.concatenate(feats)
    tmp = path + ".tmp.npz"
    np.savez(tmp, **shard)
    os.replace(tmp, path)  # a shard is either complete or absent
    for name, v in shard.items():
      parts[name].append(v)
    rate = hi / max(time.time() - t0, 1e-9)
    log.info("head training set: %d/%d crops in %s (ETA %.0f s)", hi, h.train_set_size, cache, (h.train_set_size - hi) / rate)
  return {name: np.concatenate(v) for name, v in parts.items() if v}


def batches(data: dict, *, batch_size: int, seed: int, start_step: int):
  """Infinite stream of (inputs dict of float32 arrays, target [B, c, c]); batch `step` depends on (seed, step)
  only. Random flips and 90-degree rotations, the same for every channel of a crop."""
  n = len(data["x"])
  step = start_step
  while True:
    rng = np.random.default_rng([seed, 22, step])
    idx = rng.integers(0, n, batch_size)
    k, flip = int(rng.integers(4)), bool(rng.random() < 0.5)

    def aug(a, k=k, flip=flip):
      a = a[:, :, ::-1] if flip else a
      return np.ascontiguousarray(np.rot90(a, k=k, axes=(1, 2)))

    out = {"x": aug(data["x"][idx]).astype(np.float32) / 127.5 - 1.0}
    if "healed" in data:
      out["healed"] = aug(data["healed"][idx]).astype(np.float32)
    if "feature" in data:
      out["feature"] = aug(data["feature"][idx]).astype(np.float32)
    yield out, aug(data["mask"][idx]).astype(np.float32)
    step += 1


def make_step(cfg: HeadConfig, gamma: float, dt=jnp.float32):
  def step(state, batch, key):
    del key  # the randomness is in the crops
    inputs, target = batch
    x_in = stack_inputs(cfg, inputs["x"], inputs.get("healed"), inputs.get("feature"))

    def loss(params):
      return focal_loss(precision.apply(state.apply_fn, params, x_in, compute_dtype=dt), target, gamma)

    value, grads = jax.value_and_grad(loss)(state.params)
    grad_norm = optax.global_norm(grads)
    metrics = {"loss": value, "grad_norm": grad_norm, "finite": jnp.isfinite(value) & jnp.isfinite(grad_norm)}
    return state.apply_gradients(grads=grads), metrics

  return step


def create_state(config: ml_collections.ConfigDict, key: jax.Array) -> train_state.TrainState:
  h = config.head
  cfg = head_config(config)
  model = HeadNet(cfg)
  params = jax.jit(model.init)(key, jnp.zeros((1, h.crop_size, h.crop_size, cfg.in_channels)))["params"]
  tx = train_lib.make_optimizer(
    learning_rate=h.learning_rate, warmup_steps=h.warmup_steps, num_steps=h.num_steps, grad_clip=h.grad_clip
  )
  return train_state.TrainState.create(apply_fn=model.apply, params=params, tx=tx)


def check_compatible(config: ml_collections.ConfigDict, workdir: str) -> None:
  """A head folder trained with other inputs or sizes is refused before anything in it is overwritten."""
  path = os.path.join(head_dir(config, workdir), "head_info.json")
  if not os.path.exists(path):
    return
  with open(path) as f:
    saved = json.load(f).get("head", {})
  for field in ("inputs", "channels", "levels"):
    now, old = config.head[field], saved.get(field)
    now = list(now) if isinstance(now, tuple) else now
    if old is not None and old != now:
      raise ValueError(
        f"{head_dir(config, workdir)} holds a head trained with config.head.{field}={old!r}, not {now!r}; "
        "use another --config.head.name for a different head (or the saved value to continue)"
      )


def train(config: ml_collections.ConfigDict, workdir: str, heal_fn, images: list[np.ndarray]) -> train_state.TrainState:
  """Training set (cached), then the head to config.head.num_steps (resumable). heal_fn: teacher.make_heal_fn."""
  h = config.head
  check_compatible(config, workdir)
  hdir = head_dir(config, workdir)
  os.makedirs(hdir, exist_ok=True)
  cfg = head_config(config)
  heal_info = {"teacher_step": train_lib.checkpoint_manager(workdir, config, create=False).latest_step() if heal_fn else None}
  fields = ("t_start", "heal_steps", "guidance", "num_draws", "average", "antithetic", "feature_t")
  heal_info.update({k: config.anomaly[k] for k in fields})
  heal_info["sampler"] = [config.sampler.kind, config.sampler.num_steps, config.sampler.eta]
  t0 = time.time()
  data = training_set(config, workdir, heal_fn, heal_info, images)
  log.info("head training set of %d crops ready (%.0f s)", len(data["x"]), time.time() - t0)
  info = {"head": {k: (list(v) if isinstance(v, tuple) else v) for k, v in config.head.to_dict().items()}}
  info["residual_scale"] = _residual_scale(config, data)
  with open(os.path.join(hdir, "head_info.json"), "w") as f:
    json.dump(info, f, indent=2)

  key = jax.random.fold_in(jax.random.PRNGKey(config.seed), 13)
  state = create_state(config, key)
  mngr = train_lib.checkpoint_manager(hdir, config)
  state = train_lib.restore_latest(mngr, state)
  start = int(state.step)
  if start >= h.num_steps:
    log.info("Head checkpoint at step %d >= head.num_steps=%d: training skipped", start, h.num_steps)
    return state
  step_fn, replicated, batch_sharding = train_lib.sharded_step(
    make_step(cfg, h.focal_gamma, precision.dtype(config)), batch_size=h.batch_size, field="head.batch_size"
  )
  log.info(
    "Training the head (%s, %d params) from step %d to %d on %d synthetic crops",
    "+".join(cfg.inputs), count_params(state.params), start, h.num_steps,
    len(data["x"]),
  )  # fmt: skip
  return train_lib.fit(
    state=jax.device_put(state, replicated),
    mngr=mngr,
    step_fn=step_fn,
    batches=batches(data, batch_size=h.batch_size, seed=config.seed, start_step=start),
    batch_sharding=batch_sharding,
    key=key,
    start=start,
    total=h.num_steps,
    log_every=config.train.log_every,
    checkpoint_every=config.train.checkpoint_every,
    workdir=hdir,
    hparams={k: v for k, v in info["head"].items() if isinstance(v, (int, float, str))},
  )


def _residual_scale(config, data: dict) -> float:
  """The 99th percentile of the teacher's smoothed residual map over the clean crops: 'head_residual' divides the
  residual by it so that both halves of the mean are O(1)."""
  if "healed" not in data:
    return 1.0
  clean = np.flatnonzero(data["mask"].reshape(len(data["mask"]), -1).max(1) == 0)[:512]
  x = data["x"][clean].astype(np.float32) / 127.5 - 1.0
  r = anomaly.residual_map(
    jnp.asarray(x), jnp.asarray(data["healed"][clean], jnp.float32), config.anomaly.residual, config.anomaly.channels
  )
  r = anomaly.smooth(r, config.anomaly.smoothing_sigma, config.anomaly.line_sigma)
  return max(float(np.percentile(np.asarray(r), 99)), 1e-6)


def load(config: ml_collections.ConfigDict, workdir: str):
  """(head params, head_info dict) of the head trained in <workdir>/<head.name>/."""
  check_compatible(config, workdir)
  hdir = head_dir(config, workdir)
  path = os.path.join(hdir, "head_info.json")
  if not os.path.exists(path):
    raise FileNotFoundError(train_lib.NOT_TRAINED.format(workdir=workdir, dir=os.path.join(hdir, "checkpoints")))
  with open(path) as f:
    info = json.load(f)
  state = train_lib.load_trained_state(hdir, config, create_state(config, jax.random.PRNGKey(0)))
  return state.params, info
