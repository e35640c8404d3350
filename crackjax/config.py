"""Config strings (`configs/x.py:tiny,data=/path,steps=10`) and config invariants.

A config string is a comma-separated list of `key` (a flag) or `key=value`; each key has a type, and unknown keys
fail loudly with the list of known ones. `validate` checks the invariants no single field can (steps <= T, crop
divisible by the UNet's down-sampling, ...) and names the field at fault; `main.py` runs it again after
`--config.x=y` overrides.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import ml_collections

from crackjax import anomaly, samplers


@dataclasses.dataclass(frozen=True)
class ConfigArgs:
  tiny: bool = False  # shrink everything so a run finishes in seconds (tests, CI)
  data: str = ""  # an MVTec-layout root instead of the built-in synthetic concrete
  steps: int = 0  # sampler.num_steps (0: the config's own)


def parse_config_string(arg: str | None) -> ConfigArgs:
  fields = {f.name: f for f in dataclasses.fields(ConfigArgs)}
  values: dict[str, Any] = {}
  for part in filter(None, (p.strip() for p in (arg or "").split(","))):
    key, sep, raw = part.partition("=")
    key = key.strip()
    if key not in fields:
      raise ValueError(f"unknown config-string key {key!r} in {arg!r}; known keys: {sorted(fields)}")
    kind = fields[key].type
    if kind == "bool":
      if sep and raw.lower() not in ("true", "false", "1", "0"):
        raise ValueError(f"config-string key {key!r} takes true/false, got {raw!r}")
      values[key] = (not sep) or raw.lower() in ("true", "1")
    elif not sep:
      raise ValueError(f"config-string key {key!r} needs a value: {key}=...")
    elif kind == "int":
      try:
        values[key] = int(raw)
      except ValueError:
        raise ValueError(f"config-string key {key!r} takes an integer, got {raw!r}") from None
    else:
      values[key] = raw
  return ConfigArgs(**values)


def _check(cond: bool, field: str, msg: str):
  if not cond:
    raise ValueError(f"config.{field}: {msg}")


def validate(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Raises ValueError naming the field whose value breaks an invariant; returns config."""
  T = config.schedule.num_timesteps
  _check(
    config.schedule.kind in ("linear", "cosine"), "schedule.kind", f"must be 'linear' or 'cosine', got {config.schedule.kind!r}"
  )
  _check(T >= 2, "schedule.num_timesteps", f"must be >= 2, got {T}")
  _check(
    0 < config.schedule.beta_start < config.schedule.beta_end < 1, "schedule.beta_start", "need 0 < beta_start < beta_end < 1"
  )
  _check(
    config.sampler.kind in samplers.SAMPLERS, "sampler.kind", f"must be one of {samplers.SAMPLERS}, got {config.sampler.kind!r}"
  )
  _check(
    1 <= config.sampler.num_steps <= T,
    "sampler.num_steps",
    f"must be in [1, schedule.num_timesteps={T}], got {config.sampler.num_steps}",
  )
  _check(0.0 <= config.sampler.eta, "sampler.eta", f"must be >= 0, got {config.sampler.eta}")
  _check(0 <= config.anomaly.t_start < T, "anomaly.t_start", f"must be in [0, {T - 1}], got {config.anomaly.t_start}")
  _check(
    config.anomaly.residual in anomaly.RESIDUALS,
    "anomaly.residual",
    f"must be one of {anomaly.RESIDUALS}, got {config.anomaly.residual!r}",
  )
  _check(
    config.anomaly.channels in anomaly.CHANNELS,
    "anomaly.channels",
    f"must be one of {anomaly.CHANNELS}, got {config.anomaly.channels!r}",
  )
  _check(
    config.anomaly.pooling in anomaly.POOLINGS,
    "anomaly.pooling",
    f"must be one of {anomaly.POOLINGS}, got {config.anomaly.pooling!r}",
  )
  _check(0 < config.anomaly.topk_fraction <= 1, "anomaly.topk_fraction", f"must be in (0, 1], got {config.anomaly.topk_fraction}")
  _check(
    0 <= config.anomaly.heal_steps <= config.anomaly.t_start + 1,
    "anomaly.heal_steps",
    f"must be in [0, anomaly.t_start + 1] (0 = the sampler's share), got {config.anomaly.heal_steps}",
  )
  _check(config.anomaly.num_draws >= 1, "anomaly.num_draws", f"must be >= 1, got {config.anomaly.num_draws}")
  _check(config.anomaly.smoothing_sigma >= 0, "anomaly.smoothing_sigma", f"must be >= 0, got {config.anomaly.smoothing_sigma}")
  _check(
    0 <= config.train.t_min <= config.train.t_max < T,
    "train.t_max",
    f"need 0 <= t_min <= t_max < {T}, got [{config.train.t_min}, {config.train.t_max}]",
  )
  _check(
    config.train.t_min <= config.anomaly.t_start <= config.train.t_max,
    "anomaly.t_start",
    f"healing starts at t={config.anomaly.t_start}, outside the trained range [train.t_min, train.t_max] = "
    f"[{config.train.t_min}, {config.train.t_max}]",
  )
  _check(config.train.batch_size >= 1, "train.batch_size", f"must be >= 1, got {config.train.batch_size}")
  _check(config.train.num_steps >= 0, "train.num_steps", f"must be >= 0, got {config.train.num_steps}")
  _check(0 <= config.train.ema_decay < 1, "train.ema_decay", f"must be in [0, 1), got {config.train.ema_decay}")
  _check(config.train.learning_rate > 0, "train.learning_rate", f"must be > 0, got {config.train.learning_rate}")
  _check(
    config.train.log_every >= 1 and config.train.checkpoint_every >= 1,
    "train.log_every",
    "log_every and checkpoint_every must be >= 1",
  )
  f = 2 ** (len(config.model.channel_mult) - 1)
  _check(len(config.model.channel_mult) >= 1, "model.channel_mult", "needs at least one level")
  _check(
    config.data.crop_size % f == 0,
    "data.crop_size",
    f"must be divisible by 2^(len(model.channel_mult) - 1) = {f}, got {config.data.crop_size}",
  )
  _check(config.data.resize > 0, "data.resize", f"must be > 0, got {config.data.resize}")
  _check(0 <= config.data.val_fraction < 1, "data.val_fraction", f"must be in [0, 1), got {config.data.val_fraction}")
  _check(
    config.model.channels % config.model.num_groups == 0,
    "model.num_groups",
    f"must divide model.channels={config.model.channels}",
  )
  st = config.student
  _check(
    st.kind in ("", "single_step", "coarse_to_fine"),
    "student.kind",
    f"must be '', 'single_step' or 'coarse_to_fine', got {st.kind!r}",
  )
  _check(st.target in ("soft", "binary"), "student.target", f"must be 'soft' or 'binary', got {st.target!r}")
  _check(
    st.teacher_sampler in ("", *samplers.VARIANTS),
    "student.teacher_sampler",
    f"must be '' or one of {tuple(samplers.VARIANTS)}, got {st.teacher_sampler!r}",
  )
  _check(st.teacher_heal_steps >= 0, "student.teacher_heal_steps", f"must be >= 0, got {st.teacher_heal_steps}")
  _check(1 <= st.stages <= 6, "student.stages", f"must be in [1, 6], got {st.stages}")
  _check(st.channels >= 1, "student.channels", f"must be >= 1, got {st.channels}")
  _check(0 < st.target_quantile < 1, "student.target_quantile", f"must be in (0, 1), got {st.target_quantile}")
  _check(0 <= st.synthetic_cracks <= 1, "student.synthetic_cracks", f"must be in [0, 1], got {st.synthetic_cracks}")
  _check(st.batch_size >= 1 and st.num_steps >= 0, "student.batch_size", "batch_size must be >= 1 and num_steps >= 0")
  _check(st.cache_shard_size >= 1, "student.cache_shard_size", f"must be >= 1, got {st.cache_shard_size}")
  sf = 2 ** max(2, st.stages - 1 if st.kind == "coarse_to_fine" else 2)
  _check(
    st.crop_size % sf == 0,
    "student.crop_size",
    f"must be divisible by the student's down-sampling {sf}, got {st.crop_size}",
  )
  _check(
    len(config.sweep.steps) > 0 and all(int(s) >= 1 for s in config.sweep.steps),
    "sweep.steps",
    f"must be step counts >= 1, got {config.sweep.steps}",
  )
  _check(
    len(config.sweep.samplers) > 0 and all(v in samplers.VARIANTS for v in config.sweep.samplers),
    "sweep.samplers",
    f"must be a non-empty tuple of {tuple(samplers.VARIANTS)}, got {config.sweep.samplers}",
  )
  _check(
    config.toy.target in ("", "skeleton", "heatmap"),
    "toy.target",
    f"must be '', 'skeleton' or 'heatmap', got {config.toy.target!r}",
  )
  if config.toy.target:
    _check(
      config.toy.image_size % f == 0,
      "toy.image_size",
      f"must be divisible by 2^(len(model.channel_mult) - 1) = {f}, got {config.toy.image_size}",
    )
    _check(
      min(config.toy.num_train, config.toy.num_heldout, config.toy.num_samples) >= 1,
      "toy.num_train",
      "num_train, num_heldout and num_samples must be >= 1",
    )
    _check(config.student.kind == "", "student.kind", "the toy job trains no student; leave student.kind ''")
  _check(config.eval.batch_size >= 1, "eval.batch_size", f"must be >= 1, got {config.eval.batch_size}")
  _check(
    0 < config.eval.threshold_percentile <= 100,
    "eval.threshold_percentile",
    f"must be in (0, 100], got {config.eval.threshold_percentile}",
  )
  return config
